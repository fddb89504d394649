import { test } from "node:test";
import assert from "node:assert/strict";
import { metricsPortFor } from "./start.js";

test("start all: consecutive metrics ports from CDKTR_METRICS_PORT, 0 for each when 0, unset stays unset", () => {
  assert.deepEqual(
    [0, 1, 2].map((i) => metricsPortFor("9100", i)),
    ["9100", "9101", "9102"],
  );
  assert.deepEqual(
    [0, 1, 2].map((i) => metricsPortFor("0", i)),
    ["0", "0", "0"],
  );
  assert.equal(metricsPortFor(undefined, 1), undefined);
  assert.equal(metricsPortFor(" 9100 ", 2), "9102");
  // Not a port: passed on as it is, for the app to refuse with its message.
  assert.equal(metricsPortFor("abc", 1), "abc");
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseParamArgs } from "./params.js";
import { CliError } from "./errors.js";

test("-p name=value pairs; the first '=' splits", () => {
  assert.deepEqual(parseParamArgs(["date=2026-11-28", "expr=a=b", "empty="]), {
    date: "2026-11-28",
    expr: "a=b",
    empty: "",
  });
  assert.deepEqual(parseParamArgs([]), {});
});

test("bad parameter syntax is a usage error naming the argument", () => {
  for (const bad of ["foo", "=value", " =x"]) {
    assert.throws(
      () => parseParamArgs([bad]),
      (e: unknown) => e instanceof CliError && e.exitCode === 2 && e.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
  assert.throws(() => parseParamArgs(["a=1", "a=2"]), /given twice/);
});

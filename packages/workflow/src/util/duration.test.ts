import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseDuration } from "./duration.js";

describe("parseDuration", () => {
  it("parses units, compounds and bare numbers in the field's unit", () => {
    assert.deepEqual(parseDuration("500ms", "s"), { ok: true, ms: 500 });
    assert.deepEqual(parseDuration("30s", "s"), { ok: true, ms: 30_000 });
    assert.deepEqual(parseDuration("5m", "s"), { ok: true, ms: 300_000 });
    assert.deepEqual(parseDuration("1h30m", "s"), { ok: true, ms: 5_400_000 });
    assert.deepEqual(parseDuration("1.5s", "ms"), { ok: true, ms: 1500 });
    assert.deepEqual(parseDuration(90, "s"), { ok: true, ms: 90_000 });
    assert.deepEqual(parseDuration(250, "ms"), { ok: true, ms: 250 });
    assert.deepEqual(parseDuration("12", "s"), { ok: true, ms: 12_000 });
  });

  it("rejects garbage and negatives", () => {
    for (const bad of ["5 minutes", "", "s", "-1s", "1x", true, -3]) {
      assert.equal(parseDuration(bad, "s").ok, false, String(bad));
    }
  });
});

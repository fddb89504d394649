import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseDurationText, parseDurationWithUnit as parseDuration } from "./duration.js";

describe("duration grammar", () => {
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

  it("one grammar for workflows and the CLI: weeks, any case, blanks around", () => {
    assert.equal(parseDurationText("1w"), 604_800_000);
    assert.equal(parseDurationText(" 2H "), 7_200_000);
    assert.deepEqual(parseDuration("1W", "s"), { ok: true, ms: 604_800_000 });
    for (const bad of ["", "1", "h", "1x", "1h 30m", "-1h", "1h-"])
      assert.equal(parseDurationText(bad), undefined, bad);
  });
});

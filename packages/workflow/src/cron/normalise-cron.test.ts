import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cron } from "croner";
import { CRON_OPTIONS, normaliseCron } from "./normalise-cron.js";

function ok(expr: string, opts: Parameters<typeof normaliseCron>[1] = {}): { schedule: string; warnings: string[] } {
  const r = normaliseCron(expr, opts);
  assert.ok(r.ok, `expected ${expr} to be valid: ${r.ok ? "" : r.error}`);
  return r;
}

describe("normaliseCron", () => {
  it("keeps 6 fields, prepends seconds to 5, drops a `*` year", () => {
    assert.equal(ok("*/2 * * * * *").schedule, "*/2 * * * * *");
    assert.equal(ok("*/5 * * * *").schedule, "0 */5 * * * *");
    assert.equal(ok("0 0 9 * * * *").schedule, "0 0 9 * * *");
    assert.equal(ok("  0   1 * * * *  ").schedule, "0 1 * * * *");
  });

  it("rejects a concrete year, wrong field counts and bad values", () => {
    const year = normaliseCron("0 0 0 1 1 * 2030");
    assert.ok(!year.ok && /year field other than `\*` is not supported/.test(year.error));
    const four = normaliseCron("* * * *");
    assert.ok(!four.ok && /has 4 fields/.test(four.error));
    const bad = normaliseCron("0 0 25 * * *");
    assert.ok(!bad.ok && /invalid cron/.test(bad.error));
    const word = normaliseCron("every minute please ok now");
    assert.ok(!word.ok);
  });

  it("warns about a numeric day of week in the original's 6-field format, showing both readings", () => {
    const r = ok("0 0 9 * * 2-6");
    assert.equal(r.schedule, "0 0 9 * * 2-6");
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0] ?? "", /read as Tue-Sat .*original cdktr read it as Mon-Fri/);
    assert.deepEqual(ok("0 0 9 * * MON-FRI").warnings, [], "names are unambiguous");
    assert.deepEqual(ok("0 9 * * 1-5").warnings, [], "5-field crons never existed in the original");
    assert.deepEqual(ok("0 0 9 * * *").warnings, []);
  });

  it("cron_dialect cdktr translates 1-7 (Sunday 1) to 0-6 and matches croner's Quartz weekdays", () => {
    const cases: Array<[string, string]> = [
      ["0 0 9 * * 2-6", "0 0 9 * * 1-5"],
      ["0 0 9 * * 1,7", "0 0 9 * * 0,6"],
      ["0 0 9 * * 1-7/2", "0 0 9 * * 0-6/2"],
      ["0 0 9 ? * 6#2", "0 0 9 ? * 5#2"],
      ["0 0 9 * * 6L", "0 0 9 * * 5L"],
      ["0 0 9 * * MON-FRI", "0 0 9 * * MON-FRI"],
    ];
    for (const [input, expected] of cases) {
      const r = ok(input, { dialect: "cdktr" });
      assert.equal(r.schedule, expected);
      assert.deepEqual(r.warnings, []);
      const start = new Date("2026-01-01T00:00:00Z");
      const ours = new Cron(r.schedule, { ...CRON_OPTIONS, timezone: "UTC" })
        .nextRuns(10, start)
        .map((d) => d.toISOString());
      const quartz = new Cron(input, { mode: "6-part", timezone: "UTC", alternativeWeekdays: true })
        .nextRuns(10, start)
        .map((d) => d.toISOString());
      assert.deepEqual(ours, quartz, `${input} -> ${expected}`);
    }
    const zero = normaliseCron("0 0 9 * * 0", { dialect: "cdktr" });
    assert.ok(!zero.ok && /out of range for cron_dialect cdktr/.test(zero.error));
  });

  it("warns when day of month and day of week are both restricted (they are OR-ed)", () => {
    const r = ok("0 0 9 13 * FRI");
    assert.match(r.warnings[0] ?? "", /fires on days matching EITHER/);
    assert.deepEqual(ok("0 0 9 13 * ?").warnings, []);
  });

  it("checks the expression in the given timezone and warns when it never fires", () => {
    const r = ok("0 0 0 31 2 *", { timezone: "Europe/London" });
    assert.match(r.warnings[0] ?? "", /never fires/);
  });
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { elapsed, formatDuration, formatInstant, parseDuration, parseInstant, tryParseDuration } from "./duration.js";
import { CliError } from "../errors.js";

test("durations as users type them", () => {
  assert.equal(tryParseDuration("500ms"), 500);
  assert.equal(tryParseDuration("30s"), 30_000);
  assert.equal(tryParseDuration("5m"), 300_000);
  assert.equal(tryParseDuration("1h"), 3_600_000);
  assert.equal(tryParseDuration("2d"), 172_800_000);
  assert.equal(tryParseDuration("1w"), 604_800_000);
  assert.equal(tryParseDuration("1h30m"), 5_400_000);
  assert.equal(tryParseDuration("1.5h"), 5_400_000);
  assert.equal(tryParseDuration(" 2H "), 7_200_000);
});

test("non-durations are refused with a usage error that shows the format", () => {
  for (const bad of ["", "1", "h", "1x", "1h 30m", "-1h", "1h-", "abc"]) {
    assert.equal(tryParseDuration(bad), undefined, bad);
  }
  assert.throws(
    () => parseDuration("3x", "--since"),
    (e: unknown) => e instanceof CliError && e.exitCode === 2 && /invalid --since "3x".*30s, 5m, 1h/.test(e.message),
  );
});

test("instants: a duration ago, now, or ISO-8601", () => {
  const now = Date.parse("2026-11-28T13:00:00.000Z");
  assert.equal(parseInstant("1h", "--since", now), "2026-11-28T12:00:00.000Z");
  assert.equal(parseInstant("now", "--until", now), "2026-11-28T13:00:00.000Z");
  assert.equal(parseInstant("2026-11-27T10:00:00+01:00", "--since", now), "2026-11-27T09:00:00.000Z");
  assert.equal(parseInstant("2026-11-27T10:00:00Z", "--since", now), "2026-11-27T10:00:00.000Z");
  assert.throws(
    () => parseInstant("yesterday", "--since", now),
    (e: unknown) => e instanceof CliError && e.exitCode === 2,
  );
  assert.throws(() => parseInstant("2026-13-45", "--since", now), CliError);
});

test("durations for people", () => {
  assert.equal(formatDuration(850), "850ms");
  assert.equal(formatDuration(12_340), "12.3s");
  assert.equal(formatDuration(245_000), "4m05s");
  assert.equal(formatDuration(7_380_000), "2h03m");
  assert.equal(formatDuration(273_600_000), "3d04h");
  assert.equal(formatDuration(-1), "-");
  assert.equal(elapsed(null, null), "-");
  assert.equal(elapsed("2026-11-28T13:00:00.000Z", "2026-11-28T13:00:01.500Z"), "1.5s");
});

test("instants for people in a given timezone", () => {
  assert.equal(formatInstant("2026-07-01T12:00:00.000Z", { timeZone: "UTC" }), "2026-07-01 12:00:00");
  assert.equal(formatInstant("2026-07-01T12:00:00.000Z", { timeZone: "Europe/London" }), "2026-07-01 13:00:00");
  assert.match(
    formatInstant("2026-07-01T12:00:00.000Z", { timeZone: "America/New_York", withZone: true }),
    /^2026-07-01 08:00:00 EDT$/,
  );
  assert.equal(formatInstant(null), "-");
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CronSchedule, nextOccurrences } from "./cron-schedule.js";

const iso = (t: number): string => new Date(t).toISOString();
const next = (schedule: string, timezone: string, from: string, n: number): string[] =>
  CronSchedule.parse({ schedule, timezone }).next(Date.parse(from), n).map(iso);

describe("CronSchedule: plain schedules", () => {
  it("computes UTC occurrences strictly after `from`", () => {
    assert.deepEqual(next("0 0 9 * * 1-5", "UTC", "2026-11-27T09:00:00.000Z", 3), [
      "2026-11-30T09:00:00.000Z", // Friday 27th at 9:00 is excluded (strictly after), then Mon
      "2026-12-01T09:00:00.000Z",
      "2026-12-02T09:00:00.000Z",
    ]);
  });

  it("uses day of week 0-6 with Sunday 0", () => {
    assert.deepEqual(next("0 0 12 * * 0", "UTC", "2026-11-28T00:00:00.000Z", 1), ["2026-11-29T12:00:00.000Z"]);
  });

  it("evaluates in the workflow's timezone", () => {
    assert.deepEqual(next("0 0 9 * * *", "America/New_York", "2026-11-28T00:00:00.000Z", 2), [
      "2026-11-28T14:00:00.000Z",
      "2026-11-29T14:00:00.000Z",
    ]);
  });

  it("fires every second for `* * * * * *`", () => {
    assert.deepEqual(next("* * * * * *", "UTC", "2026-11-28T10:00:00.500Z", 3), [
      "2026-11-28T10:00:01.000Z",
      "2026-11-28T10:00:02.000Z",
      "2026-11-28T10:00:03.000Z",
    ]);
  });

  it("respects startTime (an occurrence exactly at it counts)", () => {
    const s = CronSchedule.parse({ schedule: "0 0 * * * *", timezone: "UTC", startTime: "2026-12-01T05:00:00.000Z" });
    assert.deepEqual(s.next(Date.parse("2026-11-28T00:00:00Z"), 2).map(iso), [
      "2026-12-01T05:00:00.000Z",
      "2026-12-01T06:00:00.000Z",
    ]);
    assert.deepEqual(
      nextOccurrences(
        { schedule: "0 0 * * * *", startTime: "2026-12-01T05:30:00.000Z" },
        new Date("2026-11-28T00:00:00Z"),
        1,
      ).map((d) => d.toISOString()),
      ["2026-12-01T06:00:00.000Z"],
    );
  });

  it("rejects bad expressions, timezones and start times with the workflow id", () => {
    assert.throws(
      () => CronSchedule.parse({ schedule: "0 61 * * * *" }, "etl"),
      (e: unknown) => {
        assert.equal((e as { code: string }).code, "INVALID_SCHEDULE");
        assert.match((e as Error).message, /workflow etl: invalid cron "0 61 \* \* \* \*"/);
        return true;
      },
    );
    assert.throws(() => CronSchedule.parse({ schedule: "* * * * * *", timezone: "Mars/Olympus" }), /unknown timezone/);
    assert.throws(() => CronSchedule.parse({ schedule: "* * * * * *", startTime: "yesterday" }), /start time/);
    assert.throws(() => CronSchedule.parse({ schedule: "* * *" }), /3 fields/);
    assert.throws(() => CronSchedule.parse({ schedule: "0 0 0 30 2 *" }), /never matches/);
  });

  it("schedules sharing an expression answer independently (shared compiled pattern)", () => {
    const utc = CronSchedule.parse({ schedule: "0 0 9 * * *", timezone: "UTC" });
    const ny = CronSchedule.parse({ schedule: "0 0 9 * * *", timezone: "America/New_York" });
    const later = CronSchedule.parse({
      schedule: "0 0 9 * * *",
      timezone: "UTC",
      startTime: "2026-12-03T00:00:00.000Z",
    });
    const from = Date.parse("2026-11-28T00:00:00.000Z");
    // interleaved calls with the same and with different instants
    const got: string[] = [];
    for (const s of [utc, ny, later, utc, later, ny]) got.push(iso(s.nextAfter(from) ?? 0));
    assert.deepEqual(got, [
      "2026-11-28T09:00:00.000Z",
      "2026-11-28T14:00:00.000Z",
      "2026-12-03T09:00:00.000Z",
      "2026-11-28T09:00:00.000Z",
      "2026-12-03T09:00:00.000Z",
      "2026-11-28T14:00:00.000Z",
    ]);
    assert.deepEqual(utc.next(Date.parse("2026-11-28T09:00:00.000Z"), 2).map(iso), [
      "2026-11-29T09:00:00.000Z",
      "2026-11-30T09:00:00.000Z",
    ]);
    assert.deepEqual(ny.next(Date.parse("2026-11-28T09:00:00.000Z"), 1).map(iso), ["2026-11-28T14:00:00.000Z"]);
  });

  it("latest() returns the most recent occurrences in a range", () => {
    const s = CronSchedule.parse({ schedule: "* * * * * *" });
    const from = Date.parse("2026-11-28T00:00:00Z");
    const until = from + 86_400_000; // a day of every-second occurrences
    assert.deepEqual(s.latest(from, until, 2).map(iso), ["2026-11-28T23:59:59.000Z", "2026-11-29T00:00:00.000Z"]);
    assert.deepEqual(s.latest(until - 1500, until, 5).map(iso), [
      "2026-11-28T23:59:59.000Z",
      "2026-11-29T00:00:00.000Z",
    ]);
    const yearly = CronSchedule.parse({ schedule: "0 0 0 1 1 *" });
    assert.deepEqual(
      yearly.latest(Date.parse("2020-06-01T00:00:00Z"), Date.parse("2026-11-28T00:00:00Z"), 1).map(iso),
      ["2026-01-01T00:00:00.000Z"],
    );
    assert.deepEqual(yearly.latest(Date.parse("2026-06-01T00:00:00Z"), Date.parse("2026-11-28T00:00:00Z"), 1), []);
  });
});

describe("CronSchedule: DST rules", () => {
  // Europe/London: spring forward 2026-03-29 01:00 GMT -> 02:00 BST (01:00Z);
  //                fall back     2026-10-25 02:00 BST -> 01:00 GMT (01:00Z).
  // America/New_York: spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z);
  //                   fall back     2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).

  it("London fall-back: a fixed-hour schedule fires once, at the first 01:30 (BST)", () => {
    assert.deepEqual(next("0 30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", 3), [
      "2026-10-25T00:30:00.000Z", // 01:30 BST; 01:30 GMT (01:30Z) is not fired
      "2026-10-26T01:30:00.000Z",
      "2026-10-27T01:30:00.000Z",
    ]);
  });

  it("London fall-back: a fixed-hour list fires only in the first pass", () => {
    assert.deepEqual(next("0 0,30 1 * * *", "Europe/London", "2026-10-24T23:59:00Z", 3), [
      "2026-10-25T00:00:00.000Z",
      "2026-10-25T00:30:00.000Z",
      "2026-10-26T01:00:00.000Z",
    ]);
  });

  it("London fall-back: wildcard hours fire at every real instant (both 01:30s)", () => {
    assert.deepEqual(next("0 30 * * * *", "Europe/London", "2026-10-24T23:00:00Z", 5), [
      "2026-10-24T23:30:00.000Z", // 00:30 BST
      "2026-10-25T00:30:00.000Z", // 01:30 BST
      "2026-10-25T01:30:00.000Z", // 01:30 GMT
      "2026-10-25T02:30:00.000Z", // 02:30 GMT
      "2026-10-25T03:30:00.000Z",
    ]);
  });

  it("London fall-back: `next` from inside the overlap still finds the second pass", () => {
    // 01:40 BST (00:40Z): the next 01:30 of a wildcard-hour schedule is 01:30 GMT.
    assert.deepEqual(next("0 30 * * * *", "Europe/London", "2026-10-25T00:40:00Z", 1), ["2026-10-25T01:30:00.000Z"]);
    // every-second schedule: every real second through the overlap, none twice
    const s = CronSchedule.parse({ schedule: "* * * * * *", timezone: "Europe/London" });
    const got = s.between(Date.parse("2026-10-25T00:59:58Z"), Date.parse("2026-10-25T01:00:02Z"));
    assert.deepEqual(got.map(iso), [
      "2026-10-25T00:59:59.000Z",
      "2026-10-25T01:00:00.000Z",
      "2026-10-25T01:00:01.000Z",
      "2026-10-25T01:00:02.000Z",
    ]);
  });

  it("London spring-forward: a time inside the gap fires once, at the end of the gap", () => {
    assert.deepEqual(next("0 30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", 3), [
      "2026-03-29T01:00:00.000Z", // 01:30 does not exist: 02:00 BST
      "2026-03-30T00:30:00.000Z", // 01:30 BST
      "2026-03-31T00:30:00.000Z",
    ]);
    // several gap times collapse into one trigger
    assert.deepEqual(next("0 */15 1 * * *", "Europe/London", "2026-03-29T00:00:00Z", 2), [
      "2026-03-29T01:00:00.000Z",
      "2026-03-30T00:00:00.000Z",
    ]);
  });

  it("London spring-forward: wildcard hours skip wall-clock times that do not exist", () => {
    assert.deepEqual(next("0 30 * * * *", "Europe/London", "2026-03-29T00:00:00Z", 3), [
      "2026-03-29T00:30:00.000Z", // 00:30 GMT
      "2026-03-29T01:30:00.000Z", // 02:30 BST (01:30 local never existed)
      "2026-03-29T02:30:00.000Z",
    ]);
    const s = CronSchedule.parse({ schedule: "* * * * * *", timezone: "Europe/London" });
    assert.deepEqual(s.between(Date.parse("2026-03-29T00:59:58Z"), Date.parse("2026-03-29T01:00:01Z")).map(iso), [
      "2026-03-29T00:59:59.000Z",
      "2026-03-29T01:00:00.000Z",
      "2026-03-29T01:00:01.000Z",
    ]);
  });

  it("New York spring-forward: 02:30 fires at 03:00 EDT; hourly keeps real hours", () => {
    assert.deepEqual(next("0 30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3), [
      "2026-03-08T07:00:00.000Z", // 03:00 EDT
      "2026-03-09T06:30:00.000Z",
      "2026-03-10T06:30:00.000Z",
    ]);
    assert.deepEqual(next("0 30 * * * *", "America/New_York", "2026-03-08T05:00:00Z", 3), [
      "2026-03-08T05:30:00.000Z", // 00:30 EST
      "2026-03-08T06:30:00.000Z", // 01:30 EST
      "2026-03-08T07:30:00.000Z", // 03:30 EDT
    ]);
    assert.deepEqual(next("0 0 */2 * * *", "America/New_York", "2026-03-08T04:00:00Z", 3), [
      "2026-03-08T05:00:00.000Z", // 00:00 EST
      "2026-03-08T08:00:00.000Z", // 04:00 EDT (02:00 never existed)
      "2026-03-08T10:00:00.000Z",
    ]);
  });

  it("New York fall-back: fixed hour once (first, EDT); wildcard hours twice", () => {
    assert.deepEqual(next("0 30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2), [
      "2026-11-01T05:30:00.000Z", // 01:30 EDT
      "2026-11-02T06:30:00.000Z", // 01:30 EST
    ]);
    assert.deepEqual(next("0 */30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z", 3), [
      "2026-11-01T05:00:00.000Z",
      "2026-11-01T05:30:00.000Z",
      "2026-11-02T06:00:00.000Z",
    ]);
    assert.deepEqual(next("0 30 * * * *", "America/New_York", "2026-11-01T04:00:00Z", 4), [
      "2026-11-01T04:30:00.000Z", // 00:30 EDT
      "2026-11-01T05:30:00.000Z", // 01:30 EDT
      "2026-11-01T06:30:00.000Z", // 01:30 EST
      "2026-11-01T07:30:00.000Z", // 02:30 EST
    ]);
  });

  it("long jumps across several transitions still apply the rules", () => {
    // yearly on the London fall-back day at 01:30, from January: the first (BST) pass
    assert.deepEqual(next("0 30 1 25 10 *", "Europe/London", "2026-01-01T00:00:00Z", 1), ["2026-10-25T00:30:00.000Z"]);
    // yearly inside the New York gap, from the previous summer: the end of the gap
    assert.deepEqual(next("0 30 2 8 3 *", "America/New_York", "2025-07-01T00:00:00Z", 1), ["2026-03-08T07:00:00.000Z"]);
    // every Sunday 01:30 in New York across a whole year: once per week, never twice
    const sundays = next("0 30 1 * * 0", "America/New_York", "2026-01-01T00:00:00Z", 60);
    assert.equal(new Set(sundays).size, 60);
    assert.ok(sundays.includes("2026-11-01T05:30:00.000Z") && !sundays.includes("2026-11-01T06:30:00.000Z"));
  });

  it("odd zones: a midnight gap (Santiago) and a 30-minute shift (Lord Howe)", () => {
    // America/Santiago springs forward at 24:00 on 2026-09-05: local 00:00 on the 6th never exists
    assert.deepEqual(next("0 0 0 * * *", "America/Santiago", "2026-09-05T12:00:00Z", 2), [
      "2026-09-06T04:00:00.000Z", // 01:00 -03 (end of the gap)
      "2026-09-07T03:00:00.000Z", // 00:00 -03
    ]);
    // Australia/Lord_Howe moves from +10:30 to +11 at 02:00 on 2026-10-04: 02:15 does not exist
    assert.deepEqual(next("0 15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", 2), [
      "2026-10-03T15:30:00.000Z", // 02:30 +11 = end of the gap
      "2026-10-04T15:15:00.000Z", // 02:15 +11
    ]);
  });
});

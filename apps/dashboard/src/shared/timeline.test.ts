import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatDuration, formatRelative, ganttLayout } from "./timeline.js";

const t = (sec: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, sec)).toISOString();
const ms = (sec: number): number => Date.UTC(2026, 0, 1, 0, 0, sec);

describe("Gantt layout", () => {
  it("scales bars to the run's span", () => {
    const g = ganttLayout(
      [
        { taskId: "a", status: "COMPLETED", startedAt: t(0), finishedAt: t(25) },
        { taskId: "b", status: "FAILED", startedAt: t(25), finishedAt: t(100) },
      ],
      { startedAt: t(0), finishedAt: t(100) },
      ms(500),
    );
    assert.equal(g.spanMs, 100_000);
    assert.deepEqual(
      g.bars.map((b) => [b.taskId, b.leftPct, b.widthPct, b.durationMs, b.running]),
      [
        ["a", 0, 25, 25_000, false],
        ["b", 25, 75, 75_000, false],
      ],
    );
  });

  it("runs a running task's bar to now and lists reused and unstarted tasks without a bar", () => {
    const g = ganttLayout(
      [
        { taskId: "a", status: "COMPLETED", startedAt: null, finishedAt: null, reusedFrom: "run-1" },
        { taskId: "b", status: "RUNNING", startedAt: t(10), finishedAt: null },
        { taskId: "c", status: "PENDING", startedAt: null, finishedAt: null },
      ],
      { startedAt: t(0), finishedAt: null },
      ms(40),
    );
    assert.deepEqual(g.reused, [{ taskId: "a", reusedFrom: "run-1" }]);
    assert.deepEqual(g.notStarted, [{ taskId: "c", status: "PENDING" }]);
    assert.equal(g.bars.length, 1);
    assert.equal(g.bars[0]?.leftPct, 25);
    assert.equal(g.bars[0]?.widthPct, 75);
    assert.equal(g.bars[0]?.running, true);
  });

  it("keeps tiny bars visible and never lets a bar overflow the chart", () => {
    const g = ganttLayout(
      [
        { taskId: "tiny", status: "COMPLETED", startedAt: t(100), finishedAt: t(100) },
        { taskId: "early", status: "COMPLETED", startedAt: t(0), finishedAt: t(50) },
      ],
      { startedAt: t(10), finishedAt: t(100) },
      ms(200),
    );
    const tiny = g.bars.find((b) => b.taskId === "tiny");
    assert.ok(tiny !== undefined);
    assert.equal(tiny.widthPct > 0, true);
    assert.ok(tiny.leftPct + tiny.widthPct <= 100);
    assert.equal(g.startMs, ms(0));
  });

  it("survives a run with no times at all", () => {
    const g = ganttLayout([], { startedAt: null, finishedAt: null }, ms(0));
    assert.equal(g.spanMs, 1);
    assert.deepEqual(g.bars, []);
  });
});

describe("durations", () => {
  it("formats milliseconds to days in short units", () => {
    assert.equal(formatDuration(850), "850ms");
    assert.equal(formatDuration(4_250), "4.2s");
    assert.equal(formatDuration(42_000), "42s");
    assert.equal(formatDuration(187_000), "3m 07s");
    assert.equal(formatDuration(7_500_000), "2h 05m");
    assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), "3d 04h");
    assert.equal(formatDuration(-5), "0ms");
    assert.equal(formatDuration(Number.NaN), "0ms");
  });

  it("formats relative times in the past and future", () => {
    assert.equal(formatRelative(ms(0), ms(0) + 500), "just now");
    assert.equal(formatRelative(ms(0), ms(30)), "30s ago");
    assert.equal(formatRelative(ms(0), ms(5)), "5s ago");
    assert.equal(formatRelative(ms(200), ms(20)), "in 3m");
  });
});

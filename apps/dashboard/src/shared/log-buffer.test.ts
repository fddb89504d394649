import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { filterLogLines, LogBuffer, splitMatches } from "./log-buffer.js";

interface Line {
  time: string;
  taskId: string;
  seq: number;
  level: string;
  line: string;
}

function at(sec: number, taskId: string, seq: number, level = "info", line = `${taskId}#${seq}`): Line {
  return { time: new Date(Date.UTC(2026, 0, 1, 0, 0, sec)).toISOString(), taskId, seq, level, line };
}

const ids = (lines: readonly Line[]): string[] => lines.map((l) => `${l.taskId}#${l.seq}`);

describe("log buffer", () => {
  it("merges live lines and paged history, deduplicating by (taskId, seq), ordered by time then seq", () => {
    const buf = new LogBuffer<Line>();
    // The live stream delivers recent lines first, then the history pages arrive (overlapping).
    assert.equal(buf.add([at(5, "b", 3), at(6, "a", 4)]), 2);
    assert.equal(buf.add([at(1, "a", 1), at(2, "a", 2), at(5, "b", 3)]), 2);
    assert.equal(buf.add([at(3, "a", 3), at(5, "b", 2), at(6, "a", 4)]), 2);
    assert.deepEqual(ids(buf.lines()), ["a#1", "a#2", "a#3", "b#2", "b#3", "a#4"]);
    assert.equal(buf.added, 6);
    assert.equal(buf.size, 6);
  });

  it("treats the same seq of two tasks as two lines", () => {
    const buf = new LogBuffer<Line>();
    buf.add([at(1, "a", 1), at(1, "b", 1)]);
    assert.equal(buf.size, 2);
  });

  it("keeps only the newest lines past its cap and refuses lines older than all it keeps", () => {
    const buf = new LogBuffer<Line>(3);
    buf.add([at(1, "a", 1), at(2, "a", 2), at(3, "a", 3), at(4, "a", 4)]);
    assert.deepEqual(ids(buf.lines()), ["a#2", "a#3", "a#4"]);
    assert.equal(buf.add([at(0, "z", 1)]), 0);
    assert.equal(buf.add([at(5, "a", 5)]), 1);
    assert.deepEqual(ids(buf.lines()), ["a#3", "a#4", "a#5"]);
  });

  it("never shows more than its cap under a flood of single lines", () => {
    const buf = new LogBuffer<Line>(16);
    for (let i = 0; i < 1000; i++) {
      buf.add([at(i, "a", i)]);
      assert.equal(buf.lines().length, Math.min(i + 1, 16));
      assert.equal(buf.size, Math.min(i + 1, 16));
    }
    assert.equal(buf.lines()[0]?.seq, 984);
    assert.equal(buf.add([at(983, "a", 983)]), 0);
    assert.equal(buf.add([at(999, "a", 999)]), 0);
  });

  it("returns the same snapshot until something changes", () => {
    const buf = new LogBuffer<Line>();
    buf.add([at(1, "a", 1)]);
    const first = buf.lines();
    assert.equal(buf.lines(), first);
    buf.add([at(1, "a", 1)]);
    assert.equal(buf.lines(), first);
    buf.add([at(2, "a", 2)]);
    assert.notEqual(buf.lines(), first);
    buf.clear();
    assert.equal(buf.lines().length, 0);
  });

  it("filters by minimum level, task and case-insensitive text, keeping the newest `limit`", () => {
    const lines = [
      at(1, "a", 1, "debug", "Starting"),
      at(2, "a", 2, "info", "hello WORLD"),
      at(3, "b", 1, "warn", "world is big"),
      at(4, "b", 2, "error", "boom"),
    ];
    const text = (l: Line): string => l.line;
    const all = filterLogLines(lines, { minLevel: "", taskId: "", search: "" }, text, 10);
    assert.equal(all.shown.length, 4);
    assert.deepEqual(ids(filterLogLines(lines, { minLevel: "warn", taskId: "", search: "" }, text, 10).shown), [
      "b#1",
      "b#2",
    ]);
    assert.deepEqual(ids(filterLogLines(lines, { minLevel: "", taskId: "a", search: "world" }, text, 10).shown), [
      "a#2",
    ]);
    const limited = filterLogLines(lines, { minLevel: "", taskId: "", search: "" }, text, 2);
    assert.deepEqual(ids(limited.shown), ["b#1", "b#2"]);
    assert.equal(limited.matched, 4);
    const searched = filterLogLines(lines, { minLevel: "", taskId: "", search: "O" }, text, 1);
    assert.deepEqual(ids(searched.shown), ["b#2"]);
    assert.equal(searched.matched, 3);
  });

  it("splits text around case-insensitive matches for highlighting", () => {
    assert.deepEqual(splitMatches("Error: an error", "ERROR"), [
      { text: "Error", match: true },
      { text: ": an ", match: false },
      { text: "error", match: true },
    ]);
    assert.deepEqual(splitMatches("abc", ""), [{ text: "abc", match: false }]);
    assert.deepEqual(splitMatches("abc", "x"), [{ text: "abc", match: false }]);
  });
});

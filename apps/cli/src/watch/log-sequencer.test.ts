import { test } from "node:test";
import assert from "node:assert/strict";
import type { LogLine } from "@cdktr/protocol";
import { LogSequencer } from "./log-sequencer.js";

function line(taskId: string, seq: number, runId = "r1"): LogLine {
  return {
    time: new Date(Date.UTC(2026, 10, 28, 13, 0, 0, seq)).toISOString(),
    runId,
    workflowId: "wf",
    taskId,
    stream: "stdout",
    level: "info",
    seq,
    line: `${taskId}-${seq}`,
  };
}
const texts = (ls: LogLine[]): string[] => ls.map((l) => l.line);

test("lines come out once each, in per-task sequence order, whatever the arrival order", () => {
  const s = new LogSequencer();
  s.add(line("a", 2));
  s.add(line("b", 1));
  assert.deepEqual(texts(s.drain()), ["b-1"]);
  s.add(line("a", 3));
  s.add(line("a", 1));
  assert.deepEqual(texts(s.drain()), ["a-1", "a-2", "a-3"]);
  // duplicates (live + queried) are dropped
  assert.equal(s.add(line("a", 2)), false);
  assert.equal(s.add(line("b", 1)), false);
  assert.deepEqual(s.drain(), []);
});

test("a hole is reported with where to query from, and filled", () => {
  let now = 1000;
  const s = new LogSequencer({ now: () => now });
  s.add(line("a", 1));
  s.add(line("a", 4));
  now = 1600;
  assert.deepEqual(
    s.gaps().map((g) => [g.taskId, g.fromSeq, g.since, g.ageMs]),
    [["a", 2, line("a", 1).time, 600]],
  );
  s.add(line("a", 3));
  s.add(line("a", 2));
  assert.deepEqual(texts(s.drain()), ["a-1", "a-2", "a-3", "a-4"]);
  assert.deepEqual(s.gaps(), []);
});

test("runs are kept apart; giving up releases held lines and counts the missing ones", () => {
  const s = new LogSequencer();
  s.add(line("a", 1, "r1"));
  s.add(line("a", 3, "r2"));
  s.add(line("a", 5, "r2"));
  assert.deepEqual(texts(s.drain()), ["a-1"]);
  const rest = s.releaseAll();
  assert.deepEqual(texts(rest.lines), ["a-3", "a-5"]);
  assert.equal(rest.missing, 3); // r2: 1, 2 and 4
});

test("seed and skipToHeld start a task after lines outside the window", () => {
  const s = new LogSequencer();
  s.seed("r1", "a", 10);
  s.add(line("a", 9));
  s.add(line("a", 10));
  assert.deepEqual(texts(s.drain()), ["a-10"]);
  s.add(line("b", 7));
  s.add(line("b", 8));
  assert.equal(s.started("r1", "b"), false);
  s.skipToHeld("r1", "b");
  assert.deepEqual(texts(s.drain()), ["b-7", "b-8"]);
  assert.equal(s.started("r1", "b"), true);
});

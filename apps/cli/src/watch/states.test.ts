import { test } from "node:test";
import assert from "node:assert/strict";
import type { RunRecord, TaskRunRecord } from "@cdktr/protocol";
import { isNewerRun, isNewerTask, missedRunStates, missedTaskStates } from "./states.js";

const run = (status: RunRecord["status"]): RunRecord => ({
  runId: "r",
  workflowId: "wf",
  status,
  source: "cli",
  triggeredBy: null,
  idempotencyKey: null,
  params: {},
  scheduledFor: null,
  createdAt: "2026-11-28T13:00:00.000Z",
  startedAt: null,
  finishedAt: null,
  agentId: null,
  reason: null,
  message: null,
});
const task = (status: TaskRunRecord["status"], attempt: number): TaskRunRecord => ({
  runId: "r",
  taskId: "t",
  status,
  attempt,
  startedAt: null,
  finishedAt: null,
  exitCode: null,
  signal: null,
  reason: null,
  message: null,
});

test("an older observation never overwrites a newer one", () => {
  assert.equal(isNewerRun(undefined, run("QUEUED")), true);
  assert.equal(isNewerRun(run("QUEUED"), run("RUNNING")), true);
  assert.equal(isNewerRun(run("RUNNING"), run("ASSIGNED")), false);
  assert.equal(isNewerRun(run("RUNNING"), run("RUNNING")), false);
  assert.equal(isNewerRun(run("COMPLETED"), run("FAILED")), false);
  assert.equal(isNewerRun(run("RUNNING"), run("CRASHED")), true);
});

test("task retries: a later attempt is newer even when RUNNING again", () => {
  assert.equal(isNewerTask(task("FAILED", 1), task("RUNNING", 2)), true);
  assert.equal(isNewerTask(task("RUNNING", 2), task("FAILED", 1)), false);
  assert.equal(isNewerTask(task("RUNNING", 1), task("COMPLETED", 1)), true);
  assert.equal(isNewerTask(task("COMPLETED", 1), task("RUNNING", 1)), false);
  assert.equal(isNewerTask(task("PENDING", 0), task("SKIPPED", 0)), true);
});

test("the states a run or task passed through unseen are filled in, in order, with what was known then", () => {
  const statuses = (rs: { status: string }[]) => rs.map((r) => r.status);
  const started = { startedAt: "2026-11-28T13:00:01.000Z", agentId: "a1" };
  // Joined late: first seen RUNNING, or only the end.
  assert.deepEqual(statuses(missedRunStates(undefined, { ...run("RUNNING"), ...started })), ["QUEUED", "ASSIGNED"]);
  const done = { ...run("FAILED"), ...started, finishedAt: "2026-11-28T13:00:02.000Z", reason: "exit_code" as const };
  const filled = missedRunStates(undefined, done);
  assert.deepEqual(statuses(filled), ["QUEUED", "ASSIGNED", "RUNNING"]);
  assert.equal(filled[0]?.agentId, null, "QUEUED had no agent yet");
  assert.deepEqual(
    filled.map((r) => [r.finishedAt, r.reason]),
    [
      [null, null],
      [null, null],
      [null, null],
    ],
  );
  assert.equal(filled[2]?.startedAt, started.startedAt);
  assert.deepEqual(statuses(missedRunStates(run("QUEUED"), { ...run("RUNNING"), ...started })), ["ASSIGNED"]);
  assert.deepEqual(statuses(missedRunStates(run("ASSIGNED"), { ...run("RUNNING"), ...started })), []);
  // Never invented: a run cancelled while queued never started; a SKIPPED run was never queued.
  assert.deepEqual(statuses(missedRunStates(undefined, run("CANCELLED"))), ["QUEUED"]);
  assert.deepEqual(statuses(missedRunStates(run("QUEUED"), run("CANCELLED"))), []);
  assert.deepEqual(statuses(missedRunStates(undefined, run("SKIPPED"))), []);
  assert.deepEqual(statuses(missedRunStates(undefined, run("QUEUED"))), []);

  const ran = { startedAt: "2026-11-28T13:00:01.000Z", finishedAt: "2026-11-28T13:00:02.000Z", exitCode: 0 };
  const t1 = missedTaskStates(task("PENDING", 0), { ...task("COMPLETED", 1), ...ran });
  assert.deepEqual(
    t1.map((t) => [t.status, t.attempt, t.finishedAt, t.exitCode]),
    [["RUNNING", 1, null, null]],
  );
  assert.deepEqual(missedTaskStates({ ...task("RUNNING", 1), ...ran }, { ...task("COMPLETED", 1), ...ran }), []);
  assert.equal(missedTaskStates({ ...task("FAILED", 1), ...ran }, { ...task("COMPLETED", 2), ...ran }).length, 1);
  assert.deepEqual(missedTaskStates(undefined, task("SKIPPED", 0)), [], "a skipped task never started");
});

import { test } from "node:test";
import assert from "node:assert/strict";
import type { RunRecord, TaskRunRecord } from "@cdktr/protocol";
import { isNewerRun, isNewerTask } from "./states.js";

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

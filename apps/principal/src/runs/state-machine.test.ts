import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isCdktrError, isTerminalRunStatus, RUN_STATUSES } from "@cdktr/protocol";
import {
  admitRun,
  cancelEffect,
  canTransitionRun,
  checkConfirm,
  checkRunReport,
  checkTaskReport,
  taskTransition,
} from "./state-machine.js";

describe("run state machine", () => {
  it("allows exactly the documented run transitions", () => {
    const allowed = new Set([
      "QUEUED>ASSIGNED",
      "QUEUED>CANCELLED",
      "ASSIGNED>RUNNING",
      "ASSIGNED>QUEUED",
      "ASSIGNED>CANCELLED",
      "ASSIGNED>CRASHED",
      "RUNNING>COMPLETED",
      "RUNNING>FAILED",
      "RUNNING>CANCELLED",
      "RUNNING>CRASHED",
    ]);
    for (const from of RUN_STATUSES) {
      for (const to of RUN_STATUSES)
        assert.equal(canTransitionRun(from, to), allowed.has(`${from}>${to}`), `${from} -> ${to}`);
    }
    assert.deepEqual(RUN_STATUSES.filter(isTerminalRunStatus), [
      "COMPLETED",
      "FAILED",
      "CRASHED",
      "CANCELLED",
      "SKIPPED",
    ]);
  });

  it("task reports: retries need a higher attempt; resends are duplicates; terminal states stay", () => {
    assert.equal(taskTransition("PENDING", 0, "RUNNING", 1), "apply");
    assert.equal(taskTransition("PENDING", 0, "SKIPPED", 0), "apply");
    assert.equal(taskTransition("RUNNING", 1, "RUNNING", 1), "duplicate");
    assert.equal(taskTransition("RUNNING", 1, "RUNNING", 2), "apply");
    assert.equal(taskTransition("RUNNING", 2, "FAILED", 1), "invalid");
    assert.equal(taskTransition("RUNNING", 1, "COMPLETED", 1), "apply");
    assert.equal(taskTransition("FAILED", 1, "RUNNING", 2), "apply");
    assert.equal(taskTransition("FAILED", 1, "RUNNING", 1), "invalid");
    assert.equal(taskTransition("COMPLETED", 1, "RUNNING", 2), "invalid");
    assert.equal(taskTransition("COMPLETED", 1, "FAILED", 1), "invalid");
    assert.equal(taskTransition("COMPLETED", 1, "COMPLETED", 1), "duplicate");
    assert.equal(taskTransition("SKIPPED", 0, "RUNNING", 1), "invalid");
  });

  it("admits a run QUEUED, or SKIPPED only when overlap is skip and max_active_runs runs are active", () => {
    let counted = 0;
    const count = (n: number) => () => {
      counted++;
      return n;
    };
    assert.deepEqual(admitRun({ id: "w", overlap: "queue", maxActiveRuns: 1 }, count(5)), { status: "QUEUED" });
    assert.deepEqual(admitRun({ id: "w", overlap: "skip", maxActiveRuns: null }, count(5)), { status: "QUEUED" });
    assert.equal(counted, 0, "the active count is only asked for when it decides");
    assert.deepEqual(admitRun({ id: "w", overlap: "skip", maxActiveRuns: 2 }, count(1)), { status: "QUEUED" });
    assert.deepEqual(admitRun({ id: "w", overlap: "skip", maxActiveRuns: 2 }, count(2)), {
      status: "SKIPPED",
      reason: "overlap_skip",
      message: "skipped: 2 run(s) of `w` already active (max_active_runs 2, overlap skip)",
    });
  });

  it("confirmations: only the holder of the current token starts an ASSIGNED run; a resend is harmless", () => {
    const run = { runId: "r", status: "ASSIGNED" as const, agentId: "a", token: "t", leaseKey: null };
    assert.equal(checkConfirm(run, "a", "t"), "start");
    assert.equal(checkConfirm({ ...run, status: "RUNNING" }, "a", "t"), "already");
    for (const [r, agent, token] of [
      [run, "b", "t"],
      [run, "a", "old"],
      [{ ...run, status: "QUEUED" as const }, "a", "t"],
      [{ ...run, status: "CANCELLED" as const }, "a", "t"],
    ] as const) {
      assert.throws(
        () => checkConfirm(r, agent, token),
        (e: unknown) => isCdktrError(e, "STALE_ASSIGNMENT"),
      );
    }
  });

  it("run reports: only the holder moves a RUNNING run; reports about CRASHED runs and repeats are late", () => {
    const running = { runId: "r", status: "RUNNING" as const, agentId: "a" };
    assert.equal(checkRunReport(running, { agentId: "a", status: "COMPLETED" }), "apply");
    assert.equal(checkRunReport(running, { agentId: "a", status: "RUNNING" }), "unchanged");
    assert.equal(checkRunReport({ ...running, status: "CRASHED" }, { agentId: "a", status: "COMPLETED" }), "late");
    assert.equal(checkRunReport({ ...running, status: "FAILED" }, { agentId: "a", status: "FAILED" }), "late");
    assert.throws(
      () => checkRunReport({ ...running, status: "FAILED" }, { agentId: "a", status: "COMPLETED" }),
      (e: unknown) => isCdktrError(e, "INVALID_TRANSITION"),
    );
    assert.throws(
      () => checkRunReport(running, { agentId: "b", status: "COMPLETED" }),
      (e: unknown) => isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    assert.throws(
      () => checkRunReport({ ...running, status: "ASSIGNED" }, { agentId: "a", status: "COMPLETED" }),
      (e: unknown) => isCdktrError(e, "INVALID_TRANSITION"),
    );
  });

  it("cancel: finished runs stay, RUNNING ones are asked of their agent, the others are cancelled now", () => {
    assert.deepEqual(
      RUN_STATUSES.map((s) => [s, cancelEffect(s)]),
      [
        ["QUEUED", "cancel"],
        ["ASSIGNED", "ask-agent"],
        ["RUNNING", "ask-agent"],
        ["COMPLETED", "none"],
        ["FAILED", "none"],
        ["CRASHED", "none"],
        ["CANCELLED", "none"],
        ["SKIPPED", "none"],
      ],
    );
  });

  it("task reports need a confirmed run held by the reporter and a known task; finished runs make them late", () => {
    const run = { runId: "r", workflowId: "w", status: "RUNNING" as const, agentId: "a" };
    const task = { status: "PENDING" as const, attempt: 0 };
    const report = { agentId: "a", taskId: "t", status: "RUNNING" as const, attempt: 1 };
    assert.equal(checkTaskReport(run, task, report), "apply");
    assert.equal(checkTaskReport(run, { status: "RUNNING", attempt: 1 }, report), "duplicate");
    assert.equal(checkTaskReport({ ...run, status: "CRASHED" }, undefined, report), "late");
    const refused: [Parameters<typeof checkTaskReport>, string][] = [
      [[{ ...run, status: "ASSIGNED" }, task, report], "INVALID_TRANSITION"],
      [[run, task, { ...report, agentId: "b" }], "STALE_ASSIGNMENT"],
      [[run, undefined, report], "INVALID_TRANSITION"],
      [[run, { status: "COMPLETED", attempt: 1 }, report], "INVALID_TRANSITION"],
      // A retry's task taken as done: not even a resend of its COMPLETED state is accepted.
      [[run, { status: "COMPLETED", attempt: 1, reusedFrom: "r0" }, report], "INVALID_TRANSITION"],
      [
        [run, { status: "COMPLETED", attempt: 1, reusedFrom: "r0" }, { ...report, status: "COMPLETED" }],
        "INVALID_TRANSITION",
      ],
    ];
    for (const [args, code] of refused) {
      assert.throws(
        () => checkTaskReport(...args),
        (e: unknown) => isCdktrError(e) && e.code === code,
      );
    }
  });
});

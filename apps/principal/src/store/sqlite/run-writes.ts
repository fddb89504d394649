import { isTerminalRunStatus, type Reason, type RunRecord, type TaskRunRecord } from "@cdktr/protocol";
import {
  admitRun,
  canTransitionRun,
  cancelEffect,
  NOT_STARTED_CANCEL,
  checkConfirm,
  checkLeaseClaim,
  checkRunReport,
  type LeaseClaim,
  type RunState,
} from "../../runs/state-machine.js";
import type {
  CancelResult,
  CrashResult,
  CreateRunInput,
  CreateRunResult,
  RunStatusUpdate,
  RunUpdateResult,
} from "../store.js";
import { findIdempotentRun, rememberIdempotencyKey } from "./idempotency.js";
import { leaseOf, reusedTaskRows, runFromRow, taskFromRow, type RunRow } from "../rows.js";
import type { WorkflowSnapshots } from "./snapshots.js";
import { activeRunCondition } from "./sql-lists.js";
import type { Tables } from "./tables.js";
import type { TaskWrites } from "./task-writes.js";

/** The fields of a `runs` row the state machine looks at. */
function stateOf(row: RunRow): RunState {
  return { runId: row.run_id, status: row.status, agentId: row.agent_id };
}

/**
 * Writes to `runs`, inside group-commit commands. Each reads the run, asks the state machine
 * (`runs/state-machine.ts`) whether and how it moves, and persists the answer with a
 * `status_history` line; nothing here decides a state rule on its own.
 */
export class RunWrites {
  private readonly active = activeRunCondition();

  constructor(
    private readonly tables: Tables,
    private readonly snapshots: WorkflowSnapshots,
    private readonly tasks: TaskWrites,
  ) {}

  /**
   * Create a run (QUEUED, or SKIPPED by the overlap policy), or return the first run of a known
   * idempotency key. `requestParams` is the canonical JSON of the caller's params.
   * @throws CdktrError IDEMPOTENCY_CONFLICT
   */
  create(now: number, input: CreateRunInput, requestParams: string): CreateRunResult {
    const t = this.tables;
    const wf = input.workflow;
    const key = input.idempotencyKey;
    if (key !== null) {
      const first = findIdempotentRun(t, input.idempotencyScope, key, wf.id, requestParams);
      if (first !== null) return { run: runFromRow(first), duplicate: true };
    }
    const snapshot = this.snapshots.write(t, wf, now);
    const admission = admitRun(wf, () => {
      const { n } = t
        .sql(`SELECT count(*) AS n FROM runs WHERE workflow_id = ? AND ${this.active.sql}`)
        .get(wf.id, ...this.active.params) as { n: number };
      return n;
    });
    const row = t.insertRun(now, {
      runId: input.runId,
      workflowId: wf.id,
      hash: snapshot,
      status: admission.status,
      source: input.source,
      triggeredBy: input.triggeredBy,
      key,
      params: JSON.stringify(input.params),
      scheduledFor: input.scheduledFor === null ? null : Date.parse(input.scheduledFor),
      upstream: input.upstream == null ? null : JSON.stringify(input.upstream),
      retryOf: input.retry?.retryOf ?? null,
      finishedAt: isTerminalRunStatus(admission.status) ? now : null,
      reason: admission.status === "SKIPPED" ? admission.reason : null,
      message: admission.status === "SKIPPED" ? admission.message : (input.message ?? null),
    });
    // A retry's tasks taken as done, with the run (a SKIPPED run never runs: none).
    if (admission.status === "QUEUED") t.insertReusedTasks(now, input.runId, reusedTaskRows(input));
    if (key !== null) {
      rememberIdempotencyKey(t, now, {
        scope: input.idempotencyScope,
        key,
        runId: input.runId,
        workflowId: wf.id,
        requestParams,
      });
    }
    this.snapshots.remember(snapshot, wf);
    return { run: runFromRow(row), duplicate: false };
  }

  /**
   * QUEUED -> ASSIGNED to `agentId` with a token and lease held by the key `leaseKey`; null when
   * the run cannot be assigned.
   */
  assign(
    now: number,
    runId: string,
    agentId: string,
    token: string,
    leaseExpiresAt: number,
    leaseKey: string | null,
  ): RunRecord | null {
    const t = this.tables;
    let row = t.runRow(runId);
    // A lease that ran out but whose expiry was never stored (its commit failed, e.g. on a full
    // disk, while the dispatcher had already put the run back in its queue): expire it first.
    if (
      row?.status === "ASSIGNED" &&
      row.token !== null &&
      row.lease_expires_at !== null &&
      row.lease_expires_at < now
    ) {
      this.expire(now, runId, row.token);
      row = t.runRow(runId);
    }
    if (row === undefined || !canTransitionRun(row.status, "ASSIGNED")) return null;
    t.sql(
      "UPDATE runs SET status = ?, agent_id = ?, token = ?, lease_key = ?, lease_expires_at = ?, updated_at = ? WHERE run_id = ?",
    ).run("ASSIGNED", agentId, token, leaseKey, leaseExpiresAt, now, runId);
    t.history(now, { runId, from: row.status, to: "ASSIGNED", agentId });
    return runFromRow(t.requireRun(runId));
  }

  /**
   * ASSIGNED -> QUEUED after the lease expired (or its agent said it did not start it), or ->
   * CANCELLED when a cancel was requested meanwhile; null when `token` is no longer the run's
   * assignment.
   */
  expire(now: number, runId: string, token: string): RunRecord | null {
    const t = this.tables;
    const row = t.runRow(runId);
    if (row === undefined || row.token !== token || !canTransitionRun(row.status, "QUEUED")) return null;
    if (row.cancel_requested === 1) {
      const message = NOT_STARTED_CANCEL;
      t.sql(
        "UPDATE runs SET status = ?, finished_at = ?, reason = ?, message = ?, token = NULL, lease_expires_at = NULL, updated_at = ? WHERE run_id = ?",
      ).run("CANCELLED", now, "cancelled", message, now, runId);
      t.history(now, { runId, from: row.status, to: "CANCELLED", agentId: row.agent_id, reason: "cancelled", message });
      return runFromRow(t.requireRun(runId));
    }
    t.sql(
      "UPDATE runs SET status = ?, agent_id = NULL, token = NULL, lease_key = NULL, lease_expires_at = NULL, updated_at = ? WHERE run_id = ?",
    ).run("QUEUED", now, runId);
    t.history(now, {
      runId,
      from: row.status,
      to: "QUEUED",
      agentId: row.agent_id,
      message: "assignment lease expired before confirmation",
    });
    return runFromRow(t.requireRun(runId));
  }

  /**
   * ASSIGNED -> RUNNING for the agent holding `token` (and the key `keyName` when not null), with
   * a PENDING row per task, started at `startedAt` (the agent's clock) or else `now`; a resent
   * confirmation returns the run as it is.
   * @throws CdktrError RUN_NOT_FOUND, STALE_ASSIGNMENT, PERMISSION_DENIED
   */
  confirm(
    now: number,
    runId: string,
    agentId: string,
    token: string,
    taskIds: readonly string[],
    keyName: string | null,
    startedAt: number | null,
  ): { run: RunRecord; tasks: TaskRunRecord[] } {
    const t = this.tables;
    const row = t.requireRun(runId);
    if (
      checkConfirm({ ...stateOf(row), token: row.token, leaseKey: row.lease_key }, agentId, token, keyName) ===
      "already"
    ) {
      return { run: runFromRow(row), tasks: t.taskRows(runId).map(taskFromRow) };
    }
    const time = startedAt ?? now;
    t.sql("UPDATE runs SET status = ?, started_at = ?, updated_at = ? WHERE run_id = ?").run(
      "RUNNING",
      time,
      now,
      runId,
    );
    t.history(now, { runId, from: row.status, to: "RUNNING", time, agentId });
    const ins = t.sql("INSERT OR IGNORE INTO task_runs (run_id, task_id, status, attempt) VALUES (?, ?, ?, 0)");
    // A retry's tasks taken as done have their rows already: they stay as they are.
    const reused = row.retry_of === null ? null : new Set(t.reusedTaskRows(runId).map((r) => r.taskId));
    for (const taskId of taskIds) {
      if (reused?.has(taskId) === true) continue;
      ins.run(runId, taskId, "PENDING");
      t.history(now, { runId, taskId, attempt: 0, from: null, to: "PENDING", agentId });
    }
    return { run: runFromRow(t.requireRun(runId)), tasks: t.taskRows(runId).map(taskFromRow) };
  }

  /**
   * Apply an agent's run report (a late one is recorded in the history only). A CANCELLED run
   * takes its unfinished tasks with it. With a `claim`, only the key holding the lease with the
   * run's token may report.
   * @throws CdktrError RUN_NOT_FOUND, INVALID_TRANSITION, STALE_ASSIGNMENT, PERMISSION_DENIED
   */
  report(now: number, u: RunStatusUpdate, claim: LeaseClaim | null): RunUpdateResult {
    const t = this.tables;
    const row = t.requireRun(u.runId);
    checkLeaseClaim(leaseOf(row), claim);
    const time = Date.parse(u.time);
    const outcome = checkRunReport(stateOf(row), u);
    if (outcome === "unchanged") return { applied: true, run: runFromRow(row), tasks: [] };
    const record = (applied: boolean): void =>
      t.history(now, {
        runId: u.runId,
        from: row.status,
        to: u.status,
        time,
        applied,
        agentId: u.agentId,
        reason: u.reason ?? null,
        message: u.message ?? null,
      });
    if (outcome === "late") {
      record(false);
      return { applied: false, run: runFromRow(row), tasks: [] };
    }
    t.sql("UPDATE runs SET status = ?, finished_at = ?, reason = ?, message = ?, updated_at = ? WHERE run_id = ?").run(
      u.status,
      time,
      u.reason ?? null,
      u.message ?? null,
      now,
      u.runId,
    );
    record(true);
    const tasks =
      u.status === "CANCELLED"
        ? this.tasks.closeOpen(now, u.runId, "CANCELLED", "cancelled", "run cancelled", u.agentId)
        : [];
    return { applied: true, run: runFromRow(t.requireRun(u.runId)), tasks };
  }

  /**
   * Cancel by request: a QUEUED run is CANCELLED now; an ASSIGNED or RUNNING one is flagged for
   * its agent (once); a finished one is left alone.
   * @throws CdktrError RUN_NOT_FOUND
   */
  cancel(now: number, runId: string): CancelResult {
    const t = this.tables;
    const row = t.requireRun(runId);
    switch (cancelEffect(row.status)) {
      case "none":
        return { run: runFromRow(row), cancelled: false, agentMustStop: false, tasks: [] };
      case "ask-agent":
        if (row.cancel_requested === 0) {
          t.sql("UPDATE runs SET cancel_requested = 1, updated_at = ? WHERE run_id = ?").run(now, runId);
          t.history(now, {
            runId,
            from: row.status,
            to: row.status,
            agentId: row.agent_id,
            reason: "cancelled",
            message: "cancel requested: waiting for the agent",
          });
        }
        return { run: runFromRow(row), cancelled: true, agentMustStop: true, tasks: [] };
      case "cancel": {
        const message = "cancelled by request";
        t.sql(
          "UPDATE runs SET status = ?, finished_at = ?, reason = ?, message = ?, token = NULL, updated_at = ? WHERE run_id = ?",
        ).run("CANCELLED", now, "cancelled", message, now, runId);
        t.history(now, {
          runId,
          from: row.status,
          to: "CANCELLED",
          agentId: row.agent_id,
          reason: "cancelled",
          message,
        });
        return { run: runFromRow(t.requireRun(runId)), cancelled: true, agentMustStop: false, tasks: [] };
      }
    }
  }

  /**
   * ASSIGNED/RUNNING -> CRASHED with its unfinished tasks; with `requeueRunId`, a new QUEUED run
   * with the same params (source `requeue`), each run's message naming the other. Null when the
   * run cannot crash (unknown or not held by an agent).
   */
  crash(now: number, runId: string, reason: Reason, message: string, requeueRunId: string | null): CrashResult | null {
    const t = this.tables;
    const row = t.runRow(runId);
    if (row === undefined || !canTransitionRun(row.status, "CRASHED")) return null;
    const fullMessage = requeueRunId === null ? message : `${message}; requeued as run ${requeueRunId}`;
    t.sql("UPDATE runs SET status = ?, finished_at = ?, reason = ?, message = ?, updated_at = ? WHERE run_id = ?").run(
      "CRASHED",
      now,
      reason,
      fullMessage,
      now,
      runId,
    );
    t.history(now, { runId, from: row.status, to: "CRASHED", agentId: row.agent_id, reason, message: fullMessage });
    const tasks = this.tasks.closeOpen(now, runId, "CRASHED", reason, message, row.agent_id);
    let requeued: RunRecord | null = null;
    if (requeueRunId !== null) {
      const newRow = t.insertRun(now, {
        runId: requeueRunId,
        workflowId: row.workflow_id,
        hash: row.workflow_hash,
        status: "QUEUED",
        source: "requeue",
        triggeredBy: row.triggered_by,
        key: null,
        params: row.params,
        scheduledFor: row.scheduled_for,
        upstream: row.upstream,
        retryOf: row.retry_of,
        finishedAt: null,
        reason: null,
        message: `requeue of run ${runId} (${message})`,
      });
      // A requeued retry takes the same tasks as done.
      if (row.retry_of !== null) t.insertReusedTasks(now, requeueRunId, t.reusedTaskRows(runId));
      requeued = runFromRow(newRow);
    }
    return { run: runFromRow(t.requireRun(runId)), tasks, requeued };
  }
}

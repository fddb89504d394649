import { isTerminalRunStatus, type Reason, type RunRecord, type TaskRunRecord } from "@cdktr/protocol";
import { idempotencyConflict } from "../../errors.js";
import {
  ACTIVE_RUN_STATUSES,
  admitRun,
  canTransitionRun,
  cancelEffect,
  NOT_STARTED_CANCEL,
  checkConfirm,
  checkLeaseClaim,
  checkRunReport,
  type LeaseClaim,
} from "../../runs/state-machine.js";
import { leaseOf, reusedTaskRows, runFromRow, taskFromRow, type RunRow } from "../rows.js";
import type {
  CancelResult,
  CrashResult,
  CreateRunInput,
  CreateRunResult,
  RunStatusUpdate,
  RunUpdateResult,
} from "../store.js";
import type { PgSnapshots } from "./pg-snapshots.js";
import { PgTables } from "./pg-tables.js";
import { PgTaskWrites } from "./pg-task-writes.js";
import type { IdempotencyRow, TxSql } from "./tx-sql.js";

const stateOf = (row: RunRow) => ({ runId: row.run_id, status: row.status, agentId: row.agent_id });

/**
 * Writes to `runs` on PostgreSQL, inside a lane's commands: the SQLite store's `RunWrites` step
 * for step (read the row, ask `runs/state-machine.ts`, persist the answer with a history line),
 * with the run row locked `FOR UPDATE` while it is decided on.
 */
export class PgRunWrites {
  private readonly tasks = new PgTaskWrites();

  constructor(private readonly snapshots: PgSnapshots) {}

  /**
   * Create a run (QUEUED, or SKIPPED by the overlap policy), or return the first run of a known
   * idempotency key. `requestParams` is the canonical JSON of the caller's params.
   * @throws CdktrError IDEMPOTENCY_CONFLICT
   */
  async create(sql: TxSql, now: number, input: CreateRunInput, requestParams: string): Promise<CreateRunResult> {
    const t = new PgTables(sql);
    const wf = input.workflow;
    const key = input.idempotencyKey;
    if (key !== null) {
      const first = await this.findIdempotentRun(t, input.idempotencyScope, key, wf.id, requestParams);
      if (first !== null) return { run: runFromRow(first), duplicate: true };
    }
    const snapshot = await this.snapshots.write(sql, wf, now);
    // admitRun asks for the count only under `overlap: skip` with a limit: count only then.
    const active =
      wf.overlap === "skip" && wf.maxActiveRuns !== null
        ? ((
            await sql.one<{ n: number }>("SELECT count(*) AS n FROM runs WHERE workflow_id = $1 AND status = ANY($2)", [
              wf.id,
              ACTIVE_RUN_STATUSES,
            ])
          )?.n ?? 0)
        : 0;
    const admission = admitRun(wf, () => active);
    const row = await t.insertRun(
      now,
      {
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
      },
      { scope: input.idempotencyScope, params: requestParams },
    );
    // A retry's tasks taken as done, in the run's transaction (a SKIPPED run never runs: none).
    if (admission.status === "QUEUED") await t.insertReusedTasks(now, input.runId, reusedTaskRows(input));
    this.snapshots.remember(snapshot, wf);
    return { run: runFromRow(row), duplicate: false };
  }

  /** QUEUED -> ASSIGNED with a token and lease held by `leaseKey`; null when it cannot be assigned. */
  async assign(
    sql: TxSql,
    now: number,
    runId: string,
    agentId: string,
    token: string,
    leaseExpiresAt: number,
    leaseKey: string | null,
  ): Promise<RunRecord | null> {
    const t = new PgTables(sql);
    let row = await t.lockRun(runId);
    // A lease that ran out but whose expiry was never stored (its commit failed): expire it first.
    if (
      row?.status === "ASSIGNED" &&
      row.token !== null &&
      row.lease_expires_at !== null &&
      row.lease_expires_at < now
    ) {
      await this.expire(sql, now, runId, row.token);
      row = await t.lockRun(runId);
    }
    if (row === undefined || !canTransitionRun(row.status, "ASSIGNED")) return null;
    const updated = await sql.one<RunRow>(
      `UPDATE runs SET status = $1, agent_id = $2, token = $3, lease_key = $4, lease_expires_at = $5, updated_at = $6
       WHERE run_id = $7 RETURNING *`,
      ["ASSIGNED", agentId, token, leaseKey, leaseExpiresAt, now, runId],
    );
    t.history(now, { runId, from: row.status, to: "ASSIGNED", agentId });
    return runFromRow(updated as RunRow);
  }

  /**
   * ASSIGNED -> QUEUED after the lease expired (or its agent said it did not start it), or ->
   * CANCELLED when a cancel was requested meanwhile; null when `token` is no longer the run's
   * assignment.
   */
  async expire(sql: TxSql, now: number, runId: string, token: string): Promise<RunRecord | null> {
    const t = new PgTables(sql);
    const row = await t.lockRun(runId);
    if (row === undefined || row.token !== token || !canTransitionRun(row.status, "QUEUED")) return null;
    if (row.cancel_requested === 1) {
      const message = NOT_STARTED_CANCEL;
      const cancelled = await sql.one<RunRow>(
        `UPDATE runs SET status = $1, finished_at = $2, reason = $3, message = $4, token = NULL, lease_expires_at = NULL, updated_at = $2
         WHERE run_id = $5 RETURNING *`,
        ["CANCELLED", now, "cancelled", message, runId],
      );
      t.history(now, { runId, from: row.status, to: "CANCELLED", agentId: row.agent_id, reason: "cancelled", message });
      return runFromRow(cancelled as RunRow);
    }
    const updated = await sql.one<RunRow>(
      `UPDATE runs SET status = $1, agent_id = NULL, token = NULL, lease_key = NULL, lease_expires_at = NULL, updated_at = $2
       WHERE run_id = $3 RETURNING *`,
      ["QUEUED", now, runId],
    );
    t.history(now, {
      runId,
      from: row.status,
      to: "QUEUED",
      agentId: row.agent_id,
      message: "assignment lease expired before confirmation",
    });
    return runFromRow(updated as RunRow);
  }

  /**
   * ASSIGNED -> RUNNING for the agent holding `token` (and the key `keyName` when not null), with
   * a PENDING row per task, started at `startedAt` (the agent's clock) or else `now`; a resent
   * confirmation returns the run as it is.
   * @throws CdktrError RUN_NOT_FOUND, STALE_ASSIGNMENT, PERMISSION_DENIED
   */
  async confirm(
    sql: TxSql,
    now: number,
    runId: string,
    agentId: string,
    token: string,
    taskIds: readonly string[],
    keyName: string | null,
    startedAt: number | null,
  ): Promise<{ run: RunRecord; tasks: TaskRunRecord[] }> {
    const t = new PgTables(sql);
    const row = await t.requireRun(runId);
    if (
      checkConfirm({ ...stateOf(row), token: row.token, leaseKey: row.lease_key }, agentId, token, keyName) ===
      "already"
    ) {
      return { run: runFromRow(row), tasks: (await t.taskRows(runId)).map(taskFromRow) };
    }
    const time = startedAt ?? now;
    const updated = await sql.one<RunRow>(
      "UPDATE runs SET status = $1, started_at = $2, updated_at = $3 WHERE run_id = $4 RETURNING *",
      ["RUNNING", time, now, runId],
    );
    t.history(now, { runId, from: row.status, to: "RUNNING", time, agentId });
    // A retry's tasks taken as done have their rows already: they stay as they are.
    const reused = row.retry_of === null ? null : new Set((await t.reusedTaskRows(runId)).map((r) => r.taskId));
    for (const taskId of taskIds) {
      if (reused?.has(taskId) === true) continue;
      await sql.run(
        "INSERT INTO task_runs (run_id, task_id, status, attempt) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
        [runId, taskId, "PENDING"],
      );
      t.history(now, { runId, taskId, attempt: 0, from: null, to: "PENDING", agentId });
    }
    return { run: runFromRow(updated as RunRow), tasks: (await t.taskRows(runId)).map(taskFromRow) };
  }

  /**
   * Apply an agent's run report (a late one is recorded in the history only). A CANCELLED run
   * takes its unfinished tasks with it. With a `claim`, only the key holding the lease may report.
   * @throws CdktrError RUN_NOT_FOUND, INVALID_TRANSITION, STALE_ASSIGNMENT, PERMISSION_DENIED
   */
  async report(sql: TxSql, now: number, u: RunStatusUpdate, claim: LeaseClaim | null): Promise<RunUpdateResult> {
    const t = new PgTables(sql);
    const row = await t.requireRun(u.runId);
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
    const updated = await sql.one<RunRow>(
      "UPDATE runs SET status = $1, finished_at = $2, reason = $3, message = $4, updated_at = $5 WHERE run_id = $6 RETURNING *",
      [u.status, time, u.reason ?? null, u.message ?? null, now, u.runId],
    );
    record(true);
    const tasks =
      u.status === "CANCELLED"
        ? await this.tasks.closeOpen(t, now, u.runId, "CANCELLED", "cancelled", "run cancelled", u.agentId)
        : [];
    return { applied: true, run: runFromRow(updated as RunRow), tasks };
  }

  /**
   * Cancel by request: a QUEUED/ASSIGNED run is CANCELLED now; a RUNNING one is flagged for its
   * agent (once); a finished one is left alone.
   * @throws CdktrError RUN_NOT_FOUND
   */
  async cancel(sql: TxSql, now: number, runId: string): Promise<CancelResult> {
    const t = new PgTables(sql);
    const row = await t.requireRun(runId);
    switch (cancelEffect(row.status)) {
      case "none":
        return { run: runFromRow(row), cancelled: false, agentMustStop: false, tasks: [] };
      case "ask-agent":
        if (row.cancel_requested === 0) {
          await sql.run("UPDATE runs SET cancel_requested = 1, updated_at = $1 WHERE run_id = $2", [now, runId]);
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
        const updated = await sql.one<RunRow>(
          `UPDATE runs SET status = $1, finished_at = $2, reason = $3, message = $4, token = NULL, updated_at = $2
           WHERE run_id = $5 RETURNING *`,
          ["CANCELLED", now, "cancelled", message, runId],
        );
        t.history(now, {
          runId,
          from: row.status,
          to: "CANCELLED",
          agentId: row.agent_id,
          reason: "cancelled",
          message,
        });
        return { run: runFromRow(updated as RunRow), cancelled: true, agentMustStop: false, tasks: [] };
      }
    }
  }

  /**
   * ASSIGNED/RUNNING -> CRASHED with its unfinished tasks; with `requeueRunId`, a new QUEUED run
   * with the same params (source `requeue`). Null when the run cannot crash.
   */
  async crash(
    sql: TxSql,
    now: number,
    runId: string,
    reason: Reason,
    message: string,
    requeueRunId: string | null,
  ): Promise<CrashResult | null> {
    const t = new PgTables(sql);
    const row = await t.lockRun(runId);
    if (row === undefined || !canTransitionRun(row.status, "CRASHED")) return null;
    const fullMessage = requeueRunId === null ? message : `${message}; requeued as run ${requeueRunId}`;
    const updated = await sql.one<RunRow>(
      "UPDATE runs SET status = $1, finished_at = $2, reason = $3, message = $4, updated_at = $2 WHERE run_id = $5 RETURNING *",
      ["CRASHED", now, reason, fullMessage, runId],
    );
    t.history(now, {
      runId,
      from: row.status,
      to: "CRASHED",
      agentId: row.agent_id,
      reason,
      message: fullMessage,
    });
    const tasks = await this.tasks.closeOpen(t, now, runId, "CRASHED", reason, message, row.agent_id);
    let requeued: RunRecord | null = null;
    if (requeueRunId !== null) {
      const newRow = await t.insertRun(now, {
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
      if (row.retry_of !== null) await t.insertReusedTasks(now, requeueRunId, await t.reusedTaskRows(runId));
      requeued = runFromRow(newRow);
    }
    return { run: runFromRow(updated as RunRow), tasks, requeued };
  }

  /** The task writes (task reports share the run lookups). */
  get taskWrites(): PgTaskWrites {
    return this.tasks;
  }

  /**
   * The first run of an idempotency key in `scope`, or null when the key is new there (a key
   * whose run was deleted is dropped and counts as new).
   * @throws CdktrError IDEMPOTENCY_CONFLICT for another workflow or other params.
   */
  private async findIdempotentRun(
    t: PgTables,
    scope: string,
    key: string,
    workflowId: string,
    requestParams: string,
  ): Promise<RunRow | null> {
    // Looked up with the whole batch (prefetchKeys), unless written in this transaction since.
    const prefetched = t.sql.prefetchedKey(scope, key);
    // A key held back in this transaction must be inserted before the lookup; any other is not affected by it.
    const lookup = t.sql.holdsKey(scope, key) ? t.sql.one.bind(t.sql) : t.sql.oneBeforeRuns.bind(t.sql);
    const known =
      prefetched !== undefined
        ? (prefetched ?? undefined)
        : await lookup<IdempotencyRow>(
            `SELECT k.run_id AS k_run_id, k.workflow_id AS k_workflow_id, k.params AS k_params, r.*
       FROM idempotency_keys k LEFT JOIN runs r ON r.run_id = k.run_id WHERE k.scope = $1 AND k.key = $2`,
            [scope, key],
          );
    if (known === undefined) return null;
    if (known.run_id === null) {
      t.sql.noteKeyWritten(scope, key);
      await t.sql.run("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2", [scope, key]);
      return null;
    }
    const { k_run_id: firstRunId, k_workflow_id: firstWorkflowId, k_params: firstParams, ...first } = known;
    if (firstWorkflowId !== workflowId || firstParams !== requestParams) {
      throw idempotencyConflict(key, firstRunId, firstWorkflowId, firstParams);
    }
    return first;
  }
}

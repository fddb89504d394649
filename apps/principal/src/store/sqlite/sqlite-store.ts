import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import {
  CdktrError,
  toCdktrError,
  type ApiVerbs,
  type LogLine,
  type Logger,
  type ParsedRequestOf,
  type Reason,
  type ReplyOf,
  type RunRecord,
  type TaskRunRecord,
  type WorkflowDefinition,
} from "@cdktr/protocol";
import { systemClock, type Clock } from "@cdktr/protocol";
import { canTransitionRun, isTerminalRun, taskTransition, TERMINAL_TASK_STATUSES } from "../../runs/state-machine.js";
import type {
  ActiveRun,
  CancelResult,
  CrashResult,
  CreateRunInput,
  CreateRunResult,
  InsertLogsResult,
  PruneResult,
  RetentionPolicy,
  RunStatusUpdate,
  RunUpdateResult,
  Store,
  TableCounts,
  TaskStatusUpdate,
  TaskUpdateResult,
} from "../store.js";
import { migrate } from "./migrations.js";
import { levelNumber, runFromRow, taskFromRow, type RunRow, type TaskRow } from "./rows.js";

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** Path of the database file; its directory is created. */
  path: string;
  /** @default systemClock */
  clock?: Clock;
  logger?: Logger;
  /**
   * Answer listRuns/queryLogs in a worker thread with its own read-only connection.
   * @default true
   */
  readWorker?: boolean;
}

interface PendingCommand {
  fn: (now: number) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface WorkerSlot {
  worker: Worker;
  /** Reads posted and not yet answered. */
  pending: number;
}

interface PendingRead {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  slot: WorkerSlot;
}

/** Read worker threads (each with its own read-only connection). */
const READ_WORKERS = 2;

/** Longest a group commit keeps executing commands before committing and yielding. */
const FLUSH_SLICE_MS = 25;

const TABLES = ["workflow_snapshots", "runs", "idempotency_keys", "task_runs", "status_history", "logs"] as const;

/**
 * SQLite implementation of {@link Store} over better-sqlite3 (WAL, `synchronous=FULL`).
 *
 * Group commit: mutations called in the same event-loop tick (or while a commit runs) are applied
 * in one transaction, each in its own savepoint so one refused command does not undo the others,
 * with a single fsync; every promise settles only after that COMMIT. Heavy reads go to a worker
 * thread so the main loop stays responsive.
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private queue: PendingCommand[] = [];
  private flushScheduled = false;
  private closed = false;
  private workers: WorkerSlot[] = [];
  private readonly useWorker: boolean;
  private readonly path: string;
  private nextReadId = 1;
  private readonly reads = new Map<number, PendingRead>();
  private readonly snapshotCache = new Map<string, WorkflowDefinition>();
  /** Prepared statements by SQL text (preparing costs more than running most of them). */
  private readonly statements = new Map<string, Database.Statement>();
  /** Snapshot keys known to be committed in `workflow_snapshots` (cleared when that is unsure). */
  private readonly storedSnapshots = new Set<string>();

  private constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    this.useWorker = options.readWorker ?? true;
    mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("foreign_keys = ON");
    const { from, to } = migrate(this.db);
    if (from !== to) this.logger?.info("database migrated", { path: options.path, from, to });
  }

  /**
   * Open (creating and migrating) the database.
   * @throws Error when the file cannot be opened or its schema is newer than this code.
   */
  static open(options: SqliteStoreOptions): SqliteStore {
    return new SqliteStore(options);
  }

  /** The prepared statement of `text`, prepared once per connection. */
  private sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (stmt === undefined) {
      stmt = this.db.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  // -------------------------------------------------------------------------------------------
  // group commit
  // -------------------------------------------------------------------------------------------

  private command<T>(fn: (now: number) => T): Promise<T> {
    if (this.closed)
      return Promise.reject(
        new CdktrError("SHUTTING_DOWN", "the principal is shutting down: retry against the next one"),
      );
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    const queued = this.queue;
    this.flushScheduled = false;
    if (queued.length === 0) return;
    const now = this.clock.now();
    const results: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    // One transaction per flush, but time-sliced: commands left over after FLUSH_SLICE_MS go to
    // the next flush (next event-loop turn), so pings and acks are never starved by a burst.
    const started = performance.now();
    let taken = 0;
    try {
      this.sql("BEGIN IMMEDIATE").run();
      const savepoint = this.sql("SAVEPOINT cmd");
      const release = this.sql("RELEASE cmd");
      const rollbackTo = this.sql("ROLLBACK TO cmd");
      for (const cmd of queued) {
        if (taken > 0 && performance.now() - started > FLUSH_SLICE_MS) break;
        taken++;
        savepoint.run();
        try {
          const value = cmd.fn(now);
          release.run();
          results.push({ ok: true, value });
        } catch (error) {
          rollbackTo.run();
          release.run();
          results.push({ ok: false, error });
        }
      }
      this.sql("COMMIT").run();
    } catch (e) {
      // Snapshots inserted by this batch are gone with it.
      this.storedSnapshots.clear();
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      const err = toCdktrError(e);
      const failed = queued.splice(0, Math.max(taken, 1));
      this.logger?.error("store commit failed", { error: err.message, commands: failed.length });
      for (const cmd of failed) cmd.reject(err);
      this.scheduleFlush();
      return;
    }
    const batch = queued.splice(0, taken);
    this.scheduleFlush();
    batch.forEach((cmd, i) => {
      const r = results[i];
      if (r === undefined) return;
      if (r.ok) cmd.resolve(r.value);
      else cmd.reject(r.error);
    });
  }

  // -------------------------------------------------------------------------------------------
  // helpers (run inside a command)
  // -------------------------------------------------------------------------------------------

  private runRow(runId: string): RunRow | undefined {
    return this.sql("SELECT * FROM runs WHERE run_id = ?").get(runId) as RunRow | undefined;
  }

  private requireRun(runId: string): RunRow {
    const row = this.runRow(runId);
    if (row === undefined)
      throw new CdktrError("RUN_NOT_FOUND", `no run \`${runId}\`: \`cdktr runs\` lists recent runs`, {
        context: { runId },
      });
    return row;
  }

  private taskRows(runId: string): TaskRow[] {
    return this.sql("SELECT * FROM task_runs WHERE run_id = ? ORDER BY task_id").all(runId) as TaskRow[];
  }

  private history(
    now: number,
    h: {
      runId: string;
      taskId?: string | null;
      attempt?: number | null;
      from: string | null;
      to: string;
      time?: number;
      applied?: boolean;
      agentId?: string | null;
      reason?: string | null;
      message?: string | null;
    },
  ): void {
    this.sql(
      `INSERT INTO status_history (run_id, task_id, attempt, from_status, to_status, time, recorded_at, applied, agent_id, reason, message)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      h.runId,
      h.taskId ?? null,
      h.attempt ?? null,
      h.from,
      h.to,
      h.time ?? now,
      now,
      h.applied === false ? 0 : 1,
      h.agentId ?? null,
      h.reason ?? null,
      h.message ?? null,
    );
  }

  private insertRun(
    now: number,
    r: {
      runId: string;
      workflowId: string;
      hash: string;
      status: string;
      source: string;
      key: string | null;
      params: string;
      scheduledFor: number | null;
      finishedAt: number | null;
      reason: string | null;
      message: string | null;
    },
  ): RunRow {
    this.sql(
      `INSERT INTO runs (run_id, workflow_id, workflow_hash, status, source, idempotency_key, params, scheduled_for,
                         created_at, finished_at, reason, message, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      r.runId,
      r.workflowId,
      r.hash,
      r.status,
      r.source,
      r.key,
      r.params,
      r.scheduledFor,
      now,
      r.finishedAt,
      r.reason,
      r.message,
      now,
    );
    this.history(now, { runId: r.runId, from: null, to: r.status, reason: r.reason, message: r.message });
    // The row just written (no need to read it back).
    return {
      run_id: r.runId,
      workflow_id: r.workflowId,
      workflow_hash: r.hash,
      status: r.status,
      source: r.source,
      idempotency_key: r.key,
      params: r.params,
      scheduled_for: r.scheduledFor,
      created_at: now,
      started_at: null,
      finished_at: r.finishedAt,
      agent_id: null,
      reason: r.reason,
      message: r.message,
      token: null,
      lease_expires_at: null,
      cancel_requested: 0,
      updated_at: now,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Store
  // -------------------------------------------------------------------------------------------

  async loadActiveRuns(): Promise<ActiveRun[]> {
    await this.drain();
    const rows = this.sql(
      `SELECT r.*, s.definition AS definition FROM runs r JOIN workflow_snapshots s ON s.hash = r.workflow_hash
       WHERE r.status IN ('QUEUED', 'ASSIGNED', 'RUNNING') ORDER BY r.run_id`,
    ).all() as (RunRow & { definition: string })[];
    return rows.map((row) => ({
      run: runFromRow(row),
      workflow: this.snapshot(row.workflow_hash, row.definition),
      token: row.token,
      leaseExpiresAt: row.lease_expires_at,
      cancelRequested: row.cancel_requested === 1,
    }));
  }

  private snapshot(hash: string, definition: string): WorkflowDefinition {
    let wf = this.snapshotCache.get(hash);
    if (wf === undefined) {
      wf = JSON.parse(definition) as WorkflowDefinition;
      this.snapshotCache.set(hash, wf);
    }
    return wf;
  }

  createRun(input: CreateRunInput): Promise<CreateRunResult> {
    const wf = input.workflow;
    const requestParams = canonicalJson(input.requestParams);
    return this.command((now) => {
      if (input.idempotencyKey !== null) {
        const key = this.sql("SELECT * FROM idempotency_keys WHERE key = ?").get(input.idempotencyKey) as
          | { run_id: string; workflow_id: string; params: string }
          | undefined;
        if (key !== undefined) {
          const first = this.runRow(key.run_id);
          if (first !== undefined) {
            if (key.workflow_id !== wf.id || key.params !== requestParams) {
              throw new CdktrError(
                "IDEMPOTENCY_CONFLICT",
                `idempotency key \`${input.idempotencyKey}\` was already used for run ${key.run_id} of workflow \`${key.workflow_id}\` with params ${key.params}: use a new key for a different trigger`,
                { context: { idempotencyKey: input.idempotencyKey, runId: key.run_id } },
              );
            }
            return { run: runFromRow(first), duplicate: true };
          }
          this.sql("DELETE FROM idempotency_keys WHERE key = ?").run(input.idempotencyKey);
        }
      }
      const snapKey = snapshotKey(wf);
      // Skipped once known to be stored: no need to serialise the definition on every trigger.
      if (!this.storedSnapshots.has(snapKey)) {
        this.sql(
          "INSERT OR IGNORE INTO workflow_snapshots (hash, workflow_id, definition, created_at) VALUES (?, ?, ?, ?)",
        ).run(snapKey, wf.id, JSON.stringify(wf), now);
      }
      let status = "QUEUED";
      let reason: string | null = null;
      let message = input.message ?? null;
      let finishedAt: number | null = null;
      if (wf.overlap === "skip" && wf.maxActiveRuns !== null) {
        const { n } = this.sql(
          "SELECT count(*) AS n FROM runs WHERE workflow_id = ? AND status IN ('QUEUED', 'ASSIGNED', 'RUNNING')",
        ).get(wf.id) as { n: number };
        if (n >= wf.maxActiveRuns) {
          status = "SKIPPED";
          reason = "overlap_skip";
          finishedAt = now;
          message = `skipped: ${n} run(s) of \`${wf.id}\` already active (max_active_runs ${wf.maxActiveRuns}, overlap skip)`;
        }
      }
      const row = this.insertRun(now, {
        runId: input.runId,
        workflowId: wf.id,
        hash: snapshotKey(wf),
        status,
        source: input.source,
        key: input.idempotencyKey,
        params: JSON.stringify(input.params),
        scheduledFor: input.scheduledFor === null ? null : Date.parse(input.scheduledFor),
        finishedAt,
        reason,
        message,
      });
      if (input.idempotencyKey !== null) {
        this.sql(
          "INSERT INTO idempotency_keys (key, run_id, workflow_id, params, created_at) VALUES (?, ?, ?, ?, ?)",
        ).run(input.idempotencyKey, input.runId, wf.id, requestParams, now);
      }
      this.snapshotCache.set(snapKey, wf);
      this.storedSnapshots.add(snapKey);
      return { run: runFromRow(row), duplicate: false };
    });
  }

  assignRun(runId: string, agentId: string, token: string, leaseExpiresAt: number): Promise<RunRecord | null> {
    return this.command((now) => {
      const res = this.sql(
        `UPDATE runs SET status = 'ASSIGNED', agent_id = ?, token = ?, lease_expires_at = ?, updated_at = ?
         WHERE run_id = ? AND status = 'QUEUED'`,
      ).run(agentId, token, leaseExpiresAt, now, runId);
      if (res.changes === 0) return null;
      this.history(now, { runId, from: "QUEUED", to: "ASSIGNED", agentId });
      return runFromRow(this.requireRun(runId));
    });
  }

  expireAssignment(runId: string, token: string): Promise<RunRecord | null> {
    return this.command((now) => {
      const before = this.runRow(runId);
      const res = this.sql(
        `UPDATE runs SET status = 'QUEUED', agent_id = NULL, token = NULL, lease_expires_at = NULL, updated_at = ?
         WHERE run_id = ? AND status = 'ASSIGNED' AND token = ?`,
      ).run(now, runId, token);
      if (res.changes === 0) return null;
      this.history(now, {
        runId,
        from: "ASSIGNED",
        to: "QUEUED",
        agentId: before?.agent_id ?? null,
        message: "assignment lease expired before confirmation",
      });
      return runFromRow(this.requireRun(runId));
    });
  }

  confirmAssignment(
    runId: string,
    agentId: string,
    token: string,
    taskIds: string[],
  ): Promise<{ run: RunRecord; tasks: TaskRunRecord[] }> {
    return this.command((now) => {
      const row = this.requireRun(runId);
      if (row.status === "RUNNING" && row.token === token && row.agent_id === agentId) {
        return { run: runFromRow(row), tasks: this.taskRows(runId).map(taskFromRow) };
      }
      if (row.status !== "ASSIGNED" || row.token !== token || row.agent_id !== agentId) {
        throw staleAssignment(runId, row.status);
      }
      this.sql("UPDATE runs SET status = 'RUNNING', started_at = ?, updated_at = ? WHERE run_id = ?").run(
        now,
        now,
        runId,
      );
      this.history(now, { runId, from: "ASSIGNED", to: "RUNNING", agentId });
      const ins = this.sql(
        "INSERT OR IGNORE INTO task_runs (run_id, task_id, status, attempt) VALUES (?, ?, 'PENDING', 0)",
      );
      for (const taskId of taskIds) {
        ins.run(runId, taskId);
        this.history(now, { runId, taskId, attempt: 0, from: null, to: "PENDING", agentId });
      }
      return { run: runFromRow(this.requireRun(runId)), tasks: this.taskRows(runId).map(taskFromRow) };
    });
  }

  updateRunStatus(u: RunStatusUpdate): Promise<RunUpdateResult> {
    return this.command((now) => {
      const row = this.requireRun(u.runId);
      const time = Date.parse(u.time);
      const from = row.status as RunRecord["status"];
      const record = (applied: boolean): void =>
        this.history(now, {
          runId: u.runId,
          from,
          to: u.status,
          time,
          applied,
          agentId: u.agentId,
          reason: u.reason ?? null,
          message: u.message ?? null,
        });
      if (isTerminalRun(from)) {
        if (from === "CRASHED" || from === u.status) {
          record(false);
          return { applied: false, run: runFromRow(row), tasks: [] };
        }
        throw invalidTransition(u.runId, from, u.status);
      }
      if (row.agent_id !== u.agentId) {
        throw new CdktrError(
          "STALE_ASSIGNMENT",
          `run ${u.runId} is not held by agent \`${u.agentId}\`: stop working on it`,
          { context: { runId: u.runId } },
        );
      }
      if (from === "RUNNING" && u.status === "RUNNING") return { applied: true, run: runFromRow(row), tasks: [] };
      if (from !== "RUNNING" || !canTransitionRun(from, u.status)) throw invalidTransition(u.runId, from, u.status);
      this.sql(
        "UPDATE runs SET status = ?, finished_at = ?, reason = ?, message = ?, updated_at = ? WHERE run_id = ?",
      ).run(u.status, time, u.reason ?? null, u.message ?? null, now, u.runId);
      record(true);
      const tasks: TaskRunRecord[] = [];
      if (u.status === "CANCELLED")
        tasks.push(...this.finishOpenTasks(now, u.runId, "CANCELLED", "cancelled", "run cancelled", u.agentId));
      return { applied: true, run: runFromRow(this.requireRun(u.runId)), tasks };
    });
  }

  private finishOpenTasks(
    now: number,
    runId: string,
    status: string,
    reason: Reason,
    message: string,
    agentId: string | null,
  ): TaskRunRecord[] {
    const open = this.taskRows(runId).filter(
      (t) => !TERMINAL_TASK_STATUSES.includes(t.status as TaskRunRecord["status"]),
    );
    const upd = this.sql(
      "UPDATE task_runs SET status = ?, finished_at = ?, reason = ?, message = ? WHERE run_id = ? AND task_id = ?",
    );
    const out: TaskRunRecord[] = [];
    for (const t of open) {
      upd.run(status, now, reason, message, runId, t.task_id);
      this.history(now, {
        runId,
        taskId: t.task_id,
        attempt: t.attempt,
        from: t.status,
        to: status,
        agentId,
        reason,
        message,
      });
      out.push(taskFromRow({ ...t, status, finished_at: now, reason, message }));
    }
    return out;
  }

  updateTaskStatus(u: TaskStatusUpdate): Promise<TaskUpdateResult> {
    return this.command((now) => {
      const row = this.requireRun(u.runId);
      const time = Date.parse(u.time);
      const task = this.sql("SELECT * FROM task_runs WHERE run_id = ? AND task_id = ?").get(u.runId, u.taskId) as
        | TaskRow
        | undefined;
      const record = (applied: boolean): void =>
        this.history(now, {
          runId: u.runId,
          taskId: u.taskId,
          attempt: u.attempt,
          from: task?.status ?? null,
          to: u.status,
          time,
          applied,
          agentId: u.agentId,
          reason: u.reason ?? null,
          message: u.message ?? null,
        });
      if (isTerminalRun(row.status as RunRecord["status"])) {
        record(false);
        return { applied: false, run: runFromRow(row), task: task === undefined ? null : taskFromRow(task) };
      }
      if (row.status !== "RUNNING") {
        throw new CdktrError(
          "INVALID_TRANSITION",
          `run ${u.runId} is ${row.status}: confirm the assignment before reporting task ${u.taskId}`,
          {
            context: { runId: u.runId, taskId: u.taskId },
          },
        );
      }
      if (row.agent_id !== u.agentId) {
        throw new CdktrError(
          "STALE_ASSIGNMENT",
          `run ${u.runId} is not held by agent \`${u.agentId}\`: stop working on it`,
          { context: { runId: u.runId } },
        );
      }
      if (task === undefined) {
        throw new CdktrError(
          "INVALID_TRANSITION",
          `run ${u.runId} of \`${row.workflow_id}\` has no task \`${u.taskId}\``,
          { context: { runId: u.runId, taskId: u.taskId } },
        );
      }
      const check = taskTransition(task.status as TaskRunRecord["status"], task.attempt, u.status, u.attempt);
      if (check === "duplicate") return { applied: false, run: runFromRow(row), task: taskFromRow(task) };
      if (check === "invalid") {
        throw new CdktrError(
          "INVALID_TRANSITION",
          `task \`${u.taskId}\` of run ${u.runId} cannot go from ${task.status} (attempt ${task.attempt}) to ${u.status} (attempt ${u.attempt})`,
          { context: { runId: u.runId, taskId: u.taskId } },
        );
      }
      const terminal = u.status !== "RUNNING" && u.status !== "PENDING";
      const startedAt = u.status === "RUNNING" ? time : task.started_at;
      this.sql(
        `UPDATE task_runs SET status = ?, attempt = ?, started_at = ?, finished_at = ?, exit_code = ?, signal = ?, reason = ?, message = ?
         WHERE run_id = ? AND task_id = ?`,
      ).run(
        u.status,
        u.attempt,
        startedAt,
        terminal ? time : null,
        u.exitCode ?? null,
        u.signal ?? null,
        u.reason ?? null,
        u.message ?? null,
        u.runId,
        u.taskId,
      );
      record(true);
      const updated = this.sql("SELECT * FROM task_runs WHERE run_id = ? AND task_id = ?").get(
        u.runId,
        u.taskId,
      ) as TaskRow;
      return { applied: true, run: runFromRow(row), task: taskFromRow(updated) };
    });
  }

  cancelRun(runId: string): Promise<CancelResult> {
    return this.command((now) => {
      const row = this.requireRun(runId);
      const status = row.status as RunRecord["status"];
      if (isTerminalRun(status)) return { run: runFromRow(row), cancelled: false, agentMustStop: false, tasks: [] };
      if (status === "RUNNING") {
        if (row.cancel_requested === 0) {
          this.sql("UPDATE runs SET cancel_requested = 1, updated_at = ? WHERE run_id = ?").run(now, runId);
          this.history(now, {
            runId,
            from: "RUNNING",
            to: "RUNNING",
            agentId: row.agent_id,
            reason: "cancelled",
            message: "cancel requested: waiting for the agent",
          });
        }
        return { run: runFromRow(row), cancelled: true, agentMustStop: true, tasks: [] };
      }
      this.sql(
        "UPDATE runs SET status = 'CANCELLED', finished_at = ?, reason = 'cancelled', message = ?, token = NULL, updated_at = ? WHERE run_id = ?",
      ).run(now, "cancelled by request", now, runId);
      this.history(now, {
        runId,
        from: status,
        to: "CANCELLED",
        agentId: row.agent_id,
        reason: "cancelled",
        message: "cancelled by request",
      });
      return { run: runFromRow(this.requireRun(runId)), cancelled: true, agentMustStop: false, tasks: [] };
    });
  }

  crashRun(runId: string, reason: Reason, message: string, requeueRunId: string | null): Promise<CrashResult | null> {
    return this.command((now) => {
      const row = this.runRow(runId);
      if (row === undefined || (row.status !== "ASSIGNED" && row.status !== "RUNNING")) return null;
      const fullMessage = requeueRunId === null ? message : `${message}; requeued as run ${requeueRunId}`;
      this.sql(
        "UPDATE runs SET status = 'CRASHED', finished_at = ?, reason = ?, message = ?, updated_at = ? WHERE run_id = ?",
      ).run(now, reason, fullMessage, now, runId);
      this.history(now, {
        runId,
        from: row.status,
        to: "CRASHED",
        agentId: row.agent_id,
        reason,
        message: fullMessage,
      });
      const tasks = this.finishOpenTasks(now, runId, "CRASHED", reason, message, row.agent_id);
      let requeued: RunRecord | null = null;
      if (requeueRunId !== null) {
        const newRow = this.insertRun(now, {
          runId: requeueRunId,
          workflowId: row.workflow_id,
          hash: row.workflow_hash,
          status: "QUEUED",
          source: "requeue",
          key: null,
          params: row.params,
          scheduledFor: row.scheduled_for,
          finishedAt: null,
          reason: null,
          message: `requeue of run ${runId} (${message})`,
        });
        requeued = runFromRow(newRow);
      }
      return { run: runFromRow(this.requireRun(runId)), tasks, requeued };
    });
  }

  async getRun(runId: string): Promise<{ run: RunRecord; tasks: TaskRunRecord[] } | null> {
    const row = this.runRow(runId);
    if (row === undefined) return null;
    return { run: runFromRow(row), tasks: this.taskRows(runId).map(taskFromRow) };
  }

  /** The definition a run executes (its snapshot), or null. */
  async getRunWorkflow(runId: string): Promise<WorkflowDefinition | null> {
    const row = this.sql(
      "SELECT s.hash, s.definition FROM runs r JOIN workflow_snapshots s ON s.hash = r.workflow_hash WHERE r.run_id = ?",
    ).get(runId) as { hash: string; definition: string } | undefined;
    return row === undefined ? null : this.snapshot(row.hash, row.definition);
  }

  listRuns(req: ParsedRequestOf<ApiVerbs, "listRuns">): Promise<ReplyOf<ApiVerbs, "listRuns">> {
    return this.read("listRuns", req) as Promise<ReplyOf<ApiVerbs, "listRuns">>;
  }

  queryLogs(req: ParsedRequestOf<ApiVerbs, "queryLogs">): Promise<ReplyOf<ApiVerbs, "queryLogs">> {
    return this.read("queryLogs", req) as Promise<ReplyOf<ApiVerbs, "queryLogs">>;
  }

  insertLogs(lines: LogLine[]): Promise<InsertLogsResult> {
    return this.command(() => {
      const ins = this.sql(
        "INSERT OR IGNORE INTO logs (run_id, workflow_id, task_id, seq, time, level, stream, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      );
      const inserted: LogLine[] = [];
      let duplicates = 0;
      for (const l of lines) {
        const res = ins.run(
          l.runId,
          l.workflowId,
          l.taskId,
          l.seq,
          Date.parse(l.time),
          levelNumber(l.level),
          l.stream,
          l.line,
        );
        if (res.changes === 1) inserted.push(l);
        else duplicates++;
      }
      return { stored: inserted.length, duplicates, inserted };
    });
  }

  /**
   * Retention in bounded chunks (one small transaction each), so deleting millions of old log
   * lines never blocks the event loop for long.
   */
  async prune(policy: RetentionPolicy): Promise<PruneResult> {
    const day = 86_400_000;
    const CHUNK = 5_000;
    const out: PruneResult = { runs: 0, logs: 0, idempotencyKeys: 0 };
    if (policy.runDays > 0) {
      for (;;) {
        const done = await this.command((now) => {
          const ids = (
            this.db
              .prepare(
                `SELECT run_id FROM runs WHERE status IN ('COMPLETED', 'FAILED', 'CRASHED', 'CANCELLED', 'SKIPPED')
                 AND finished_at < ? ORDER BY finished_at LIMIT 200`,
              )
              .all(now - policy.runDays * day) as { run_id: string }[]
          ).map((r) => r.run_id);
          if (ids.length === 0) return true;
          const marks = ids.map(() => "?").join(", ");
          const logs = this.db
            .prepare(`DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE run_id IN (${marks}) LIMIT ${CHUNK})`)
            .run(...ids).changes;
          out.logs += logs;
          if (logs === CHUNK) return false; // more log lines of these runs first
          this.db.prepare(`DELETE FROM task_runs WHERE run_id IN (${marks})`).run(...ids);
          this.db.prepare(`DELETE FROM status_history WHERE run_id IN (${marks})`).run(...ids);
          out.idempotencyKeys += this.db
            .prepare(`DELETE FROM idempotency_keys WHERE run_id IN (${marks})`)
            .run(...ids).changes;
          out.runs += this.db.prepare(`DELETE FROM runs WHERE run_id IN (${marks})`).run(...ids).changes;
          return false;
        });
        if (done) break;
      }
      await this.command(() => {
        this.storedSnapshots.clear();
        return this.db
          .prepare("DELETE FROM workflow_snapshots WHERE hash NOT IN (SELECT DISTINCT workflow_hash FROM runs)")
          .run();
      });
    }
    const chunked = async (sql: string, days: number, key: "logs" | "idempotencyKeys"): Promise<void> => {
      for (;;) {
        const n = await this.command((now) => this.db.prepare(sql).run(now - days * day).changes);
        out[key] += n;
        if (n < CHUNK) break;
      }
    };
    if (policy.logDays > 0) {
      await chunked(
        `DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE time < ? LIMIT ${CHUNK})`,
        policy.logDays,
        "logs",
      );
    }
    if (policy.idempotencyDays > 0) {
      await chunked(
        `DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE created_at < ? LIMIT ${CHUNK})`,
        policy.idempotencyDays,
        "idempotencyKeys",
      );
    }
    return out;
  }

  async counts(): Promise<TableCounts> {
    await this.drain();
    const out: TableCounts = {};
    for (const t of TABLES) out[t] = (this.db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    return out;
  }

  /** Resolves once every command queued so far is committed. */
  drain(): Promise<void> {
    if (this.queue.length === 0 || this.closed) return Promise.resolve();
    return this.command(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true; // refuse new commands, then let the queued ones commit
    while (this.queue.length > 0) {
      this.scheduleFlush();
      await new Promise((r) => setImmediate(r));
    }
    for (const [, r] of this.reads)
      r.reject(new CdktrError("SHUTTING_DOWN", "the principal is shutting down: retry against the next one"));
    this.reads.clear();
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.worker.terminate()));
    this.db.pragma("wal_checkpoint(TRUNCATE)");
    this.db.close();
  }

  // -------------------------------------------------------------------------------------------
  // read worker
  // -------------------------------------------------------------------------------------------

  private read(kind: "listRuns" | "queryLogs", req: unknown): Promise<unknown> {
    if (this.closed)
      return Promise.reject(
        new CdktrError("SHUTTING_DOWN", "the principal is shutting down: retry against the next one"),
      );
    if (!this.useWorker) {
      return import("./read-queries.js").then((q) => {
        try {
          return kind === "listRuns" ? q.listRuns(this.db, req as never) : q.queryLogs(this.db, req as never);
        } catch (e) {
          if (e instanceof q.BadCursorError) throw new CdktrError("BAD_REQUEST", e.message);
          throw e;
        }
      });
    }
    const slot = this.pickWorker();
    const id = this.nextReadId++;
    return new Promise((resolve, reject) => {
      this.reads.set(id, { resolve, reject, slot });
      slot.pending++;
      slot.worker.postMessage({ id, kind, req });
    });
  }

  /** The least busy read worker (started on first use), so one long scan does not hold up a listing. */
  private pickWorker(): WorkerSlot {
    while (this.workers.length < READ_WORKERS) this.workers.push(this.startWorker());
    let best = this.workers[0] as WorkerSlot;
    for (const w of this.workers) if (w.pending < best.pending) best = w;
    return best;
  }

  private startWorker(): WorkerSlot {
    const worker = new Worker(new URL("./read-worker.js", import.meta.url), { workerData: { dbPath: this.path } });
    worker.unref();
    const slot: WorkerSlot = { worker, pending: 0 };
    worker.on(
      "message",
      (msg: { id: number; ok: boolean; value?: unknown; badRequest?: boolean; message?: string }) => {
        const pending = this.reads.get(msg.id);
        if (pending === undefined) return;
        this.reads.delete(msg.id);
        slot.pending--;
        if (msg.ok) pending.resolve(msg.value);
        else
          pending.reject(
            new CdktrError(msg.badRequest === true ? "BAD_REQUEST" : "INTERNAL", msg.message ?? "read failed"),
          );
      },
    );
    const fail = (why: string): void => {
      this.workers = this.workers.filter((w) => w !== slot);
      for (const [id, r] of this.reads) {
        if (r.slot !== slot) continue;
        this.reads.delete(id);
        r.reject(new CdktrError("INTERNAL", `read worker ${why}: retry the request`));
      }
    };
    worker.on("error", (e) => {
      this.logger?.error("read worker failed", { error: e.message });
      fail("failed");
    });
    worker.on("exit", () => fail("exited"));
    return slot;
  }
}

function staleAssignment(runId: string, status: string): CdktrError {
  return new CdktrError(
    "STALE_ASSIGNMENT",
    `assignment of run ${runId} is no longer valid (run is ${status}: the lease expired, it was cancelled or reassigned): do not start it`,
    { context: { runId } },
  );
}

function invalidTransition(runId: string, from: string, to: string): CdktrError {
  return new CdktrError("INVALID_TRANSITION", `run ${runId} cannot go from ${from} to ${to}`, { context: { runId } });
}

/**
 * Key of a definition snapshot: the content hash alone is not enough, two files with the same
 * text are two workflows.
 */
function snapshotKey(wf: WorkflowDefinition): string {
  return `${wf.id}@${wf.hash}`;
}

/** JSON with object keys sorted, so equal params compare equal as text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

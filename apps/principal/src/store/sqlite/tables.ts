import type Database from "better-sqlite3";
import { runNotFound } from "../../errors.js";
import {
  newRunRow,
  reusedRowOf,
  reusedTaskHistory,
  type HistoryEntry,
  type NewRun,
  type ReusedTaskRow,
  type RunRow,
  type TaskRow,
} from "../rows.js";

/**
 * Row access shared by the domain writes, on the writer connection: prepared statements cached
 * by SQL text (preparing costs more than running most of them), run and task lookups, new runs
 * and the history table. Used inside group-commit commands only.
 */
export class Tables {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(readonly db: Database.Database) {}

  /** The prepared statement of `text`, prepared once per connection. */
  sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (stmt === undefined) {
      stmt = this.db.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  /** The `runs` row of `runId`, if any. */
  runRow(runId: string): RunRow | undefined {
    return this.sql("SELECT * FROM runs WHERE run_id = ?").get(runId) as RunRow | undefined;
  }

  /**
   * The `runs` row of `runId`.
   * @throws CdktrError RUN_NOT_FOUND
   */
  requireRun(runId: string): RunRow {
    const row = this.runRow(runId);
    if (row === undefined) throw runNotFound(runId);
    return row;
  }

  /** The `task_runs` rows of a run, by task id. */
  taskRows(runId: string): TaskRow[] {
    return this.sql("SELECT * FROM task_runs WHERE run_id = ? ORDER BY task_id").all(runId) as TaskRow[];
  }

  /** The `task_runs` row of one task, if any. */
  taskRow(runId: string, taskId: string): TaskRow | undefined {
    return this.sql("SELECT * FROM task_runs WHERE run_id = ? AND task_id = ?").get(runId, taskId) as
      | TaskRow
      | undefined;
  }

  /** Append a line to `status_history` (recorded at `now`). */
  history(now: number, h: HistoryEntry): void {
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

  /** Insert a run (and its first history line); returns the row as written, without reading it back. */
  insertRun(now: number, r: NewRun): RunRow {
    this.sql(
      `INSERT INTO runs (run_id, workflow_id, workflow_hash, status, source, triggered_by, idempotency_key, params,
                         scheduled_for, created_at, finished_at, reason, message, updated_at, upstream, retry_of)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      r.runId,
      r.workflowId,
      r.hash,
      r.status,
      r.source,
      r.triggeredBy,
      r.key,
      r.params,
      r.scheduledFor,
      now,
      r.finishedAt,
      r.reason,
      r.message,
      now,
      r.upstream,
      r.retryOf,
    );
    this.history(now, { runId: r.runId, from: null, to: r.status, reason: r.reason, message: r.message });
    return newRunRow(now, r);
  }

  /** Insert a retry's tasks taken as done: COMPLETED, with `reused_from` and the source's attempt, exit code and times. */
  insertReusedTasks(now: number, runId: string, tasks: readonly ReusedTaskRow[]): void {
    const ins = this.sql(
      `INSERT INTO task_runs (run_id, task_id, status, attempt, started_at, finished_at, exit_code, reused_from)
       VALUES (?, ?, 'COMPLETED', ?, ?, ?, ?, ?)`,
    );
    for (const task of tasks) {
      ins.run(runId, task.taskId, task.attempt, task.startedAt, task.finishedAt, task.exitCode, task.reusedFrom);
      this.history(now, reusedTaskHistory(runId, task));
    }
  }

  /** The tasks of a run taken as done by its retry, as rows to copy onto another run. */
  reusedTaskRows(runId: string): ReusedTaskRow[] {
    return (
      this.sql("SELECT * FROM task_runs WHERE run_id = ? AND reused_from IS NOT NULL ORDER BY task_id").all(
        runId,
      ) as TaskRow[]
    ).map(reusedRowOf);
  }
}

import { runNotFound } from "../../errors.js";
import type { RunRow, TaskRow } from "../rows.js";
import { reusedRowOf, reusedTaskHistory, type HistoryEntry, type NewRun, type ReusedTaskRow } from "../rows.js";
import type { TxSql } from "./tx-sql.js";

/**
 * Row access shared by the PostgreSQL domain writes, inside a lane's transaction: run and task
 * lookups, new runs and the insert-only history table. The rows have the SQLite store's shape
 * (`../rows.ts`), so both stores map them to wire records with the same functions.
 */
export class PgTables {
  constructor(readonly sql: TxSql) {}

  /** The `runs` row of `runId`, if any. */
  runRow(runId: string): Promise<RunRow | undefined> {
    return this.sql.one<RunRow>("SELECT * FROM runs WHERE run_id = $1", [runId]);
  }

  /**
   * The `runs` row of `runId`, locked for the rest of the transaction (another principal on the
   * same database waits instead of deciding on a stale row).
   * @throws CdktrError RUN_NOT_FOUND
   */
  async requireRun(runId: string): Promise<RunRow> {
    const row = await this.lockRun(runId);
    if (row === undefined) throw runNotFound(runId);
    return row;
  }

  /** The `runs` row of `runId` locked `FOR UPDATE`, if any. */
  lockRun(runId: string): Promise<RunRow | undefined> {
    return this.sql.one<RunRow>("SELECT * FROM runs WHERE run_id = $1 FOR UPDATE", [runId]);
  }

  /** The `task_runs` rows of a run, by task id. */
  taskRows(runId: string): Promise<TaskRow[]> {
    return this.sql.rows<TaskRow>('SELECT * FROM task_runs WHERE run_id = $1 ORDER BY task_id COLLATE "C"', [runId]);
  }

  /** The `task_runs` row of one task, if any. */
  taskRow(runId: string, taskId: string): Promise<TaskRow | undefined> {
    return this.sql.one<TaskRow>("SELECT * FROM task_runs WHERE run_id = $1 AND task_id = $2", [runId, taskId]);
  }

  /** Append a line to `status_history` (recorded at `now`; written with the transaction's others before its COMMIT). */
  history(now: number, h: HistoryEntry): void {
    this.sql.addHistory(now, h);
  }

  /**
   * Insert a run, its first history line, and with `idempotency` (scope and canonical request
   * params) its idempotency key; returns the row as written (the insert may be held back until
   * the transaction's next statement, see {@link TxSql.insertRun}).
   */
  async insertRun(now: number, r: NewRun, idempotency?: { scope: string; params: string }): Promise<RunRow> {
    const row = await this.sql.insertRun(now, r, idempotency);
    this.history(now, { runId: r.runId, from: null, to: r.status, reason: r.reason, message: r.message });
    return row;
  }

  /** Insert a retry's tasks taken as done: COMPLETED, with `reused_from` and the source's attempt, exit code and times. */
  async insertReusedTasks(now: number, runId: string, tasks: readonly ReusedTaskRow[]): Promise<void> {
    if (tasks.length === 0) return;
    await this.sql.run(
      `INSERT INTO task_runs (run_id, task_id, status, attempt, started_at, finished_at, exit_code, reused_from)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[], $6::bigint[], $7::int[], $8::text[])`,
      [
        runId,
        tasks.map((t) => t.taskId),
        tasks.map(() => "COMPLETED"),
        tasks.map((t) => t.attempt),
        tasks.map((t) => t.startedAt),
        tasks.map((t) => t.finishedAt),
        tasks.map((t) => t.exitCode),
        tasks.map((t) => t.reusedFrom),
      ],
    );
    for (const task of tasks) this.history(now, reusedTaskHistory(runId, task));
  }

  /** The tasks of a run taken as done by its retry, as rows to copy onto another run. */
  async reusedTaskRows(runId: string): Promise<ReusedTaskRow[]> {
    return (
      await this.sql.rows<TaskRow>(
        'SELECT * FROM task_runs WHERE run_id = $1 AND reused_from IS NOT NULL ORDER BY task_id COLLATE "C"',
        [runId],
      )
    ).map(reusedRowOf);
  }
}

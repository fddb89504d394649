import { runNotFound } from "../../errors.js";
import type { RunRow, TaskRow } from "../sqlite/rows.js";
import type { HistoryEntry, NewRun } from "../sqlite/tables.js";
import type { Sql } from "./sql.js";

/**
 * Row access shared by the PostgreSQL domain writes, inside a lane's transaction: run and task
 * lookups, new runs and the insert-only history table. The rows have the SQLite store's shape
 * (`../sqlite/rows.ts`), so both stores map them to wire records with the same functions.
 */
export class PgTables {
  constructor(readonly sql: Sql) {}

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
    return this.sql.rows<TaskRow>("SELECT * FROM task_runs WHERE run_id = $1 ORDER BY task_id COLLATE \"C\"", [runId]);
  }

  /** The `task_runs` row of one task, if any. */
  taskRow(runId: string, taskId: string): Promise<TaskRow | undefined> {
    return this.sql.one<TaskRow>("SELECT * FROM task_runs WHERE run_id = $1 AND task_id = $2", [runId, taskId]);
  }

  /** Append a line to `status_history` (recorded at `now`). */
  async history(now: number, h: HistoryEntry): Promise<void> {
    await this.sql.run(
      `INSERT INTO status_history (run_id, task_id, attempt, from_status, to_status, time, recorded_at, applied, agent_id, reason, message)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
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
      ],
    );
  }

  /** Insert a run and its first history line; returns the row as written. */
  async insertRun(now: number, r: NewRun): Promise<RunRow> {
    const row = await this.sql.one<RunRow>(
      `INSERT INTO runs (run_id, workflow_id, workflow_hash, status, source, triggered_by, idempotency_key, params,
                         scheduled_for, created_at, finished_at, reason, message, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $10)
       RETURNING *`,
      [
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
      ],
    );
    await this.history(now, { runId: r.runId, from: null, to: r.status, reason: r.reason, message: r.message });
    return row as RunRow;
  }
}

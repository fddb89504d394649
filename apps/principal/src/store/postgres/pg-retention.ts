import { TERMINAL_RUN_STATUSES } from "@cdktr/protocol";
import type { PruneResult, RetentionPolicy } from "../store.js";
import type { PgLane } from "./pg-lane.js";

const DAY_MS = 86_400_000;
/** Most rows one retention command deletes from one table (keeps each transaction short). */
const CHUNK = 5_000;
/** Finished runs deleted per command. */
const RUNS_PER_COMMAND = 200;

/**
 * Retention on PostgreSQL, as the SQLite store's: bounded chunks, one bulk-lane command each (a
 * trigger never waits for it). Finished runs go with their logs, tasks, history and idempotency
 * keys; then snapshots no run uses; then old log lines and old idempotency keys on their own.
 * `onSnapshotsPruned` is called when snapshot rows may have been deleted.
 */
export async function prunePostgres(
  bulk: PgLane,
  policy: RetentionPolicy,
  onSnapshotsPruned: () => void,
): Promise<PruneResult> {
  const out: PruneResult = { runs: 0, logs: 0, idempotencyKeys: 0 };
  if (policy.runDays > 0) {
    for (;;) {
      const done = await bulk.command(async (sql, now) => {
        const ids = (
          await sql.rows<{ run_id: string }>(
            `SELECT run_id FROM runs WHERE status = ANY($1) AND finished_at < $2 ORDER BY finished_at LIMIT ${RUNS_PER_COMMAND}`,
            [TERMINAL_RUN_STATUSES, now - policy.runDays * DAY_MS],
          )
        ).map((r) => r.run_id);
        if (ids.length === 0) return true;
        const logs = await sql.run(
          `DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE run_id = ANY($1) LIMIT ${CHUNK})`,
          [ids],
        );
        out.logs += logs;
        if (logs === CHUNK) return false; // more log lines of these runs first
        await sql.run("DELETE FROM task_runs WHERE run_id = ANY($1)", [ids]);
        await sql.run("DELETE FROM status_history WHERE run_id = ANY($1)", [ids]);
        out.idempotencyKeys += await sql.run("DELETE FROM idempotency_keys WHERE run_id = ANY($1)", [ids]);
        out.runs += await sql.run("DELETE FROM runs WHERE run_id = ANY($1)", [ids]);
        return false;
      });
      if (done) break;
    }
    await bulk.command(async (sql) => {
      onSnapshotsPruned();
      await sql.run(
        "DELETE FROM workflow_snapshots s WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.workflow_hash = s.hash)",
      );
    });
  }
  const chunked = async (sqlText: string, days: number, key: "logs" | "idempotencyKeys"): Promise<void> => {
    for (;;) {
      const n = await bulk.command((sql, now) => sql.run(sqlText, [now - days * DAY_MS]));
      out[key] += n;
      if (n < CHUNK) break;
    }
  };
  if (policy.logDays > 0) {
    await chunked(
      `DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE time < $1 LIMIT ${CHUNK})`,
      policy.logDays,
      "logs",
    );
  }
  if (policy.idempotencyDays > 0) {
    await chunked(
      `DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key FROM idempotency_keys WHERE created_at < $1 LIMIT ${CHUNK})`,
      policy.idempotencyDays,
      "idempotencyKeys",
    );
  }
  return out;
}

import type Database from "better-sqlite3";
import type { PruneResult, RetentionPolicy } from "../store.js";
import type { GroupCommit } from "./group-commit.js";
import { finishedRunCondition } from "./sql-lists.js";

const DAY_MS = 86_400_000;
/**
 * Most rows one retention command deletes from one table: about a millisecond of work, as long
 * as a piece of the bulk lane, so a trigger never waits behind a long delete.
 */
const CHUNK = 500;
/** Finished runs deleted per command (with their tasks, history and idempotency keys). */
const RUNS_PER_COMMAND = 20;

/**
 * Retention in bounded chunks, one small group-commit command each, so deleting millions of old
 * log lines never blocks the event loop for long. Finished runs (terminal states, from the state
 * machine's list) go with their logs, tasks, history and idempotency keys; then snapshots no run
 * uses; then old log lines and old idempotency keys on their own. Every command goes in the
 * bulk lane: retention never delays a trigger. `onSnapshotsPruned` is called
 * when `workflow_snapshots` rows may have been deleted (to drop caches of them).
 */
export async function pruneDatabase(
  db: Database.Database,
  commit: GroupCommit,
  policy: RetentionPolicy,
  onSnapshotsPruned: () => void,
): Promise<PruneResult> {
  const out: PruneResult = { runs: 0, logs: 0, idempotencyKeys: 0 };
  if (policy.runDays > 0) {
    const finished = finishedRunCondition();
    for (;;) {
      const done = await commit.command((now) => {
        const ids = (
          db
            .prepare(
              `SELECT run_id FROM runs WHERE ${finished.sql}
               AND finished_at < ? ORDER BY finished_at LIMIT ${RUNS_PER_COMMAND}`,
            )
            .all(...finished.params, now - policy.runDays * DAY_MS) as { run_id: string }[]
        ).map((r) => r.run_id);
        if (ids.length === 0) return true;
        const marks = ids.map(() => "?").join(", ");
        const logs = db
          .prepare(`DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE run_id IN (${marks}) LIMIT ${CHUNK})`)
          .run(...ids).changes;
        out.logs += logs;
        if (logs === CHUNK) return false; // more log lines of these runs first
        db.prepare(`DELETE FROM task_runs WHERE run_id IN (${marks})`).run(...ids);
        db.prepare(`DELETE FROM status_history WHERE run_id IN (${marks})`).run(...ids);
        out.idempotencyKeys += db
          .prepare(`DELETE FROM idempotency_keys WHERE run_id IN (${marks})`)
          .run(...ids).changes;
        out.runs += db.prepare(`DELETE FROM runs WHERE run_id IN (${marks})`).run(...ids).changes;
        return false;
      }, "bulk");
      if (done) break;
    }
    await commit.command(() => {
      onSnapshotsPruned();
      return db
        .prepare("DELETE FROM workflow_snapshots WHERE hash NOT IN (SELECT DISTINCT workflow_hash FROM runs)")
        .run();
    }, "bulk");
  }
  const chunked = async (sql: string, days: number, key: "logs" | "idempotencyKeys"): Promise<void> => {
    for (;;) {
      const n = await commit.command((now) => db.prepare(sql).run(now - days * DAY_MS).changes, "bulk");
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
      `DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ${CHUNK})`,
      policy.idempotencyDays,
      "idempotencyKeys",
    );
  }
  return out;
}

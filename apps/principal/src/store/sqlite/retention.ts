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

/** The two files of the store, each with its connection and group commit. */
export interface RetentionTargets {
  /** The main file's writer (runs, tasks, history, idempotency keys, snapshots). */
  db: Database.Database;
  commit: GroupCommit;
  /** The log database's writer. */
  logsDb: Database.Database;
  logCommit: GroupCommit;
}

/**
 * Retention in bounded chunks, one small group-commit command each, so deleting millions of old
 * log lines never blocks the event loop for long. Finished runs (terminal states, from the state
 * machine's list) go with their logs, tasks, history and idempotency keys, their log lines first
 * (another file: a run is deleted only once none of its lines is left, so a stop in between
 * deletes the rest next time); then snapshots no run uses; then old log lines and old idempotency
 * keys on their own. Every command goes in the bulk lane: retention never delays a trigger.
 * `onSnapshotsPruned` is called when `workflow_snapshots` rows may have been deleted (to drop
 * caches of them).
 */
export async function pruneDatabase(
  { db, commit, logsDb, logCommit }: RetentionTargets,
  policy: RetentionPolicy,
  onSnapshotsPruned: () => void,
): Promise<PruneResult> {
  const out: PruneResult = { runs: 0, logs: 0, idempotencyKeys: 0 };
  if (policy.runDays > 0) {
    const finished = finishedRunCondition();
    for (;;) {
      const ids = await commit.command(
        (now) =>
          (
            db
              .prepare(
                `SELECT run_id FROM runs WHERE ${finished.sql}
                 AND finished_at < ? ORDER BY finished_at LIMIT ${RUNS_PER_COMMAND}`,
              )
              .all(...finished.params, now - policy.runDays * DAY_MS) as { run_id: string }[]
          ).map((r) => r.run_id),
        "bulk",
      );
      if (ids.length === 0) break;
      const marks = ids.map(() => "?").join(", ");
      const deleteLogs = logsDb.prepare(
        `DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE run_id IN (${marks}) LIMIT ${CHUNK})`,
      );
      for (;;) {
        const n = await logCommit.command(() => deleteLogs.run(...ids).changes, "bulk");
        out.logs += n;
        if (n < CHUNK) break;
      }
      await commit.command(() => {
        db.prepare(`DELETE FROM task_runs WHERE run_id IN (${marks})`).run(...ids);
        db.prepare(`DELETE FROM status_history WHERE run_id IN (${marks})`).run(...ids);
        out.idempotencyKeys += db
          .prepare(`DELETE FROM idempotency_keys WHERE run_id IN (${marks})`)
          .run(...ids).changes;
        out.runs += db.prepare(`DELETE FROM runs WHERE run_id IN (${marks})`).run(...ids).changes;
      }, "bulk");
    }
    await commit.command(() => {
      onSnapshotsPruned();
      return db
        .prepare("DELETE FROM workflow_snapshots WHERE hash NOT IN (SELECT DISTINCT workflow_hash FROM runs)")
        .run();
    }, "bulk");
  }
  const chunked = async (
    on: GroupCommit,
    conn: Database.Database,
    sql: string,
    days: number,
    key: "logs" | "idempotencyKeys",
  ): Promise<void> => {
    const stmt = conn.prepare(sql);
    for (;;) {
      const n = await on.command((now) => stmt.run(now - days * DAY_MS).changes, "bulk");
      out[key] += n;
      if (n < CHUNK) break;
    }
  };
  if (policy.logDays > 0) {
    await chunked(
      logCommit,
      logsDb,
      `DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE time < ? LIMIT ${CHUNK})`,
      policy.logDays,
      "logs",
    );
  }
  if (policy.idempotencyDays > 0) {
    await chunked(
      commit,
      db,
      `DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ${CHUNK})`,
      policy.idempotencyDays,
      "idempotencyKeys",
    );
  }
  return out;
}

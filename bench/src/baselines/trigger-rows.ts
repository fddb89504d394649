/**
 * The storage floor of a trigger: raw better-sqlite3 writing the rows the principal writes for
 * one trigger with an idempotency key (the key's lookup, the run row, its first history line, the
 * key), `perTransaction` triggers per transaction, into a principal's own database file after it
 * stopped (its schema and indexes, its runs already there), with the principal's pragmas (WAL,
 * `synchronous = FULL`, foreign keys, sub-journal in memory). No wire, no JavaScript of ours: the
 * rate nothing built on these rows can beat on this disk.
 */
import { randomUUID } from "node:crypto";
import Database from "better-sqlite3";
import { nowMs } from "../harness/stats.js";

/** Triggers per second the raw statements sustain for `durationMs` (in this process). */
export function triggerRowsFloor(dbPath: string, perTransaction: number, durationMs: number): number {
  const db = new Database(dbPath, { fileMustExist: true });
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    db.pragma("temp_store = MEMORY");
    const snapshot = db.prepare("SELECT hash, workflow_id FROM workflow_snapshots LIMIT 1").get() as
      | { hash: string; workflow_id: string }
      | undefined;
    if (snapshot === undefined) throw new Error(`no workflow snapshot in ${dbPath}: run the principal first`);
    const find = db.prepare("SELECT * FROM idempotency_keys WHERE scope = ? AND key = ?");
    const run = db.prepare(
      `INSERT INTO runs (run_id, workflow_id, workflow_hash, status, source, triggered_by, idempotency_key, params,
                         scheduled_for, created_at, finished_at, reason, message, updated_at)
       VALUES (?, ?, ?, 'QUEUED', 'bench-floor', 'bench', ?, '{}', NULL, ?, NULL, NULL, NULL, ?)`,
    );
    const history = db.prepare(
      `INSERT INTO status_history (run_id, task_id, attempt, from_status, to_status, time, recorded_at, applied, agent_id, reason, message)
       VALUES (?, NULL, NULL, NULL, 'QUEUED', ?, ?, 1, NULL, NULL, NULL)`,
    );
    const key = db.prepare(
      "INSERT INTO idempotency_keys (scope, key, run_id, workflow_id, params, created_at) VALUES ('bench', ?, ?, ?, '{}', ?)",
    );
    let n = 0;
    const prefix = randomUUID().slice(0, 8);
    const write = db.transaction((count: number) => {
      for (let i = 0; i < count; i++) {
        const now = Date.now();
        // Time-ordered ids and keys, as the principal's ULIDs and the clients' automatic keys are.
        const time = now.toString(36).padStart(9, "0");
        const runId = `${time}-${prefix}-${String(n++).padStart(9, "0")}`;
        const k = `auto:${time}-${randomUUID()}`;
        find.get("bench", k);
        run.run(runId, snapshot.workflow_id, snapshot.hash, k, now, now);
        history.run(runId, now, now);
        key.run(k, runId, snapshot.workflow_id, now);
      }
    });
    const t0 = nowMs();
    while (nowMs() - t0 < durationMs) write(perTransaction);
    return (n * 1000) / (nowMs() - t0);
  } finally {
    db.close();
  }
}

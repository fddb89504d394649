/**
 * The storage floor of the log pipeline: raw better-sqlite3 inserting `n` lines, 2,000 per
 * transaction, with the principal's statement into a principal's own log database after it
 * stopped (its table and four indexes: the line's idempotency key and the three query paths), with
 * the principal's pragmas. No wire, no decoding, no validation: what the schema alone costs
 * against the baseline's one-b-tree table.
 */
import Database from "better-sqlite3";
import { nowMs } from "../harness/stats.js";

/** The log database beside a principal's database file (`cdktr.db` -> `cdktr.logs.db`). */
export function logDatabaseOf(dbPath: string): string {
  return dbPath.endsWith(".db") ? `${dbPath.slice(0, -3)}.logs.db` : `${dbPath}.logs`;
}

/** Lines per second the raw inserts sustain (in this process). */
export function logRowsFloor(logsDbPath: string, n: number, perTransaction = 2000): number {
  const db = new Database(logsDbPath, { fileMustExist: true });
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("temp_store = MEMORY");
    const insert = db.prepare(
      "INSERT OR IGNORE INTO logs (run_id, workflow_id, task_id, seq, time, level, stream, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const runId = `floor-${Date.now().toString(36)}`;
    const write = db.transaction((from: number, to: number) => {
      const time = Date.now();
      for (let s = from; s <= to; s++) insert.run(runId, "bench.floor", "t", s, time, 1, "stdout", String(s));
    });
    const t0 = nowMs();
    for (let from = 1; from <= n; from += perTransaction) write(from, Math.min(n, from + perTransaction - 1));
    return (n * 1000) / (nowMs() - t0);
  } finally {
    db.close();
  }
}

import { extname } from "node:path";
import Database from "better-sqlite3";
import { migrate } from "./migrations.js";

/**
 * Schema of the log database, the second file of the SQLite store (its own `schema_version`).
 * Same rules as the main file's migrations: append, never edit a shipped one.
 */
export const LOG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE logs (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    time        INTEGER NOT NULL,
    level       INTEGER NOT NULL,
    stream      TEXT NOT NULL,
    line        TEXT NOT NULL
  );
  CREATE UNIQUE INDEX logs_line ON logs(run_id, task_id, seq);
  CREATE INDEX logs_run_time ON logs(run_id, time, id);
  CREATE INDEX logs_workflow_time ON logs(workflow_id, time, id);
  CREATE INDEX logs_time ON logs(time, id);
  `,
];

/**
 * The log database beside the main one: `cdktr.db` -> `cdktr.logs.db` (`db` -> `db.logs`).
 * Log lines live in a file of their own so that a flood of them never holds the write lock the
 * runs, triggers and statuses need (SQLite has one writer per file).
 */
export function logDatabasePath(dbPath: string): string {
  const ext = extname(dbPath);
  return ext === "" ? `${dbPath}.logs` : `${dbPath.slice(0, -ext.length)}.logs${ext}`;
}

/**
 * Open a writer connection to the log database (WAL, `synchronous=FULL`: an acknowledged line
 * survives a power cut), creating and migrating it.
 * @throws SchemaVersionError when the file's schema is newer than this code; better-sqlite3's
 * error when it cannot be opened.
 */
export function openLogDatabase(path: string): Database.Database {
  const db = new Database(path);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 5000");
    migrate(db, LOG_MIGRATIONS);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/**
 * Copy the `logs` table of a main database written before schema version 3 (when log lines still
 * lived there) into the log database, keeping every line's id. Idempotent (`INSERT OR IGNORE`):
 * a principal stopped between this copy and the migration that drops the old table copies again
 * at its next start and loses nothing. Returns the lines copied.
 */
export function copyLegacyLogs(logs: Database.Database, mainPath: string): number {
  logs.prepare("ATTACH DATABASE ? AS legacy").run(mainPath);
  try {
    const old = logs.prepare("SELECT 1 FROM legacy.sqlite_master WHERE type = 'table' AND name = 'logs'").get();
    if (old === undefined) return 0;
    const columns = "id, run_id, workflow_id, task_id, seq, time, level, stream, line";
    return logs.transaction(
      () =>
        logs.prepare(`INSERT OR IGNORE INTO main.logs (${columns}) SELECT ${columns} FROM legacy.logs`).run().changes,
    )();
  } finally {
    logs.exec("DETACH DATABASE legacy");
  }
}

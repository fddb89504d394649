import type Database from "better-sqlite3";
import { SchemaVersionError } from "../../errors.js";

/**
 * Versioned schema migrations. Each entry upgrades from version `index` to `index + 1`; the
 * current version lives in `schema_version`. Never edit a shipped migration: append a new one.
 * Times are epoch milliseconds (INTEGER); levels are 0 debug .. 3 error.
 */
export const MIGRATIONS: readonly string[] = [
  `
  -- The definition each run executes; key '<workflowId>@<content hash>'.
  CREATE TABLE workflow_snapshots (
    hash        TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
  );

  CREATE TABLE runs (
    run_id           TEXT PRIMARY KEY,
    workflow_id      TEXT NOT NULL,
    workflow_hash    TEXT NOT NULL REFERENCES workflow_snapshots(hash),
    status           TEXT NOT NULL,
    source           TEXT NOT NULL,
    idempotency_key  TEXT,
    params           TEXT NOT NULL,
    scheduled_for    INTEGER,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    agent_id         TEXT,
    reason           TEXT,
    message          TEXT,
    token            TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL
  );
  CREATE INDEX runs_active ON runs(status) WHERE status IN ('QUEUED', 'ASSIGNED', 'RUNNING');
  CREATE INDEX runs_workflow ON runs(workflow_id, status);
  CREATE INDEX runs_workflow_id ON runs(workflow_id, run_id);
  CREATE INDEX runs_scheduled ON runs(workflow_id, scheduled_for, run_id) WHERE scheduled_for IS NOT NULL;
  CREATE INDEX runs_created ON runs(created_at, run_id);
  CREATE INDEX runs_finished ON runs(finished_at) WHERE finished_at IS NOT NULL;

  CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    params      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
  );
  CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
  CREATE INDEX idempotency_keys_run ON idempotency_keys(run_id);

  CREATE TABLE task_runs (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    exit_code   INTEGER,
    signal      TEXT,
    reason      TEXT,
    message     TEXT,
    PRIMARY KEY (run_id, task_id)
  ) WITHOUT ROWID;

  -- Insert-only audit trail of every run and task transition (and of refused late reports).
  CREATE TABLE status_history (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    task_id     TEXT,
    attempt     INTEGER,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    time        INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    applied     INTEGER NOT NULL,
    agent_id    TEXT,
    reason      TEXT,
    message     TEXT
  );
  CREATE INDEX status_history_run ON status_history(run_id, id);

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
  `
  -- The secure wire (docs/security.md). Enrolled client keys: public halves only, never a secret.
  CREATE TABLE keys (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    workflows  TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );

  -- Who triggered a run (a key name; NULL without authentication), and the key holding its lease.
  ALTER TABLE runs ADD COLUMN triggered_by TEXT;
  ALTER TABLE runs ADD COLUMN lease_key TEXT;
  CREATE INDEX runs_triggered_by ON runs(triggered_by, run_id) WHERE triggered_by IS NOT NULL;

  -- Idempotency keys live in the scope of the key that used them ('' = unauthenticated).
  CREATE TABLE idempotency_keys_scoped (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    params      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
  );
  INSERT INTO idempotency_keys_scoped (scope, key, run_id, workflow_id, params, created_at)
    SELECT '', key, run_id, workflow_id, params, created_at FROM idempotency_keys;
  DROP TABLE idempotency_keys;
  ALTER TABLE idempotency_keys_scoped RENAME TO idempotency_keys;
  CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
  CREATE INDEX idempotency_keys_run ON idempotency_keys(run_id);
  `,
  `
  -- Log lines moved to a file of their own (log-database.ts; copied there before this runs).
  DROP TABLE logs;
  `,
  `
  -- The run whose outcome started a run (workflow chaining): JSON {runId, workflowId, status}.
  ALTER TABLE runs ADD COLUMN upstream TEXT;
  `,
  `
  -- Re-run from the failed tasks: the source run of a retry, and on a retry's task taken as done
  -- the run where it really ran.
  ALTER TABLE runs ADD COLUMN retry_of TEXT;
  ALTER TABLE task_runs ADD COLUMN reused_from TEXT;
  `,
  `
  -- Runs of one state, newest first (the dashboard's and \`cdktr runs --status\`'s filter): without
  -- it, a state few runs have scans every run.
  CREATE INDEX runs_status_id ON runs(status, run_id);
  `,
];

/** The main file's version whose migration drops the `logs` table (copied out before it). */
export const LOGS_MOVED_VERSION = 3;

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** Called outside any transaction before the migration to version `to` runs. */
  before?: (to: number) => void;
}

/**
 * Bring the database to the latest schema version, one transaction per migration.
 * @throws SchemaVersionError when the file's schema is newer than this code.
 */
export function migrate(
  db: Database.Database,
  migrations: readonly string[] = MIGRATIONS,
  options: MigrateOptions = {},
): { from: number; to: number } {
  db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  const row = db.prepare("SELECT version FROM schema_version").get() as { version: number } | undefined;
  if (row === undefined) db.prepare("INSERT INTO schema_version (version) VALUES (0)").run();
  const from = row?.version ?? 0;
  if (from > migrations.length) {
    throw new SchemaVersionError(
      "SCHEMA_TOO_NEW",
      `database ${db.name}: schema version ${from} is newer than this principal understands (${migrations.length}): upgrade cdktr or use another CDKTR_DB_PATH`,
      { context: { found: from, supported: migrations.length, file: db.name } },
    );
  }
  for (let v = from; v < migrations.length; v++) {
    options.before?.(v + 1);
    const sql = migrations[v] ?? "";
    db.transaction(() => {
      db.exec(sql);
      db.prepare("UPDATE schema_version SET version = ?").run(v + 1);
    })();
  }
  return { from, to: migrations.length };
}

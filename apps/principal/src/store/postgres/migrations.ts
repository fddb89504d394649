import { SchemaVersionError } from "../../errors.js";
import type { Sql } from "./sql.js";

/**
 * Versioned schema migrations of the PostgreSQL store. Each entry upgrades from version `index`
 * to `index + 1`; the current version lives in `schema_version`. Never edit a shipped migration:
 * append a new one. The tables and columns are those of the SQLite store (same names, same
 * meaning) so the two stores answer alike: times are epoch milliseconds (BIGINT), levels 0 debug
 * .. 3 error, flags 0/1. Tables live in the first schema of the connection's `search_path`.
 */
export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE workflow_snapshots (
    hash        TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
  );

  CREATE TABLE runs (
    run_id           TEXT PRIMARY KEY,
    workflow_id      TEXT NOT NULL,
    workflow_hash    TEXT NOT NULL REFERENCES workflow_snapshots(hash),
    status           TEXT NOT NULL,
    source           TEXT NOT NULL,
    idempotency_key  TEXT,
    params           TEXT NOT NULL,
    scheduled_for    BIGINT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    agent_id         TEXT,
    reason           TEXT,
    message          TEXT,
    token            TEXT,
    lease_expires_at BIGINT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL,
    triggered_by     TEXT,
    lease_key        TEXT
  );
  CREATE INDEX runs_active ON runs(status) WHERE status IN ('QUEUED', 'ASSIGNED', 'RUNNING');
  CREATE INDEX runs_workflow ON runs(workflow_id, status);
  CREATE INDEX runs_workflow_id ON runs(workflow_id, run_id);
  CREATE INDEX runs_scheduled ON runs(workflow_id, scheduled_for, run_id) WHERE scheduled_for IS NOT NULL;
  CREATE INDEX runs_created ON runs(created_at, run_id);
  CREATE INDEX runs_finished ON runs(finished_at) WHERE finished_at IS NOT NULL;
  CREATE INDEX runs_triggered_by ON runs(triggered_by, run_id) WHERE triggered_by IS NOT NULL;

  CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    params      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
  );
  CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
  CREATE INDEX idempotency_keys_run ON idempotency_keys(run_id);

  CREATE TABLE task_runs (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    exit_code   INTEGER,
    signal      TEXT,
    reason      TEXT,
    message     TEXT,
    PRIMARY KEY (run_id, task_id)
  );

  -- Insert-only audit trail of every run and task transition (and of refused late reports).
  CREATE TABLE status_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      TEXT NOT NULL,
    task_id     TEXT,
    attempt     INTEGER,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    time        BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    applied     INTEGER NOT NULL,
    agent_id    TEXT,
    reason      TEXT,
    message     TEXT
  );
  CREATE INDEX status_history_run ON status_history(run_id, id);

  CREATE TABLE logs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    time        BIGINT NOT NULL,
    level       INTEGER NOT NULL,
    stream      TEXT NOT NULL,
    line        TEXT NOT NULL
  );
  CREATE UNIQUE INDEX logs_line ON logs(run_id, task_id, seq);
  CREATE INDEX logs_run_time ON logs(run_id, time, id);
  CREATE INDEX logs_workflow_time ON logs(workflow_id, time, id);
  CREATE INDEX logs_time ON logs(time, id);

  -- Enrolled client keys of the secure wire: public halves only, never a secret.
  CREATE TABLE keys (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    workflows  TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  );
  `,
  // 2: the leader lease of several principals sharing this database (leader/pg-leadership.ts).
  // One row. `epoch` has a UNIQUE index so that a takeover (which changes it) takes the row's
  // FOR UPDATE lock and waits for the old leader's write transactions in flight (each holds FOR
  // KEY SHARE on the row, see the fence), while a renewal (expires_at only) takes FOR NO KEY
  // UPDATE and never waits for them. Expiry is in the database's clock.
  `
  CREATE TABLE leader_lease (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    holder        TEXT,
    epoch         BIGINT NOT NULL UNIQUE,
    expires_at    TIMESTAMPTZ NOT NULL,
    api           TEXT,
    logs          TEXT,
    publish       TEXT,
    workflow_hash TEXT
  );
  INSERT INTO leader_lease (id, holder, epoch, expires_at) VALUES (1, NULL, 0, '-infinity');
  `,
  // 3: the run whose outcome started a run (workflow chaining): JSON {runId, workflowId, status}.
  `
  ALTER TABLE runs ADD COLUMN upstream TEXT;
  `,
  // 4: re-run from the failed tasks: the source run of a retry, and on a retry's task taken as
  // done the run where it really ran.
  `
  ALTER TABLE runs ADD COLUMN retry_of TEXT;
  ALTER TABLE task_runs ADD COLUMN reused_from TEXT;
  `,
  // 5: runs of one state, newest first (the dashboard's and `cdktr runs --status`'s filter):
  // without it, a state few runs have scans every run.
  `
  CREATE INDEX runs_status_id ON runs(status, run_id);
  `,
];

/** First key of the migration lock (`pg_advisory_xact_lock(key, hashtext(schema))`): "cdkt". */
const MIGRATION_LOCK = 0x63646b74;

/**
 * Bring the schema to the latest version in one transaction holding an advisory lock on the
 * schema, so two principals starting at once on one database apply each migration once (the
 * second waits, then finds the work done). `sql` must be a dedicated connection.
 * @throws SchemaVersionError SCHEMA_TOO_NEW when the schema is newer than this code, NO_SCHEMA
 * when the first schema of the `search_path` does not exist.
 */
export async function migratePostgres(sql: Sql, migrations = PG_MIGRATIONS): Promise<{ from: number; to: number }> {
  await sql.run("BEGIN");
  try {
    const schema = (await sql.one<{ s: string | null }>("SELECT current_schema() AS s"))?.s ?? null;
    if (schema === null) {
      throw new SchemaVersionError(
        "NO_SCHEMA",
        "the first schema of the database connection's search_path does not exist: create it (CREATE SCHEMA ...) or change the search_path in CDKTR_DATABASE_URL",
      );
    }
    await sql.run("SELECT pg_advisory_xact_lock($1, hashtext($2))", [MIGRATION_LOCK, schema]);
    await sql.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const row = await sql.one<{ version: number }>("SELECT version FROM schema_version");
    if (row === undefined) await sql.run("INSERT INTO schema_version (version) VALUES (0)");
    const from = row?.version ?? 0;
    if (from > migrations.length) {
      throw new SchemaVersionError(
        "SCHEMA_TOO_NEW",
        `database schema version ${from} (schema ${schema}) is newer than this principal understands (${migrations.length}): upgrade cdktr or point CDKTR_DATABASE_URL elsewhere`,
        { context: { found: from, supported: migrations.length, schema } },
      );
    }
    for (let v = from; v < migrations.length; v++) {
      // A migration holds several statements: the simple query protocol (no parameters) runs them all.
      await sql.run(migrations[v] ?? "");
      await sql.run("UPDATE schema_version SET version = $1", [v + 1]);
    }
    await sql.run("COMMIT");
    return { from, to: migrations.length };
  } catch (e) {
    await sql.run("ROLLBACK").catch(() => undefined);
    throw e;
  }
}

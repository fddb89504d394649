/**
 * The two stores behind one test interface, so the store contract (`contract.ts`,
 * `read-contract.ts`) runs the same tests against SQLite (a temp file) and PostgreSQL (the real
 * server on 127.0.0.1:5432, a fresh schema per test file, dropped at the end).
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import type { Clock } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs, requireServer } from "@cdktr/test-utils";
import { PostgresStore } from "../../store/postgres/postgres-store.js";
import { SqliteStore } from "../../store/sqlite/sqlite-store.js";
import type { Store } from "../../store/store.js";

/** One store implementation under test. */
export interface StoreHarness {
  readonly name: "sqlite" | "postgres";
  /** Undefined when the backend is there; else why the tests skip (throws when `CI` is set). */
  unavailable(): Promise<string | undefined>;
  /** A store on a fresh, empty database. */
  open(clock: Clock): Promise<Store>;
  /** Another store on the database of the last {@link open} (closed first by the test). */
  reopen(clock: Clock): Promise<Store>;
  /** Rows of a query on the database of the last {@link open} (SQL both engines accept). */
  rows(sql: string): Promise<Record<string, unknown>[]>;
  /** Remove the databases. */
  dispose(): Promise<void>;
}

/** The machine's PostgreSQL of the tests (CONTRIBUTING.md): trust auth, user postgres, db test. */
export const PG_TEST_URL = process.env.CDKTR_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/**
 * Undefined when PostgreSQL accepts connections on 127.0.0.1:5432; otherwise a skip message, or an
 * exception when the `CI` variable is set (CI must have the server).
 */
export function requirePostgres(): Promise<string | undefined> {
  return requireServer("PostgreSQL", 5432);
}

/** A schema of its own on the test database: `url` selects it through `search_path`. */
export class PgTestSchema {
  readonly name = `cdktr_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  readonly url = `${PG_TEST_URL}?options=${encodeURIComponent(`-c search_path=${this.name}`)}`;
  private admin: pg.Client | null = null;

  /** Create the schema (once). */
  async create(): Promise<void> {
    if (this.admin !== null) return;
    this.admin = new pg.Client({ connectionString: PG_TEST_URL });
    await this.admin.connect();
    await this.admin.query(`CREATE SCHEMA ${this.name}`);
  }

  /** Empty every table of the schema (ids restart). */
  async truncate(): Promise<void> {
    const tables = await this.query(
      "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_version'",
      [this.name],
    );
    if (tables.length === 0) return;
    const list = tables.map((t) => `${this.name}.${String(t.tablename)}`).join(", ");
    await this.query(`TRUNCATE ${list} RESTART IDENTITY CASCADE`);
  }

  /** Rows of `sql` run with the schema first in the search path. */
  async query(sql: string, values: unknown[] = []): Promise<Record<string, unknown>[]> {
    await this.create();
    const admin = this.admin as pg.Client;
    await admin.query(`SET search_path TO ${this.name}`);
    return (await admin.query(sql, values)).rows as Record<string, unknown>[];
  }

  /** Drop the schema and disconnect. */
  async drop(): Promise<void> {
    const admin = this.admin;
    this.admin = null;
    if (admin === null) return;
    await admin.query(`DROP SCHEMA IF EXISTS ${this.name} CASCADE`);
    await admin.end();
  }
}

/** SQLite: a new file per {@link StoreHarness.open} in a temp directory. */
export function sqliteHarness(): StoreHarness {
  let path = "";
  return {
    name: "sqlite",
    unavailable: async () => undefined,
    async open(clock) {
      path = join(makeTempDir(), "nested", "cdktr.db");
      return SqliteStore.open({ path, clock });
    },
    reopen: async (clock) => SqliteStore.open({ path, clock }),
    async rows(sql) {
      const db = new Database(path, { readonly: true });
      try {
        return db.prepare(sql).all() as Record<string, unknown>[];
      } finally {
        db.close();
      }
    },
    dispose: async () => removeTempDirs(),
  };
}

/** PostgreSQL: one schema for the test file, emptied at each {@link StoreHarness.open}. */
export function postgresHarness(): StoreHarness {
  const schema = new PgTestSchema();
  return {
    name: "postgres",
    unavailable: requirePostgres,
    async open(clock) {
      await schema.create();
      const store = await PostgresStore.open({ url: schema.url, clock });
      await schema.truncate();
      return store;
    },
    reopen: (clock) => PostgresStore.open({ url: schema.url, clock }),
    rows: (sql) => schema.query(sql),
    dispose: () => schema.drop(),
  };
}

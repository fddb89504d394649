/**
 * The machine's PostgreSQL for the benchmarks that run the principal on it: a schema of its own
 * per use (created empty, dropped afterwards), selected through the URL's `search_path`.
 */
import pg from "pg";

/** The benchmarks' PostgreSQL (as the pg-boss peer's): trust auth, user postgres, database test. */
export const BENCH_PG_URL = "postgres://postgres@127.0.0.1:5432/test";

/** An empty schema and the `CDKTR_DATABASE_URL` that selects it. */
export interface BenchSchema {
  url: string;
  /** Drop the schema with everything in it. */
  drop(): Promise<void>;
}

/** Create an empty schema named after `prefix` and this process. */
export async function createBenchSchema(prefix: string): Promise<BenchSchema> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: BENCH_PG_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: `${BENCH_PG_URL}?options=${encodeURIComponent(`-c search_path=${name}`)}`,
    async drop() {
      const c = new pg.Client({ connectionString: BENCH_PG_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}

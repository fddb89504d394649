/**
 * The thin layer between the PostgreSQL store and `pg`: a {@link Sql} handle over one connection
 * (or the read pool) with parameterised queries only, each text prepared once per connection
 * under a stable name, 64-bit integers read as numbers (times are epoch ms, ids stay below 2^53),
 * and the test that tells a lost connection from a refused statement.
 */
import pg from "pg";

/** Parameterised queries on one connection or pool. Values are always bound (`$1`, `$2`...). */
export interface Sql {
  /** Every row of a query. */
  rows<T>(text: string, values?: readonly unknown[]): Promise<T[]>;
  /** The first row of a query, if any. */
  one<T>(text: string, values?: readonly unknown[]): Promise<T | undefined>;
  /** Run a statement; resolves with the number of rows it touched. */
  run(text: string, values?: readonly unknown[]): Promise<number>;
}

const INT8_OID = 20;

/** `pg` type parsers of the store's connections: BIGINT (times, ids, counts) as a number. */
export const PG_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary"
      ? (v: string) => Number(v)
      : (pg.types.getTypeParser(oid, format) as (v: string) => unknown)) as pg.CustomTypesConfig["getTypeParser"],
};

/** Statement names by text: the server parses and plans each text once per connection. */
const names = new Map<string, string>();

function nameOf(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    name = `cdktr_${names.size + 1}`;
    names.set(text, name);
  }
  return name;
}

/**
 * A {@link Sql} over a connection or pool. `prepared` (default true) names every statement so
 * it is parsed once per connection: keep it for fixed texts; pass false for texts built per
 * request (listings with optional filters), which would grow the server's statement cache.
 */
export function sqlOn(db: pg.ClientBase | pg.Pool, prepared = true): Sql {
  const query = (text: string, values: readonly unknown[] = []) =>
    db.query(
      prepared ? { name: nameOf(text), text, values: values as unknown[] } : { text, values: values as unknown[] },
    );
  return {
    rows: async <T>(text: string, values?: readonly unknown[]) => (await query(text, values)).rows as T[],
    one: async <T>(text: string, values?: readonly unknown[]) => (await query(text, values)).rows[0] as T | undefined,
    run: async (text: string, values?: readonly unknown[]) => (await query(text, values)).rowCount ?? 0,
  };
}

/** Node socket errors that mean the server cannot be reached (or went away). */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * SQLSTATEs of a server that is going away or not accepting sessions: admin/crash/immediate
 * shutdown, cannot connect now, too many connections, and the whole class 08 (connection exception).
 */
const SERVER_GONE = new Set(["57P01", "57P02", "57P03", "53300"]);

/**
 * Whether `e` means the connection is unusable (the database is unreachable or went away), as
 * opposed to a statement the server refused. A connection that failed this way is dropped and a
 * new one is made with backoff.
 */
export function isConnectionError(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string") {
    if (SOCKET_CODES.has(code) || SERVER_GONE.has(code) || code.startsWith("08")) return true;
  }
  const message = (e as { message?: unknown }).message;
  return (
    typeof message === "string" &&
    /Connection terminated|connection timeout|Client has encountered a connection error|Client was closed|not queryable|Query read timeout/i.test(
      message,
    )
  );
}

import type pg from "pg";
import type { RunRow } from "../rows.js";
import { newRunRow, type HistoryEntry, type NewRun } from "../rows.js";

/** An idempotency key's row joined with its run (the run's columns are null when it is gone). */
export type IdempotencyRow = RunRow & { k_run_id: string; k_workflow_id: string; k_params: string };
import { sqlOn, type Sql } from "./sql.js";

/** Rows held back for one table: its columns, their SQL types, and one array of values per column. */
interface HeldRows {
  table: string;
  columns: readonly string[];
  types: readonly string[];
  values: unknown[][];
}

const RUN_COLUMNS = [
  ["run_id", "text"],
  ["workflow_id", "text"],
  ["workflow_hash", "text"],
  ["status", "text"],
  ["source", "text"],
  ["triggered_by", "text"],
  ["idempotency_key", "text"],
  ["params", "text"],
  ["scheduled_for", "bigint"],
  ["created_at", "bigint"],
  ["finished_at", "bigint"],
  ["reason", "text"],
  ["message", "text"],
  ["updated_at", "bigint"],
  ["upstream", "text"],
  ["retry_of", "text"],
] as const;
const KEY_COLUMNS = [
  ["scope", "text"],
  ["key", "text"],
  ["run_id", "text"],
  ["workflow_id", "text"],
  ["params", "text"],
  ["created_at", "bigint"],
] as const;
const HISTORY_COLUMNS = [
  ["run_id", "text"],
  ["task_id", "text"],
  ["attempt", "int"],
  ["from_status", "text"],
  ["to_status", "text"],
  ["time", "bigint"],
  ["recorded_at", "bigint"],
  ["applied", "int"],
  ["agent_id", "text"],
  ["reason", "text"],
  ["message", "text"],
] as const;

function held(table: string, columns: readonly (readonly [string, string])[]): HeldRows {
  return { table, columns: columns.map((c) => c[0]), types: columns.map((c) => c[1]), values: columns.map(() => []) };
}

/** Append one row (a value per column) to `rows`. */
function push(rows: HeldRows, row: readonly unknown[]): void {
  for (let i = 0; i < row.length; i++) rows.values[i]?.push(row[i]);
}

/**
 * One statement inserting every row held in `parts` (data-modifying CTEs when there are several),
 * each table with `INSERT ... SELECT * FROM unnest($1::type[], ...)`; null when nothing is held.
 */
function insertStatement(parts: readonly HeldRows[]): { text: string; values: unknown[] } | null {
  const present = parts.filter((p) => (p.values[0]?.length ?? 0) > 0);
  if (present.length === 0) return null;
  const values: unknown[] = [];
  const inserts = present.map((p) => {
    const args = p.types.map((t, i) => {
      values.push(p.values[i]);
      return `$${values.length}::${t}[]`;
    });
    return `INSERT INTO ${p.table} (${p.columns.join(", ")}) SELECT * FROM unnest(${args.join(", ")})`;
  });
  const last = inserts.pop() as string;
  const text =
    inserts.length === 0 ? last : `WITH ${inserts.map((ins, i) => `held${i} AS (${ins})`).join(", ")} ${last}`;
  return { text, values };
}

/** Options of {@link TxSql}. */
export interface TxSqlOptions {
  /** Hold new runs back (false: insert each at once, e.g. one command per savepoint). */
  defer: boolean;
  /**
   * Opens the transaction (`BEGIN` and the fence), called before its first statement; null when
   * the caller opened it already.
   */
  begin: (() => Promise<void>) | null;
}

/**
 * The {@link Sql} of one write transaction of a lane, with what the lane needs to commit many
 * commands in few round trips to the server:
 * - it counts the statements that wrote and the ones that failed, so a refused command that
 *   wrote nothing needs no savepoint to be undone;
 * - with `defer`, new runs (and their idempotency keys) are held back and inserted together in
 *   one statement, right before the next statement of the transaction (so every read sees them)
 *   or at the end;
 * - the insert-only `status_history` lines are held back until the end (history is never read
 *   inside a transaction);
 * - the transaction is opened only before its first statement: a batch of plain triggers is then
 *   one statement, committed on its own (no BEGIN, no COMMIT: one round trip and one WAL flush).
 */
export class TxSql implements Sql {
  private readonly sql: Sql;
  private written = 0;
  private failed = 0;
  private begun: boolean;
  private readonly runs = held("runs", RUN_COLUMNS);
  private readonly keys = held("idempotency_keys", KEY_COLUMNS);
  private readonly history = held("status_history", HISTORY_COLUMNS);
  /** Held-back idempotency keys, as `scope\0key`. */
  private readonly heldKeys = new Set<string>();
  /** Idempotency keys written (inserted or deleted) in this transaction: their prefetched answer is stale. */
  private readonly writtenKeys = new Set<string>();
  /** {@link prefetchKeys}' answers: `scope\0key` -> the key's row joined with its run, or null (no such key). */
  private readonly prefetched = new Map<string, IdempotencyRow | null>();

  constructor(
    client: pg.ClientBase,
    private readonly options: TxSqlOptions,
  ) {
    this.sql = sqlOn(client);
    this.begun = options.begin === null;
  }

  async rows<T>(text: string, values?: readonly unknown[]): Promise<T[]> {
    await this.flushRuns();
    return this.track(text, this.sql.rows<T>(text, values));
  }

  async one<T>(text: string, values?: readonly unknown[]): Promise<T | undefined> {
    await this.flushRuns();
    return this.track(text, this.sql.one<T>(text, values));
  }

  async run(text: string, values?: readonly unknown[]): Promise<number> {
    await this.flushRuns();
    return this.track(text, this.sql.run(text, values));
  }

  /**
   * Whether the idempotency key `scope`/`key` is among the held-back ones: a lookup of a key that
   * is not may skip the flush ({@link oneBeforeRuns}).
   */
  holdsKey(scope: string, key: string): boolean {
    return this.heldKeys.has(`${scope}\0${key}`);
  }

  /**
   * Look up the idempotency keys `keys` (`[scope, key]`) of a whole batch in one statement, so
   * that each command's {@link prefetchedKey} needs no round trip of its own (64 keyed triggers
   * were 64 sequential lookups).
   */
  async prefetchKeys(keys: readonly (readonly [string, string])[]): Promise<void> {
    const rows = await this.oneStatementBeforeRuns<IdempotencyRow & { k_scope: string; k_key: string }>(
      `SELECT k.scope AS k_scope, k.key AS k_key, k.run_id AS k_run_id, k.workflow_id AS k_workflow_id,
              k.params AS k_params, r.*
       FROM idempotency_keys k LEFT JOIN runs r ON r.run_id = k.run_id
       WHERE (k.scope, k.key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [keys.map((k) => k[0]), keys.map((k) => k[1])],
    );
    for (const [scope, key] of keys) this.prefetched.set(`${scope}\0${key}`, null);
    for (const r of rows) this.prefetched.set(`${r.k_scope}\0${r.k_key}`, r);
  }

  /**
   * The prefetched answer for `scope`/`key`: its row (run columns null when the run is gone), null
   * when there was no such key, undefined when not prefetched or written in this transaction since
   * (ask the database).
   */
  prefetchedKey(scope: string, key: string): IdempotencyRow | null | undefined {
    const id = `${scope}\0${key}`;
    return this.writtenKeys.has(id) ? undefined : this.prefetched.get(id);
  }

  /** The idempotency key `scope`/`key` was changed by a statement of this transaction. */
  noteKeyWritten(scope: string, key: string): void {
    this.writtenKeys.add(`${scope}\0${key}`);
  }

  /**
   * A query that does not need the held-back runs (the caller knows they cannot change its
   * answer, e.g. {@link holdsKey} said no): no flush first.
   */
  async oneBeforeRuns<T>(text: string, values?: readonly unknown[]): Promise<T | undefined> {
    await this.open();
    return this.track(text, this.sql.one<T>(text, values));
  }

  /** {@link oneBeforeRuns} for a query of several rows. */
  private async oneStatementBeforeRuns<T>(text: string, values?: readonly unknown[]): Promise<T[]> {
    await this.open();
    return this.track(text, this.sql.rows<T>(text, values));
  }

  /**
   * Insert a run (and with `idempotency` its key): held back with `defer`, else at once. Returns
   * the row as written, without reading it back.
   */
  async insertRun(now: number, r: NewRun, idempotency?: { scope: string; params: string }): Promise<RunRow> {
    const row = newRunRow(now, r);
    push(
      this.runs,
      this.runs.columns.map((c) => row[c as keyof RunRow]),
    );
    if (idempotency !== undefined && r.key !== null) {
      const key = [idempotency.scope, r.key, r.runId, r.workflowId, idempotency.params, now];
      push(this.keys, key);
      this.heldKeys.add(`${idempotency.scope}\0${r.key}`);
      this.writtenKeys.add(`${idempotency.scope}\0${r.key}`);
    }
    this.written++;
    if (!this.options.defer) await this.flushRuns();
    return row;
  }

  /** Append a history line (recorded at `now`), written with the others at the end. */
  addHistory(now: number, h: HistoryEntry): void {
    const line = [
      h.runId,
      h.taskId ?? null,
      h.attempt ?? null,
      h.from,
      h.to,
      h.time ?? now,
      now,
      h.applied === false ? 0 : 1,
      h.agentId ?? null,
      h.reason ?? null,
      h.message ?? null,
    ];
    push(this.history, line);
  }

  /** Where the transaction is now, to tell later what one command did. */
  mark(): { written: number; failed: number; history: number } {
    return { written: this.written, failed: this.failed, history: this.history.values[0]?.length ?? 0 };
  }

  /** Whether statements since `mark` wrote rows or failed (a failure aborts the transaction). */
  changedSince(mark: { written: number; failed: number }): boolean {
    return this.written > mark.written || this.failed > mark.failed;
  }

  /** Drop the history lines held back since `mark` (their command was undone or refused). */
  dropHistorySince(mark: { history: number }): void {
    for (const column of this.history.values) column.length = mark.history;
  }

  /**
   * Write everything held back. Resolves true when that was the transaction's only statement and
   * so is committed already (allowed with `alone`: no fence to check), false when the caller must
   * COMMIT.
   */
  async finish(alone: boolean): Promise<boolean> {
    const statement = insertStatement([this.runs, this.keys, this.history]);
    this.clear(this.runs, this.keys, this.history);
    if (alone && !this.begun) {
      if (statement !== null) await this.track(null, this.sql.run(statement.text, statement.values));
      return true;
    }
    if (statement !== null) {
      await this.open();
      await this.track(null, this.sql.run(statement.text, statement.values));
    }
    return !this.begun;
  }

  /** Insert the held-back runs and keys, in one statement. */
  private async flushRuns(): Promise<void> {
    await this.open();
    const statement = insertStatement([this.runs, this.keys]);
    if (statement === null) return;
    this.clear(this.runs, this.keys);
    await this.track(null, this.sql.run(statement.text, statement.values));
  }

  /** Start new arrays for `parts` (a statement built from the old ones still holds them). */
  private clear(...parts: HeldRows[]): void {
    for (const p of parts) p.values = p.values.map(() => []);
    if (parts.includes(this.keys)) this.heldKeys.clear();
  }

  private async open(): Promise<void> {
    if (this.begun) return;
    this.begun = true;
    await this.options.begin?.();
  }

  /**
   * Count a statement: a failure always, a write unless `text` is a SELECT or null (the held-back
   * rows, counted as written by the command that held them back).
   */
  private async track<T>(text: string | null, result: Promise<T>): Promise<T> {
    try {
      const value = await result;
      if (text !== null && !/^\s*SELECT\b/i.test(text)) this.written++;
      return value;
    } catch (e) {
      this.failed++;
      throw e;
    }
  }
}

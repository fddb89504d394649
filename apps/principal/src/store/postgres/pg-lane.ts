import type pg from "pg";
import { backoffDelay, errorMessage, toCdktrError, type Clock, type Logger } from "@cdktr/protocol";
import { shuttingDown } from "../../errors.js";
import { isConnectionError, sqlOn, type Sql } from "./sql.js";
import { TxSql } from "./tx-sql.js";

/**
 * Most commands in one transaction. When a batch is run again with a savepoint per command (a
 * subtransaction), PostgreSQL keeps the ids of 64 of them per transaction in shared memory and
 * beyond that every other session's snapshot gets slower, so a batch stays within it.
 */
const MAX_BATCH = 64;
/** Reconnection backoff (`backoffDelay`): first delay and cap. */
const RECONNECT = { initialMs: 100, maxMs: 5_000 } as const;

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

interface PendingCommand {
  fn: (sql: TxSql, now: number) => Promise<unknown>;
  /** The idempotency key (`[scope, key]`) the command will look up, fetched with the batch's. */
  idempotencyKey: readonly [string, string] | undefined;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Options of {@link PgLane}. */
export interface PgLaneOptions {
  /** `control` or `bulk` (in logs). */
  name: string;
  /** Opens a new connection (already connected). */
  connect: () => Promise<pg.Client>;
  /** Time passed to every command of a batch (one `now` per transaction). */
  clock: Clock;
  logger?: Logger | undefined;
  /** The error every write gets while the database cannot be reached. */
  unavailable: (cause: unknown) => Error;
  /** Called when reachability changes (to report `database unreachable`). */
  onReachable: (lane: string, reachable: boolean) => void;
  /** Called after a batch was rolled back (whatever it wrote is gone: drop caches of it). */
  onRollback?: () => void;
  /**
   * Runs first in every transaction, before any command: the one place where every write of the
   * store passes, so a leader's fencing-epoch check (a `SELECT ... FOR SHARE` of the lease row
   * that throws when another principal took over) goes here. A throw fails the whole batch.
   */
  fence?: (sql: Sql) => Promise<void>;
}

/**
 * One write lane of the PostgreSQL store: its own connection and group commit. Commands queued in
 * the same event-loop turn, or while the previous transaction commits, run in one transaction
 * (`BEGIN` ... `COMMIT`, up to {@link MAX_BATCH}) in which one refused command does not undo the
 * others (see {@link transaction}: savepoints only when a refused command had written); every
 * promise settles after the COMMIT, so a resolved write is durable. Commands of a lane run in call order. The store has two lanes (control and bulk) on two
 * connections, so log lines and retention never hold up a trigger.
 *
 * When the connection fails (refused, reset, server shut down), the batch's commands reject with
 * the retryable `unavailable` error, and so does every command queued while the lane is down; the
 * lane reconnects in the background with backoff and reports reachability through `onReachable`.
 */
export class PgLane {
  private queue: PendingCommand[] = [];
  private client: pg.Client | null = null;
  private flushing = false;
  private scheduled = false;
  private closed = false;
  private down = false;
  private reconnecting: NodeJS.Timeout | null = null;
  private attempt = 0;
  private idle: (() => void)[] = [];

  constructor(private readonly opts: PgLaneOptions) {}

  /** Adopt an open connection (the first one is opened by the store, to fail fast at start). */
  adopt(client: pg.Client): void {
    this.watch(client);
    this.client = client;
  }

  /** Whether the lane's database connection is down. */
  get unreachable(): boolean {
    return this.down;
  }

  /**
   * Queue `fn` for the next transaction; resolves with its result once that transaction has
   * committed. If `fn` throws, only its savepoint is rolled back and the promise rejects with
   * what it threw. `idempotencyKey`: the key `fn` will look up (`[scope, key]`): the keys of a
   * batch are fetched in one statement ({@link TxSql.prefetchKeys}).
   * @throws CdktrError SHUTTING_DOWN after {@link close}; the `unavailable` error while the
   * database cannot be reached (both as rejections).
   */
  command<T>(fn: (sql: TxSql, now: number) => Promise<T>, idempotencyKey?: readonly [string, string]): Promise<T> {
    if (this.closed) return Promise.reject(shuttingDown("retry against the next one"));
    if (this.down) return Promise.reject(this.opts.unavailable(null));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, idempotencyKey, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Resolves once every command queued so far has settled. */
  drain(): Promise<void> {
    if (this.queue.length === 0 && !this.flushing) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Refuse new commands, let the queued ones commit, close the connection. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drain();
    if (this.reconnecting !== null) clearTimeout(this.reconnecting);
    this.reconnecting = null;
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    // The calls of this event-loop turn go in one transaction.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) await this.runBatch(this.queue.splice(0, MAX_BATCH));
    } finally {
      this.flushing = false;
      const waiting = this.idle;
      this.idle = [];
      for (const resolve of waiting) resolve();
    }
  }

  private async runBatch(batch: PendingCommand[]): Promise<void> {
    const client = this.client;
    if (this.down || client === null) {
      for (const cmd of batch) cmd.reject(this.opts.unavailable(null));
      return;
    }
    const sql = sqlOn(client);
    const now = this.opts.clock.now();
    let results: Outcome[] | "again";
    try {
      results = await this.transaction(sql, client, batch, now, false);
      if (results === "again") {
        // A command was refused after it wrote (or a statement failed): undo the whole batch and
        // run it again with a savepoint per command, so only the refused one is undone.
        await sql.run("ROLLBACK");
        this.opts.onRollback?.();
        results = await this.transaction(sql, client, batch, now, true);
      }
    } catch (e) {
      this.opts.onRollback?.();
      let err: unknown;
      if (isConnectionError(e)) {
        // Lost during the transaction, maybe during COMMIT: the outcome is unknown, so nothing is
        // acknowledged (every write is idempotent: the retry is safe either way).
        this.lost(client, e);
        err = this.opts.unavailable(e);
      } else {
        await sql.run("ROLLBACK").catch(() => undefined);
        err = toCdktrError(e);
        this.opts.logger?.error("store commit failed", { lane: this.opts.name, error: errorMessage(e) });
      }
      for (const cmd of batch) cmd.reject(err);
      return;
    }
    batch.forEach((cmd, i) => {
      const r = (results as Outcome[])[i];
      if (r?.ok === true) cmd.resolve(r.value);
      else cmd.reject(r?.error);
    });
  }

  /**
   * One transaction of `batch`, committed unless it returns `"again"`. First without savepoints
   * (`safe` false): a command refused before it wrote anything needs no undo, which is the common
   * case (the state rules refuse before writing); a command refused after writing, or a failed
   * statement, returns `"again"` with the transaction still open. With `safe`, each command runs
   * in a savepoint and a refused one is rolled back to it.
   */
  private async transaction(
    sql: Sql,
    client: pg.Client,
    batch: readonly PendingCommand[],
    now: number,
    safe: boolean,
  ): Promise<Outcome[] | "again"> {
    const begin = async (): Promise<void> => {
      await sql.run("BEGIN");
      if (this.opts.fence !== undefined) await this.opts.fence(sql);
    };
    // With savepoints the transaction is opened now; without, before its first statement (a
    // batch of plain triggers is then a single statement that commits on its own).
    if (safe) await begin();
    const tx = new TxSql(client, { defer: !safe, begin: safe ? null : begin });
    // The idempotency keys of the batch in one lookup instead of one round trip per command.
    const keys = batch.flatMap((c) => (c.idempotencyKey === undefined ? [] : [c.idempotencyKey]));
    if (keys.length > 1) await tx.prefetchKeys(keys);
    const results: Outcome[] = [];
    for (const cmd of batch) {
      const mark = tx.mark();
      if (safe) await sql.run("SAVEPOINT cmd");
      try {
        const value = await cmd.fn(tx, now);
        if (safe) await sql.run("RELEASE SAVEPOINT cmd");
        results.push({ ok: true, value });
      } catch (error) {
        if (isConnectionError(error)) throw error;
        if (!safe && tx.changedSince(mark)) return "again";
        if (safe) {
          await sql.run("ROLLBACK TO SAVEPOINT cmd");
          await sql.run("RELEASE SAVEPOINT cmd");
        }
        tx.dropHistorySince(mark);
        results.push({ ok: false, error });
      }
    }
    let committed: boolean;
    try {
      committed = await tx.finish(this.opts.fence === undefined);
    } catch (e) {
      // Held-back rows the server refused: find the command at fault with a savepoint each.
      if (!safe && !isConnectionError(e)) return "again";
      throw e;
    }
    if (!committed) await sql.run("COMMIT");
    return results;
  }

  /** Route a connection's own errors (it broke while idle) to {@link lost}. */
  private watch(client: pg.Client): void {
    client.on("error", (e) => this.lost(client, e));
    client.on("end", () => {
      if (!this.closed) this.lost(client, "the connection ended");
    });
  }

  /** The connection `client` is unusable: mark the lane down and reconnect in the background. */
  private lost(client: pg.Client, cause: unknown): void {
    if (this.client !== client) return;
    this.client = null;
    client.end().catch(() => undefined);
    if (this.closed) return;
    if (!this.down) {
      this.down = true;
      this.opts.logger?.error("database unreachable: writes are refused with STORAGE_UNAVAILABLE until it is back", {
        lane: this.opts.name,
        error: errorMessage(cause),
      });
      this.opts.onReachable(this.opts.name, false);
    }
    this.attempt = 0;
    this.reconnectLater();
  }

  private reconnectLater(): void {
    if (this.closed || this.reconnecting !== null) return;
    this.attempt++;
    this.reconnecting = setTimeout(
      () => {
        this.reconnecting = null;
        void this.reconnect();
      },
      backoffDelay(this.attempt, RECONNECT),
    );
    this.reconnecting.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    let client: pg.Client;
    try {
      client = await this.opts.connect();
    } catch {
      this.reconnectLater();
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.adopt(client);
    this.down = false;
    this.attempt = 0;
    this.opts.logger?.info("database reachable again: writes are accepted", { lane: this.opts.name });
    this.opts.onReachable(this.opts.name, true);
    this.schedule();
  }
}

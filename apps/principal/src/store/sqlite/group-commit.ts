import type Database from "better-sqlite3";
import { toCdktrError, type Clock, type Logger } from "@cdktr/protocol";
import { shuttingDown } from "../../errors.js";

/** Longest a group commit keeps executing commands before committing and yielding. */
const FLUSH_SLICE_MS = 25;

interface PendingCommand {
  fn: (now: number) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Options of {@link GroupCommit}. */
export interface GroupCommitOptions {
  /** The writer connection. */
  db: Database.Database;
  /** Time passed to every command of a batch (one `now` per transaction). */
  clock: Clock;
  logger?: Logger | undefined;
  /** Called after a batch was rolled back (whatever it wrote is gone: drop caches of it). */
  onRollback?: () => void;
}

/**
 * The write path of the SQLite store: group commit.
 *
 * Commands queued in the same event-loop turn (or while a commit runs) are applied in one
 * `BEGIN IMMEDIATE` transaction, each in its own savepoint so one refused command does not undo
 * the others, with a single fsync; every promise settles only after that COMMIT. A batch is
 * time-sliced: commands left over after 25 ms go to the next flush (next event-loop turn), so
 * pings and acks are never starved by a burst.
 */
export class GroupCommit {
  private queue: PendingCommand[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly db: Database.Database;
  private readonly statements: Record<"begin" | "savepoint" | "release" | "rollbackTo" | "commit", Database.Statement>;

  constructor(private readonly opts: GroupCommitOptions) {
    this.db = opts.db;
    this.statements = {
      begin: this.db.prepare("BEGIN IMMEDIATE"),
      savepoint: this.db.prepare("SAVEPOINT cmd"),
      release: this.db.prepare("RELEASE cmd"),
      rollbackTo: this.db.prepare("ROLLBACK TO cmd"),
      commit: this.db.prepare("COMMIT"),
    };
  }

  /**
   * Queue `fn` for the next batch; resolves with its result once the batch has committed.
   * `fn` runs synchronously inside the transaction with the batch's `now`; if it throws, only
   * its own savepoint is rolled back and the promise rejects with what it threw.
   * @throws CdktrError SHUTTING_DOWN (as a rejection) after {@link close}.
   */
  command<T>(fn: (now: number) => T): Promise<T> {
    if (this.closed) return Promise.reject(shuttingDown("retry against the next one"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.scheduleFlush();
    });
  }

  /** Resolves once every command queued so far is committed. */
  drain(): Promise<void> {
    if (this.queue.length === 0 || this.closed) return Promise.resolve();
    return this.command(() => undefined);
  }

  /** Refuse new commands and wait until the queued ones have committed. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0) {
      this.scheduleFlush();
      await new Promise((r) => setImmediate(r));
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    const queued = this.queue;
    this.flushScheduled = false;
    if (queued.length === 0) return;
    const { begin, savepoint, release, rollbackTo, commit } = this.statements;
    const now = this.opts.clock.now();
    const results: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    const started = performance.now();
    let taken = 0;
    try {
      begin.run();
      for (const cmd of queued) {
        if (taken > 0 && performance.now() - started > FLUSH_SLICE_MS) break;
        taken++;
        savepoint.run();
        try {
          const value = cmd.fn(now);
          release.run();
          results.push({ ok: true, value });
        } catch (error) {
          rollbackTo.run();
          release.run();
          results.push({ ok: false, error });
        }
      }
      commit.run();
    } catch (e) {
      this.opts.onRollback?.();
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      const err = toCdktrError(e);
      const failed = queued.splice(0, Math.max(taken, 1));
      this.opts.logger?.error("store commit failed", { error: err.message, commands: failed.length });
      for (const cmd of failed) cmd.reject(err);
      this.scheduleFlush();
      return;
    }
    const batch = queued.splice(0, taken);
    this.scheduleFlush();
    batch.forEach((cmd, i) => {
      const r = results[i];
      if (r === undefined) return;
      if (r.ok) cmd.resolve(r.value);
      else cmd.reject(r.error);
    });
  }
}

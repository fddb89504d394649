import type Database from "better-sqlite3";
import { errorMessage, toCdktrError, type CdktrError, type Clock, type Logger } from "@cdktr/protocol";
import { shuttingDown } from "../../errors.js";
import { WalSync } from "./wal-sync.js";
import type { WriteTurn } from "./write-turns.js";

/**
 * Longest a control flush keeps executing commands before committing and yielding: control
 * commands are small, and a burst of triggers commits together.
 */
const CONTROL_SLICE_MS = 25;
/**
 * Longest a bulk flush (log lines, retention) keeps executing before committing and yielding: what
 * a trigger queued meanwhile waits at most, besides its own commit.
 */
const BULK_SLICE_MS = 2;

/**
 * Longest a bulk transaction stays open across event-loop turns while only bulk work waits: its
 * commands resolve at most this much later, and a control command that arrives meanwhile commits
 * it first (a write of the pages it changed, no fsync).
 */
const BULK_TXN_MAX_MS = 50;

/** What a step of {@link GroupCommit.commandInPieces} returns while it has more to do. */
export const MORE_PIECES: unique symbol = Symbol("more pieces");

/**
 * One step of a command that runs in pieces: does at least one unit of work, then more while
 * `inTime()` is true; returns {@link MORE_PIECES} when work is left, otherwise the result.
 */
export type PieceStep<T> = (now: number, inTime: () => boolean) => T | typeof MORE_PIECES;

/**
 * The queue a command waits in. `control`: triggers, status reports, dispatch, keys (small and
 * latency-sensitive); `bulk`: log lines and retention (large). A flush commits commands of one
 * lane: control first, alternating with bulk while both wait (so bulk always moves).
 */
export type CommitLane = "control" | "bulk";

interface PendingCommand {
  fn: (now: number, inTime: () => boolean) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** A command that ran in a transaction, with its outcome (settled once the transaction commits). */
interface Taken {
  cmd: PendingCommand;
  result: { ok: true; value: unknown } | { ok: false; error: unknown };
}

/** The bulk transaction left open between event-loop turns. */
interface BulkTxn {
  /** `performance.now()` at BEGIN. */
  since: number;
  /** Commands finished in it, settled at its COMMIT. */
  taken: Taken[];
  /** The command in pieces whose last piece ran in it and that has more (at the head of the bulk lane). */
  partial: PendingCommand | null;
  /** `total_changes()` at BEGIN. */
  changedBefore: number;
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
  /**
   * What a command rejects with when SQLite says the disk is full (`SQLITE_FULL`); the batch it
   * was part of is rolled back.
   */
  storageFull: (cause: unknown) => CdktrError;
  /**
   * Turns at the write lock with another connection of this process that writes the same file
   * (the main thread and the log-ingest thread on the log database): taken before every BEGIN,
   * given back after its COMMIT or ROLLBACK;
   * an open bulk transaction ends early when the other side waits.
   */
  turn?: WriteTurn | undefined;
}

/** Whether `e` is better-sqlite3's error for a full disk (or a database at its size limit). */
export function isSqliteFull(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === "SQLITE_FULL";
}

/**
 * The write path of the SQLite store: group commit, in two lanes.
 *
 * Commands queued in the same event-loop turn (or while a commit runs) are applied in one
 * `BEGIN IMMEDIATE` transaction, each in its own savepoint so one refused command does not undo
 * the others, with a single fsync; every promise settles only after that COMMIT. A batch is
 * time-sliced: commands left over after the slice (25 ms for control, 2 ms for bulk) go to the
 * next flush (next event-loop turn), so pings and acks are never starved by a burst. Each
 * transaction takes one {@link CommitLane}: control when it has commands, except that when both
 * lanes wait they alternate; commands run in call order within their lane, and a control command
 * waits behind at most one bulk flush of about 2 ms (never inside a commit that writes log lines).
 * A large bulk command runs in pieces ({@link commandInPieces}), one piece per flush. A bulk
 * transaction stays open across flushes (each still at most ~2 ms of work in one turn) while only
 * bulk work waits, for up to 50 ms: one commit instead of dozens that would rewrite the same index
 * pages into the log (5x the throughput of a commit per piece on 20,000-line batches). A control
 * command queued meanwhile commits it first.
 *
 * When SQLite reports a full disk (`SQLITE_FULL`, which rolls back the whole transaction), every
 * command of that batch rejects with the `storageFull` error and {@link storageFull} stays true
 * until a batch that changed rows commits again.
 */
export class GroupCommit {
  private readonly lanes: Record<CommitLane, PendingCommand[]> = { control: [], bulk: [] };
  private flushScheduled = false;
  private closed = false;
  private full = false;
  /** The lane of the last flush: when both lanes wait, flushes alternate. */
  private lastLane: CommitLane = "bulk";
  private readonly db: Database.Database;
  private readonly statements: Record<
    "begin" | "savepoint" | "release" | "rollbackTo" | "commit" | "changes" | "syncFull" | "syncNormal",
    Database.Statement
  >;
  private readonly wal: WalSync;
  /** The connection's `synchronous` setting: FULL, or NORMAL during bulk flushes. */
  private synchronousFull = true;
  /** The bulk transaction left open while more bulk work waits (see `flush`). */
  private bulkTxn: BulkTxn | null = null;

  constructor(private readonly opts: GroupCommitOptions) {
    this.db = opts.db;
    // Each command runs in a savepoint, so SQLite keeps the first image of every page a command
    // changes in a sub-journal; by default that is a temporary file, written page by page (a
    // run's insert touches a dozen b-trees): in memory, batched triggers are ~2.7x faster. It is
    // bounded by the pages one command (or one piece of a large one) changes.
    this.db.pragma("temp_store = MEMORY");
    this.statements = {
      begin: this.db.prepare("BEGIN IMMEDIATE"),
      savepoint: this.db.prepare("SAVEPOINT cmd"),
      release: this.db.prepare("RELEASE cmd"),
      rollbackTo: this.db.prepare("ROLLBACK TO cmd"),
      commit: this.db.prepare("COMMIT"),
      changes: this.db.prepare("SELECT total_changes() AS n"),
      syncFull: this.db.prepare("PRAGMA synchronous = FULL"),
      syncNormal: this.db.prepare("PRAGMA synchronous = NORMAL"),
    };
    this.wal = new WalSync(this.db);
  }

  /** True since a commit failed on a full disk, until a batch that changed rows commits. */
  get storageFull(): boolean {
    return this.full;
  }

  /**
   * Queue `fn` for the next batch in `lane`; resolves with its result once the batch has
   * committed. `fn` runs synchronously inside the transaction with the batch's `now`; if it
   * throws, only its own savepoint is rolled back and the promise rejects with what it threw.
   * @throws CdktrError SHUTTING_DOWN (as a rejection) after {@link close}; STORAGE_FULL when the
   * disk is full.
   */
  command<T>(fn: (now: number) => T, lane: CommitLane = "control"): Promise<T> {
    return this.enqueue(fn, lane);
  }

  /**
   * Queue a command that runs in pieces, one per flush (several pieces may share a transaction): `step`
   * runs inside the transaction with the flush's `now`, does at least one unit of work and goes
   * on while `inTime()` is true, and returns {@link MORE_PIECES} until it is done. The command
   * keeps its place at the head of its lane between pieces, so the lane's order is kept and a
   * command of the other lane waits behind at most one piece. Resolves with the last step's
   * result once it committed. When a later piece throws, only that piece is rolled back; when a
   * transaction fails, what its pieces wrote is rolled back and what earlier transactions
   * committed stays: a caller's retry starts over, so the writes should be idempotent.
   * @throws CdktrError SHUTTING_DOWN (as a rejection) after {@link close}; STORAGE_FULL when the
   * disk is full.
   */
  commandInPieces<T>(step: PieceStep<T>, lane: CommitLane = "bulk"): Promise<T> {
    return this.enqueue(step, lane);
  }

  private enqueue<T>(fn: (now: number, inTime: () => boolean) => unknown, lane: CommitLane): Promise<T> {
    if (this.closed) return Promise.reject(shuttingDown("retry against the next one"));
    return new Promise<T>((resolve, reject) => {
      this.lanes[lane].push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.scheduleFlush();
    });
  }

  /** Resolves once every command queued so far (both lanes) is committed. */
  drain(): Promise<void> {
    if (this.pending() === 0 || this.closed) return Promise.resolve();
    // Each lane keeps its order: a no-op at the end of each is committed after what is before it.
    return Promise.all([this.command(() => undefined, "control"), this.command(() => undefined, "bulk")]).then(
      () => undefined,
    );
  }

  /** Refuse new commands and wait until the queued ones have committed. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.pending() > 0) {
      this.scheduleFlush();
      await new Promise((r) => setImmediate(r));
    }
    this.setSynchronousFull(true);
    this.wal.close();
  }

  /** Set the connection's `synchronous` (outside a transaction: SQLite refuses it inside). */
  private setSynchronousFull(full: boolean): void {
    if (full === this.synchronousFull) return;
    (full ? this.statements.syncFull : this.statements.syncNormal).run();
    this.synchronousFull = full;
  }

  private pending(): number {
    return this.lanes.control.length + this.lanes.bulk.length;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.pending() === 0) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending() === 0) return;
    // One lane per transaction: a trigger's ack never waits for log lines to be written in its
    // commit. Control goes first, but when both wait the lanes alternate, so each waits at most
    // one flush of the other.
    const lane: CommitLane =
      this.lanes.control.length > 0 && (this.lastLane === "bulk" || this.lanes.bulk.length === 0) ? "control" : "bulk";
    this.lastLane = lane;
    // A control command first ends the bulk transaction left open (see below); so does the other
    // writer of the file waiting for the lock.
    if (
      (lane === "control" || this.opts.turn?.othersWaiting() === true) &&
      this.bulkTxn !== null &&
      !this.endBulkTxn()
    ) {
      this.scheduleFlush();
      return;
    }
    const { begin, savepoint, release, rollbackTo, commit } = this.statements;
    const now = this.opts.clock.now();
    const taken: Taken[] = [];
    let count = 0;
    const started = performance.now();
    /** A command of {@link commandInPieces} that ran a piece and has more: it stays queued. */
    let unfinished: PendingCommand | null = null;
    // A bulk flush commits without an fsync; when it finishes a command, one fsync of the log
    // makes it (and every relaxed piece before it) durable before the command resolves.
    const relaxed = lane === "bulk" && this.wal.available;
    let txn = lane === "bulk" ? this.bulkTxn : null;
    try {
      let changedBefore: number;
      if (txn === null) {
        this.setSynchronousFull(!relaxed);
        this.opts.turn?.acquire();
        begin.run();
        changedBefore = this.totalChanges();
        if (lane === "bulk") txn = { since: started, taken: [], partial: null, changedBefore };
      } else changedBefore = txn.changedBefore;
      const until = started + (lane === "bulk" ? BULK_SLICE_MS : CONTROL_SLICE_MS);
      // The other writer of the file waiting for the lock cuts the slice short.
      const inTime = (): boolean => performance.now() < until && this.opts.turn?.othersWaiting() !== true;
      const queue = this.lanes[lane];
      for (const cmd of queue) {
        // The first command always runs, however long it takes.
        if (count > 0 && !inTime()) break;
        count++;
        savepoint.run();
        try {
          const value = cmd.fn(now, inTime);
          release.run();
          if (value === MORE_PIECES) {
            unfinished = cmd;
            break;
          }
          taken.push({ cmd, result: { ok: true, value } });
        } catch (error) {
          // A full disk (and other I/O errors) roll back the whole transaction: the batch fails.
          if (isSqliteFull(error) || !this.db.inTransaction) throw error;
          rollbackTo.run();
          release.run();
          taken.push({ cmd, result: { ok: false, error } });
        }
      }
      const done = unfinished === null ? count : count - 1;
      if (txn !== null) {
        queue.splice(0, done);
        // Bulk: the transaction stays open across event-loop turns (each turn still runs at most
        // one ~2 ms slice) while more bulk work waits, no control command does, and it is young:
        // small commits would rewrite the same index pages into the log again and again.
        txn.taken.push(...taken);
        txn.partial = unfinished;
        this.bulkTxn = txn;
        const keepOpen =
          relaxed &&
          this.lanes.bulk.length > 0 &&
          this.lanes.control.length === 0 &&
          this.opts.turn?.othersWaiting() !== true &&
          performance.now() - txn.since < BULK_TXN_MAX_MS;
        if (!keepOpen) this.endBulkTxn();
        this.scheduleFlush();
        return;
      }
      const wrote = this.totalChanges() > changedBefore;
      commit.run();
      this.opts.turn?.release();
      queue.splice(0, done);
      this.wroteAfterFull(wrote);
    } catch (e) {
      // The commands of this flush, and those of the bulk transaction it continued, are lost.
      const failed = [...(txn?.taken.map((t) => t.cmd) ?? []), ...this.lanes[lane].splice(0, Math.max(1, count))];
      this.bulkTxn = null;
      this.fail(e, failed);
      return;
    }
    this.scheduleFlush();
    settle(taken);
  }

  /**
   * Commit the open bulk transaction (one fsync of the log when it finished commands) and settle
   * its commands. On failure every command that wrote in it is rejected, including a command in
   * pieces whose earlier pieces were in it (they are rolled back with it: its caller retries).
   * @returns whether it committed
   */
  private endBulkTxn(): boolean {
    const txn = this.bulkTxn;
    if (txn === null) return true;
    this.bulkTxn = null;
    try {
      const wrote = this.totalChanges() > txn.changedBefore;
      this.statements.commit.run();
      this.opts.turn?.release();
      if (this.wal.available && txn.taken.length > 0) this.wal.sync();
      this.wroteAfterFull(wrote);
    } catch (e) {
      const failed = txn.taken.map((t) => t.cmd);
      if (txn.partial !== null && this.lanes.bulk[0] === txn.partial) failed.push(...this.lanes.bulk.splice(0, 1));
      this.fail(e, failed);
      return false;
    }
    settle(txn.taken);
    return true;
  }

  private totalChanges(): number {
    return (this.statements.changes.get() as { n: number }).n;
  }

  /** A commit that changed rows after a full disk: the disk takes writes again. */
  private wroteAfterFull(wrote: boolean): void {
    if (!wrote || !this.full) return;
    this.full = false;
    this.opts.logger?.info("the database accepts writes again (disk space is back)");
  }

  /** Roll back after a failed batch and reject its commands (with STORAGE_FULL on a full disk). */
  private fail(e: unknown, failed: PendingCommand[]): void {
    // The fsync of a relaxed bulk commit fails with ENOSPC when the disk is full.
    const full = isSqliteFull(e) || (e as { code?: unknown } | null)?.code === "ENOSPC";
    this.opts.onRollback?.();
    try {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
    } catch (rollbackError) {
      this.opts.logger?.error("store rollback failed", { error: toCdktrError(rollbackError).message });
    }
    this.opts.turn?.release();
    const err = full ? this.opts.storageFull(e) : toCdktrError(e);
    if (full && !this.full) {
      this.full = true;
      this.opts.logger?.error("the database disk is full: writes are refused with STORAGE_FULL until space is freed", {
        error: errorMessage(e),
      });
    }
    if (!full) this.opts.logger?.error("store commit failed", { error: err.message, commands: failed.length });
    for (const cmd of failed) cmd.reject(err);
    this.scheduleFlush();
  }
}

/** Resolve or reject the commands of a committed transaction. */
function settle(taken: readonly Taken[]): void {
  for (const { cmd, result } of taken) {
    if (result.ok) cmd.resolve(result.value);
    else cmd.reject(result.error);
  }
}

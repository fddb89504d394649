import type Database from "better-sqlite3";
import { errorMessage, toCdktrError, type CdktrError, type Clock, type Logger } from "@cdktr/protocol";
import { shuttingDown } from "../../errors.js";
import { WalSync } from "./wal-sync.js";

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
 * A large bulk command runs in pieces ({@link commandInPieces}), one piece per flush, each
 * committed on its own.
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

  constructor(private readonly opts: GroupCommitOptions) {
    this.db = opts.db;
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
   * Queue a command that runs in pieces, one per flush, each committed with its flush: `step`
   * runs inside the transaction with the flush's `now`, does at least one unit of work and goes
   * on while `inTime()` is true, and returns {@link MORE_PIECES} until it is done. The command
   * keeps its place at the head of its lane between pieces, so the lane's order is kept and a
   * command of the other lane waits behind at most one piece. Resolves with the last step's
   * result once it committed. What earlier pieces wrote stays committed when a later piece throws
   * (only that piece is rolled back) or its transaction fails: a caller's retry starts over, so
   * the writes should be idempotent.
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
    const { begin, savepoint, release, rollbackTo, commit, changes } = this.statements;
    const now = this.opts.clock.now();
    const taken: { cmd: PendingCommand; result: { ok: true; value: unknown } | { ok: false; error: unknown } }[] = [];
    const count: Record<CommitLane, number> = { control: 0, bulk: 0 };
    const started = performance.now();
    let ok = 0;
    let changedBefore = 0;
    /** A command of {@link commandInPieces} that ran a piece and has more: it stays queued. */
    let unfinished = false;
    // One lane per transaction: a trigger's ack never waits for log lines to be written in its
    // commit. Control goes first, but when both wait the lanes alternate, so each waits at most
    // one flush of the other.
    const lane: CommitLane =
      this.lanes.control.length > 0 && (this.lastLane === "bulk" || this.lanes.bulk.length === 0) ? "control" : "bulk";
    this.lastLane = lane;
    // A bulk flush commits without an fsync; when it finishes a command, one fsync of the log
    // makes it (and every relaxed piece before it) durable before the command resolves.
    const relaxed = lane === "bulk" && this.wal.available;
    try {
      this.setSynchronousFull(!relaxed);
      begin.run();
      changedBefore = (changes.get() as { n: number }).n;
      const until = started + (lane === "bulk" ? BULK_SLICE_MS : CONTROL_SLICE_MS);
      const inTime = (): boolean => performance.now() < until;
      for (const cmd of this.lanes[lane]) {
        // The first command always runs, however long it takes.
        if (count[lane] > 0 && !inTime()) break;
        count[lane]++;
        savepoint.run();
        try {
          const value = cmd.fn(now, inTime);
          release.run();
          ok++;
          if (value === MORE_PIECES) {
            unfinished = true;
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
      const wrote = ok > 0 && (changes.get() as { n: number }).n > changedBefore;
      commit.run();
      if (relaxed && taken.length > 0) this.wal.sync();
      if (wrote && this.full) {
        this.full = false;
        this.opts.logger?.info("the database accepts writes again (disk space is back)");
      }
    } catch (e) {
      // The fsync of a relaxed bulk commit fails with ENOSPC when the disk is full.
      const full = isSqliteFull(e) || (e as { code?: unknown } | null)?.code === "ENOSPC";
      this.opts.onRollback?.();
      try {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
      } catch (rollbackError) {
        this.opts.logger?.error("store rollback failed", { error: toCdktrError(rollbackError).message });
      }
      const err = full ? this.opts.storageFull(e) : toCdktrError(e);
      if (full && !this.full) {
        this.full = true;
        this.opts.logger?.error(
          "the database disk is full: writes are refused with STORAGE_FULL until space is freed",
          {
            error: errorMessage(e),
          },
        );
      }
      // Every command that ran is rejected (what it wrote in this batch is gone; earlier pieces of a
      // command in pieces stay); the one that threw counts too.
      // A failure before any command ran (BEGIN) costs the first one, so the queue never loops.
      if (count.control + count.bulk === 0) count[this.lanes.control.length > 0 ? "control" : "bulk"] = 1;
      const failed = [...this.lanes.control.splice(0, count.control), ...this.lanes.bulk.splice(0, count.bulk)];
      if (!full) this.opts.logger?.error("store commit failed", { error: err.message, commands: failed.length });
      for (const cmd of failed) cmd.reject(err);
      this.scheduleFlush();
      return;
    }
    // A command with pieces left keeps its place at the head of its lane.
    if (unfinished) count[this.lastLane]--;
    this.lanes.control.splice(0, count.control);
    this.lanes.bulk.splice(0, count.bulk);
    this.scheduleFlush();
    for (const { cmd, result } of taken) {
      if (result.ok) cmd.resolve(result.value);
      else cmd.reject(result.error);
    }
  }
}

import type Database from "better-sqlite3";
import { errorMessage, toCdktrError, type CdktrError, type Clock, type Logger } from "@cdktr/protocol";
import { shuttingDown } from "../../errors.js";

/** Longest a group commit keeps executing commands before committing and yielding. */
const FLUSH_SLICE_MS = 25;

/**
 * The queue a command waits in. `control`: triggers, status reports, dispatch, keys (small and
 * latency-sensitive); `bulk`: log lines and retention (large). A flush commits commands of one
 * lane: control first, alternating with bulk while both wait (so bulk always moves).
 */
export type CommitLane = "control" | "bulk";

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
 * time-sliced: commands left over after 25 ms go to the next flush (next event-loop turn), so
 * pings and acks are never starved by a burst. Each transaction takes one {@link CommitLane}:
 * control when it has commands, except that when both lanes wait they alternate; commands run in
 * call order within their lane, and a control command waits behind at most one flush of bulk ones
 * (never inside a commit that writes log lines).
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
    "begin" | "savepoint" | "release" | "rollbackTo" | "commit" | "changes",
    Database.Statement
  >;

  constructor(private readonly opts: GroupCommitOptions) {
    this.db = opts.db;
    this.statements = {
      begin: this.db.prepare("BEGIN IMMEDIATE"),
      savepoint: this.db.prepare("SAVEPOINT cmd"),
      release: this.db.prepare("RELEASE cmd"),
      rollbackTo: this.db.prepare("ROLLBACK TO cmd"),
      commit: this.db.prepare("COMMIT"),
      changes: this.db.prepare("SELECT total_changes() AS n"),
    };
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
    try {
      begin.run();
      changedBefore = (changes.get() as { n: number }).n;
      // One lane per transaction: a trigger's ack never waits for log lines to be written in its
      // commit. Control goes first, but when both wait the lanes alternate, so each waits at most
      // one flush of the other.
      const lane: CommitLane =
        this.lanes.control.length > 0 && (this.lastLane === "bulk" || this.lanes.bulk.length === 0)
          ? "control"
          : "bulk";
      this.lastLane = lane;
      for (const cmd of this.lanes[lane]) {
        // The first command always runs, however long it takes.
        if (count[lane] > 0 && performance.now() - started > FLUSH_SLICE_MS) break;
        count[lane]++;
        savepoint.run();
        try {
          const value = cmd.fn(now);
          release.run();
          taken.push({ cmd, result: { ok: true, value } });
          ok++;
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
      if (wrote && this.full) {
        this.full = false;
        this.opts.logger?.info("the database accepts writes again (disk space is back)");
      }
    } catch (e) {
      this.opts.onRollback?.();
      try {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
      } catch (rollbackError) {
        this.opts.logger?.error("store rollback failed", { error: toCdktrError(rollbackError).message });
      }
      const err = isSqliteFull(e) ? this.opts.storageFull(e) : toCdktrError(e);
      if (isSqliteFull(e) && !this.full) {
        this.full = true;
        this.opts.logger?.error(
          "the database disk is full: writes are refused with STORAGE_FULL until space is freed",
          {
            error: errorMessage(e),
          },
        );
      }
      // Every command that ran is rejected (its writes are gone); the one that threw counts too.
      // A failure before any command ran (BEGIN) costs the first one, so the queue never loops.
      if (count.control + count.bulk === 0) count[this.lanes.control.length > 0 ? "control" : "bulk"] = 1;
      const failed = [...this.lanes.control.splice(0, count.control), ...this.lanes.bulk.splice(0, count.bulk)];
      if (!isSqliteFull(e))
        this.opts.logger?.error("store commit failed", { error: err.message, commands: failed.length });
      for (const cmd of failed) cmd.reject(err);
      this.scheduleFlush();
      return;
    }
    this.lanes.control.splice(0, count.control);
    this.lanes.bulk.splice(0, count.bulk);
    this.scheduleFlush();
    for (const { cmd, result } of taken) {
      if (result.ok) cmd.resolve(result.value);
      else cmd.reject(result.error);
    }
  }
}

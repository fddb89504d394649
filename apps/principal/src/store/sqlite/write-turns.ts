/**
 * Turns at the log database's write lock between the principal's main thread (retention, or
 * `insertLogs` without the thread) and its log-ingest thread, which write that file through their
 * own connections. SQLite lets one writer in at a time and makes the others retry on a timer
 * (1, 2, 5, 10 ms... slept on the caller's thread): the main thread's event loop could stall
 * behind a log flood for many of those sleeps. Instead the main thread announces that it wants
 * the lock and the log thread gives it up at its next piece (about 2 ms of inserts), and takes it
 * again only once the main thread is done. The main thread never waits for more than the log
 * thread's current piece; the log thread waits as long as the main thread writes.
 *
 * Two flags in shared memory, a Dekker-style handshake on sequentially consistent atomics: each
 * side raises its own flag and then looks at the other's, so both can never go in at once.
 */

/** Index of the main thread's flag (1: it wants or holds the lock). */
const MAIN = 0;
/** Index of the log thread's flag (1: it holds the lock or is about to). */
const LOGS = 1;
/** How long one `Atomics.wait` lasts before the flags are read again. */
const WAIT_SLICE_MS = 50;
/**
 * Longest the main thread waits for the log thread: past it, the log thread is taken to be
 * stuck (or dead) and SQLite's own lock decides (its busy timeout).
 */
const MAIN_WAIT_MAX_MS = 5000;

/** One side's view of the turns: what the group commit calls around each write transaction. */
export interface WriteTurn {
  /** Block until this side may begin a write transaction. */
  acquire(): void;
  /** The transaction ended (committed or rolled back). Idempotent. */
  release(): void;
  /** Whether the other side waits for the lock (end an open transaction early). */
  othersWaiting(): boolean;
}

/** The shared flags, created by the main thread and handed to the log thread (`workerData`). */
export function newWriteTurnsBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT);
}

/** The main thread's side: announces, then waits at most for the log thread's current piece. */
export function mainWriteTurn(buffer: SharedArrayBuffer): WriteTurn {
  const flags = new Int32Array(buffer);
  return {
    acquire() {
      Atomics.store(flags, MAIN, 1);
      const deadline = Date.now() + MAIN_WAIT_MAX_MS;
      while (Atomics.load(flags, LOGS) === 1 && Date.now() < deadline) Atomics.wait(flags, LOGS, 1, WAIT_SLICE_MS);
    },
    release() {
      if (Atomics.load(flags, MAIN) === 0) return;
      Atomics.store(flags, MAIN, 0);
      Atomics.notify(flags, MAIN);
    },
    othersWaiting: () => false,
  };
}

/** The log thread's side: goes in only while the main thread neither wants nor holds the lock. */
export function logsWriteTurn(buffer: SharedArrayBuffer): WriteTurn {
  const flags = new Int32Array(buffer);
  return {
    acquire() {
      for (;;) {
        while (Atomics.load(flags, MAIN) === 1) Atomics.wait(flags, MAIN, 1, WAIT_SLICE_MS);
        Atomics.store(flags, LOGS, 1);
        if (Atomics.load(flags, MAIN) === 0) return;
        // The main thread announced itself meanwhile: it goes first.
        Atomics.store(flags, LOGS, 0);
        Atomics.notify(flags, LOGS);
      }
    },
    release() {
      if (Atomics.load(flags, LOGS) === 0) return;
      Atomics.store(flags, LOGS, 0);
      Atomics.notify(flags, LOGS);
    },
    othersWaiting: () => Atomics.load(flags, MAIN) === 1,
  };
}

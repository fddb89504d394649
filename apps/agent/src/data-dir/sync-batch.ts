/**
 * Group commit of the agent's records on disk: files and directories written during one turn of
 * the event loop are fsynced once each at the end of it (the principal's group commit, applied
 * to the outbox journal, the log spool and the process-group records).
 */
import { closeSync, constants, fsyncSync, openSync } from "node:fs";
import { errorMessage, type Logger } from "@cdktr/protocol";

/** The two system calls a {@link SyncBatch} makes; injectable to count them in tests. */
export interface SyncOps {
  /** Flush a file's data and metadata to the disk. */
  syncFile(path: string): void;
  /** Flush a directory's entries (names created, renamed or removed in it) to the disk. */
  syncDir(path: string): void;
}

function fsyncPath(path: string, flags: number): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The real system calls: `open` + `fsync` + `close`. fsync through a new descriptor flushes the
 * file's dirty pages whichever descriptor wrote them, so writers may close theirs meanwhile.
 */
export const realSyncOps: SyncOps = {
  syncFile: (path) => fsyncPath(path, constants.O_RDONLY),
  syncDir: (path) => fsyncPath(path, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0)),
};

/** No system call at all (`CDKTR_AGENT_FSYNC=off`: a power cut may lose what the page cache held). */
export const noSyncOps: SyncOps = {
  syncFile: () => undefined,
  syncDir: () => undefined,
};

/** Options of {@link SyncBatch}. */
export interface SyncBatchOptions {
  /** @default realSyncOps */
  ops?: SyncOps;
  logger: Logger;
}

/** How many system calls a {@link SyncBatch} made (and how many failed). */
export interface SyncCounts {
  files: number;
  dirs: number;
  batches: number;
  failures: number;
}

/**
 * Collects the files and directories written in this turn of the event loop and fsyncs each
 * once in the next `setImmediate` (files first, then directories, so a new name never reaches the
 * disk before its content). {@link now} does it synchronously (before a rename, at shutdown).
 * A file removed in the meantime is skipped. Failures are logged and counted, never thrown: the
 * data is still in the page cache, only its durability against a power cut is in question.
 */
export class SyncBatch {
  readonly #ops: SyncOps;
  readonly #logger: Logger;
  readonly #files = new Set<string>();
  readonly #dirs = new Set<string>();
  #scheduled: NodeJS.Immediate | null = null;
  #waiters: (() => void)[] = [];
  readonly #counts: SyncCounts = { files: 0, dirs: 0, batches: 0, failures: 0 };

  constructor(options: SyncBatchOptions) {
    this.#ops = options.ops ?? realSyncOps;
    this.#logger = options.logger;
  }

  /** System calls made so far. */
  get counts(): Readonly<SyncCounts> {
    return { ...this.#counts };
  }

  /** Something is waiting for the end of the turn. */
  get pending(): boolean {
    return this.#files.size + this.#dirs.size > 0;
  }

  /** `path` was written: fsync it at the end of this turn. */
  file(path: string): void {
    this.#files.add(path);
    this.#schedule();
  }

  /** A name in directory `path` was created, renamed or removed: fsync it at the end of this turn. */
  dir(path: string): void {
    this.#dirs.add(path);
    this.#schedule();
  }

  /** Resolves once everything marked so far reached the disk (or failed, logged). */
  synced(): Promise<void> {
    if (!this.pending) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Sync everything marked so far, now. */
  now(): void {
    if (this.#scheduled !== null) {
      clearImmediate(this.#scheduled);
      this.#scheduled = null;
    }
    if (!this.pending) return;
    this.#counts.batches++;
    const files = [...this.#files];
    const dirs = [...this.#dirs];
    this.#files.clear();
    this.#dirs.clear();
    for (const f of files) this.#call("file", f, () => this.#ops.syncFile(f));
    for (const d of dirs) this.#call("dir", d, () => this.#ops.syncDir(d));
    for (const w of this.#waiters.splice(0)) w();
  }

  #call(kind: "file" | "dir", path: string, fn: () => void): void {
    try {
      fn();
      if (kind === "file") this.#counts.files++;
      else this.#counts.dirs++;
    } catch (e: unknown) {
      if ((e as { code?: unknown }).code === "ENOENT") return; // removed since: nothing to keep
      this.#counts.failures++;
      this.#logger.error("cannot fsync an agent record; a power cut may lose it", { path, error: errorMessage(e) });
    }
  }

  #schedule(): void {
    if (this.#scheduled !== null) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = null;
      this.now();
    });
  }
}

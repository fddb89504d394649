/**
 * Group commit of the agent's records on disk: files and directories written during one turn of
 * the event loop are fsynced once each at the end of it (the principal's group commit, applied
 * to the outbox journal, the log spool and the process-group records).
 */
import { closeSync, constants, fsyncSync, openSync } from "node:fs";
import { open } from "node:fs/promises";
import { errorMessage, type Logger } from "@cdktr/protocol";

/** The two system calls a {@link SyncBatch} makes; injectable to count them in tests. */
export interface SyncOps {
  /** Flush a file's data and metadata to the disk (blocking: {@link SyncBatch.now}). */
  syncFile(path: string): void;
  /** Flush a directory's entries (names created, renamed or removed in it) to the disk (blocking). */
  syncDir(path: string): void;
  /**
   * The same off the event loop (libuv's thread pool), for the end-of-turn batches.
   * @default the blocking one
   */
  syncFileAsync?(path: string): Promise<void>;
  /** {@link syncDir} off the event loop. @default the blocking one */
  syncDirAsync?(path: string): Promise<void>;
}

async function fsyncPathAsync(path: string, flags: number): Promise<void> {
  const fh = await open(path, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
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
  syncFileAsync: (path) => fsyncPathAsync(path, constants.O_RDONLY),
  syncDirAsync: (path) => fsyncPathAsync(path, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0)),
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
 * Group commit: collects the files and directories written in this turn of the event loop and,
 * in the next `setImmediate`, fsyncs each once off the event loop (files first, then
 * directories, so a new name never reaches the disk before its content). One batch at a time:
 * what is marked while one runs goes into the next, so a busy agent makes one fsync per file per
 * batch however many lines or updates it wrote meanwhile. {@link now} syncs what is marked,
 * blocking (before a rename, at shutdown). A file removed in the meantime is skipped. Failures
 * are logged and counted, never thrown: the data is still in the page cache, only its
 * durability against a power cut is in question.
 */
export class SyncBatch {
  readonly #ops: SyncOps;
  readonly #logger: Logger;
  #files = new Set<string>();
  #dirs = new Set<string>();
  #scheduled: NodeJS.Immediate | null = null;
  /** The batch being synced (off the event loop), if any. */
  #running: Promise<void> | null = null;
  /** Waiters of what is marked and not yet in a batch. */
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

  /** Something is marked and not synced yet. */
  get pending(): boolean {
    return this.#files.size + this.#dirs.size > 0 || this.#running !== null;
  }

  /** `path` was written: fsync it in the next batch. */
  file(path: string): void {
    this.#files.add(path);
    this.#schedule();
  }

  /** A name in directory `path` was created, renamed or removed: fsync it in the next batch. */
  dir(path: string): void {
    this.#dirs.add(path);
    this.#schedule();
  }

  /** Resolves once everything marked so far reached the disk (or failed, logged). */
  async synced(): Promise<void> {
    const running = this.#running;
    if (this.#files.size + this.#dirs.size > 0) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    else if (running !== null) await running;
  }

  /** Sync everything marked and not yet in a batch, now, blocking. */
  now(): void {
    if (this.#scheduled !== null) {
      clearImmediate(this.#scheduled);
      this.#scheduled = null;
    }
    const { files, dirs, waiters } = this.#take();
    if (files.length + dirs.length === 0) return;
    for (const f of files) this.#call("file", f, () => this.#ops.syncFile(f));
    for (const d of dirs) this.#call("dir", d, () => this.#ops.syncDir(d));
    for (const w of waiters) w();
  }

  #take(): { files: string[]; dirs: string[]; waiters: (() => void)[] } {
    const out = { files: [...this.#files], dirs: [...this.#dirs], waiters: this.#waiters };
    this.#files = new Set();
    this.#dirs = new Set();
    this.#waiters = [];
    if (out.files.length + out.dirs.length > 0) this.#counts.batches++;
    return out;
  }

  async #runBatch(): Promise<void> {
    const { files, dirs, waiters } = this.#take();
    const fileSync = this.#ops.syncFileAsync ?? ((p: string) => Promise.resolve(this.#ops.syncFile(p)));
    const dirSync = this.#ops.syncDirAsync ?? ((p: string) => Promise.resolve(this.#ops.syncDir(p)));
    await Promise.all(files.map((f) => this.#callAsync("file", f, () => fileSync(f))));
    await Promise.all(dirs.map((d) => this.#callAsync("dir", d, () => dirSync(d))));
    for (const w of waiters) w();
  }

  #call(kind: "file" | "dir", path: string, fn: () => void): void {
    try {
      fn();
      this.#counted(kind);
    } catch (e: unknown) {
      this.#failed(path, e);
    }
  }

  async #callAsync(kind: "file" | "dir", path: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
      this.#counted(kind);
    } catch (e: unknown) {
      this.#failed(path, e);
    }
  }

  #counted(kind: "file" | "dir"): void {
    if (kind === "file") this.#counts.files++;
    else this.#counts.dirs++;
  }

  #failed(path: string, e: unknown): void {
    if ((e as { code?: unknown }).code === "ENOENT") return; // removed since: nothing to keep
    this.#counts.failures++;
    this.#logger.error("cannot fsync an agent record; a power cut may lose it", { path, error: errorMessage(e) });
  }

  #schedule(): void {
    if (this.#scheduled !== null || this.#running !== null) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = null;
      if (this.#files.size + this.#dirs.size === 0) return;
      this.#running = this.#runBatch().finally(() => {
        this.#running = null;
        // What was marked meanwhile is the next batch.
        if (this.#files.size + this.#dirs.size > 0) this.#schedule();
      });
    });
  }
}

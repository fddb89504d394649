/**
 * The status outbox's file: `outbox.json` in the data directory, an append-only journal of the
 * pending updates, fsynced in batches, compacted when it grows, removed when nothing is pending.
 */
import {
  closeSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { errorMessage, type Logger } from "@cdktr/protocol";
import type { SyncBatch } from "../data-dir/sync-batch.js";
import { writeProblem } from "../data-dir/write-problem.js";
import type { StatusUpdate } from "./status-update.js";

/** Journal lines: `{"a":id,"u":update}` queues an update, `{"d":id}` marks it delivered. */
export type JournalEntry = { a: number; u: StatusUpdate } | { d: number };

/** Options of {@link OutboxJournal}. */
export interface OutboxJournalOptions {
  /** Directory of `outbox.json`. */
  dataDir: string;
  logger: Logger;
  /** Where the journal is fsynced (batched with the agent's other records). */
  sync: SyncBatch;
  /** The pending updates whose `a` line belongs in the journal, in queue order (what a compaction keeps). */
  pending: () => Iterable<{ id: number; update: StatusUpdate }>;
  /** Wait before writing the journal again after a failed write. @default 1000 */
  rewriteMs?: number;
  /**
   * Free space (bytes, from `statfs`) at which a journal that could not be written counts as
   * writable again when it has nothing left to write. @default 65536
   */
  probeFreeBytes?: number;
  /** Called each time the journal can be written again after a {@link OutboxJournal.problem}. */
  onWritable?: () => void;
}

/**
 * Journal lines are written in order; a write that fails (disk full) is cut back (no torn line
 * is left) and tried again, in order, every `rewriteMs` until it works; meanwhile {@link problem}
 * says so and {@link writable} is false. The problem outlives the lines it was about: when
 * nothing is left to write (every update delivered), it clears once `statfs` shows
 * `probeFreeBytes` free (checked every `rewriteMs`), or at the next write that works, so the
 * agent's push back does not flap on a disk that is still full.
 */
export class OutboxJournal {
  readonly #o: OutboxJournalOptions;
  /** The journal's path. */
  readonly file: string;
  #fd: number | null = null;
  #lines = 0;
  /** Bytes of the journal file written by this process so far (a failed write is cut back to it). */
  #bytes = 0;
  /** Journal lines not written yet (a write failed): written first, in order. */
  #unwritten: string[] = [];
  #rewriteTimer: NodeJS.Timeout | null = null;
  #problem: string | null = null;
  #stopped = false;
  #writableWaiters: (() => void)[] = [];
  #loadedAll = true;

  constructor(options: OutboxJournalOptions) {
    this.#o = options;
    this.file = join(options.dataDir, "outbox.json");
  }

  /** Why journal lines are not all on disk (disk full...), or null. */
  get problem(): string | null {
    return this.#problem;
  }

  /** Whether the journal can be written (as far as the last write, or the free space, said). */
  get writable(): boolean {
    return this.#problem === null;
  }

  /** Resolves once the journal is {@link writable} (at once when it is), or once it stopped. */
  whenWritable(): Promise<void> {
    if (this.#problem === null || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => this.#writableWaiters.push(resolve));
  }

  /** Lines in the journal (written or waiting to be), since it was last compacted or created. */
  get lines(): number {
    return this.#lines;
  }

  /** Journal lines that could not be written yet. */
  get unwritten(): number {
    return this.#unwritten.length;
  }

  /**
   * Whether the last {@link load} saw everything a previous process left (the journal was read,
   * or there was none): false when it exists but could not be read.
   */
  get loadedAll(): boolean {
    return this.#loadedAll;
  }

  /** Pending updates found in the journal (or the single JSON array of older versions). */
  load(): StatusUpdate[] {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (e: unknown) {
      this.#loadedAll = (e as NodeJS.ErrnoException).code === "ENOENT";
      return []; // no file, or unreadable: nothing to resend
    }
    this.#loadedAll = true;
    try {
      const all = JSON.parse(text) as unknown;
      if (Array.isArray(all)) return all as StatusUpdate[];
    } catch {
      /* a journal */
    }
    const left = new Map<number, StatusUpdate>();
    // Ids grow in a journal; a line rewritten after a failed write may come after later ones.
    const order: number[] = [];
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      let entry: JournalEntry;
      try {
        entry = JSON.parse(line) as JournalEntry;
      } catch {
        continue; // a line cut short by a crash mid-write
      }
      if ("a" in entry) {
        left.set(entry.a, entry.u);
        order.push(entry.a);
      } else if ("d" in entry) left.delete(entry.d);
    }
    return order
      .sort((a, b) => a - b)
      .filter((id) => left.has(id))
      .map((id) => left.get(id) as StatusUpdate);
  }

  /** Append one line (after any not written yet). */
  append(entry: JournalEntry): void {
    this.#unwritten.push(`${JSON.stringify(entry)}\n`);
    this.#lines++;
    this.#write();
  }

  /** Write the journal lines not written yet, in order; on failure cut the file back and retry later. */
  #write(): void {
    if (this.#unwritten.length === 0) return;
    try {
      if (this.#fd === null) {
        this.#fd = openSync(this.file, "a");
        this.#bytes = fstatSync(this.#fd).size;
        this.#o.sync.dir(this.#o.dataDir);
      }
      while (this.#unwritten.length > 0) {
        const buf = Buffer.from(this.#unwritten[0] as string);
        const bytes = buf.length;
        try {
          // A short write (the disk filled up mid-line) is followed by one that fails.
          for (let off = 0; off < bytes; ) off += writeSync(this.#fd, buf, off, bytes - off);
        } catch (e: unknown) {
          // A short write must not glue the next line to a torn one.
          try {
            ftruncateSync(this.#fd, this.#bytes);
          } catch {
            this.#unwritten[0] = `\n${buf.toString()}`;
          }
          throw e;
        }
        this.#bytes += bytes;
        this.#unwritten.shift();
      }
      this.#o.sync.file(this.file);
      this.#written();
    } catch (e: unknown) {
      const problem = writeProblem(
        "status outbox",
        this.file,
        e,
        "status updates wait in memory only (lost if the agent stops); task output is paused and no new work is taken until it can be written",
      );
      if (problem !== this.#problem) {
        this.#o.logger.error("cannot persist pending status updates; retrying", { error: errorMessage(e) });
      }
      this.#problem = problem;
      this.#retryLater();
    }
  }

  /** Try again in `rewriteMs`: the lines not written, or else whether the disk has room again. */
  #retryLater(): void {
    if (this.#rewriteTimer !== null || this.#stopped) return;
    this.#rewriteTimer = setTimeout(() => {
      this.#rewriteTimer = null;
      if (this.#unwritten.length > 0) this.#write();
      else this.#probe();
    }, this.#o.rewriteMs ?? 1000);
    this.#rewriteTimer.unref();
  }

  /** With a problem and nothing to write: clear it once the file system has room, else look again later. */
  #probe(): void {
    if (this.#problem === null) return;
    try {
      const st = statfsSync(this.#o.dataDir);
      if (st.bavail * st.bsize >= (this.#o.probeFreeBytes ?? 64 * 1024)) {
        this.#written();
        return;
      }
    } catch {
      /* still unusable */
    }
    this.#retryLater();
  }

  /** Rewrite the journal with only the pending updates (fsynced before the rename). */
  compact(): void {
    const tmp = `${this.file}.tmp`;
    try {
      const pending = [...this.#o.pending()];
      writeFileSync(tmp, pending.map((i) => `${JSON.stringify({ a: i.id, u: i.update })}\n`).join(""));
      this.#o.sync.file(tmp);
      this.#o.sync.now();
      this.#close();
      renameSync(tmp, this.file);
      this.#o.sync.dir(this.#o.dataDir);
      this.#lines = pending.length;
      // Lines not written yet are in the new file already (it holds every pending update).
      this.#unwritten = [];
      this.#written();
    } catch (e: unknown) {
      rmSync(tmp, { force: true });
      this.#o.logger.warn("cannot compact the status outbox journal; appending to it as before", {
        error: errorMessage(e),
      });
    }
  }

  /**
   * Nothing is pending: close and delete the journal (lines not written yet are not needed any
   * more). A {@link problem} stays until the disk has room again.
   */
  remove(): void {
    this.#close();
    this.#unwritten = [];
    if (this.#problem !== null) this.#retryLater();
    try {
      rmSync(this.file, { force: true });
      this.#o.sync.dir(this.#o.dataDir);
    } catch (e: unknown) {
      this.#o.logger.warn("cannot remove the status outbox journal", { error: errorMessage(e) });
    }
  }

  /** Stop retrying, try to write what is left once more (logged at error when it cannot), close. */
  stop(): void {
    this.#stopped = true;
    if (this.#rewriteTimer !== null) clearTimeout(this.#rewriteTimer);
    this.#rewriteTimer = null;
    this.#write();
    if (this.#unwritten.length > 0) {
      this.#o.logger.error("status updates could not be saved in the outbox and are lost with this process", {
        journalLines: this.#unwritten.length,
        problem: this.#problem,
      });
    }
    this.#close();
    for (const w of this.#writableWaiters.splice(0)) w();
  }

  #written(): void {
    if (this.#problem === null) return;
    this.#o.logger.info("the status outbox can be written again");
    this.#problem = null;
    for (const w of this.#writableWaiters.splice(0)) w();
    this.#o.onWritable?.();
  }

  #close(): void {
    if (this.#fd !== null) {
      try {
        closeSync(this.#fd);
      } catch {
        /* already closed */
      }
    }
    this.#fd = null;
    this.#lines = 0;
  }
}

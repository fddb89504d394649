/**
 * The on-disk half of log shipping: `<dataDir>/spool/<seq>.jsonl` files holding log lines the
 * principal has not acknowledged yet (spilled during an outage, or left at shutdown), read back
 * oldest first. One JSON record per line, `{"o":<ordinal>,"l":<LogLine>,"t":<run token>}` (the
 * run's assignment token, which the principal checks when the line is finally delivered; older
 * files have no `t`); file names are zero-padded sequence numbers so that name order is delivery
 * order.
 */
import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  statfsSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { errorMessage, type LogLine, type Logger } from "@cdktr/protocol";
import { SyncBatch } from "../data-dir/sync-batch.js";
import { writeProblem } from "../data-dir/write-problem.js";

/** One log line on its way to the principal. */
export interface SpoolEntry {
  /** Ordinal in this process (1, 2, ...); 0 for lines read from a previous process's spool. */
  ord: number;
  /** Approximate encoded size (see {@link entryBytes}). */
  bytes: number;
  line: LogLine;
  /** The assignment token of the line's run (sent with the batch); absent in older spool files. */
  token?: string | undefined;
}

/** One spool file, as the spool tracks it. */
export interface SpoolFile {
  name: string;
  bytes: number;
  /** Written by this process (its ordinals are meaningful). */
  ours: boolean;
  /** Being read back (or sent): never appended to again; later spills start a new file. */
  draining: boolean;
}

/** Lines of one spool file taken for one send. */
export interface SpoolBatch {
  entries: SpoolEntry[];
  file: SpoolFile;
  /** Lines left in that file after this batch (they follow in later batches). */
  rest: SpoolEntry[];
}

/** Options of {@link LogSpool}. */
export interface LogSpoolOptions {
  /** Directory of the spool files (created by {@link LogSpool.open}). */
  dir: string;
  /** Cap of the spool files' total size. */
  maxBytes: number;
  /** Largest spool file (a write at the front may exceed it). */
  fileBytes: number;
  logger: Logger;
  /** Where written files and the directory are fsynced (batched). @default a real `SyncBatch` of its own */
  sync?: SyncBatch;
  /**
   * Free space (bytes, from `statfs`) at which a spool that could not be written counts as
   * writable again when nothing was written since. @default 65536
   */
  probeFreeBytes?: number;
}

/** Largest single append: after a failure, every chunk before it is held on disk. */
const CHUNK_BYTES = 64 * 1024;

/** Overhead of the record's other fields, in bytes, added to each line's length. */
const LINE_OVERHEAD = 200;
const NAME_DIGITS = 16;
const FIRST_SEQ = 1_000_000_000_000;

/** The size a line counts for, in memory and against the spool cap. */
export function entryBytes(line: LogLine): number {
  return Buffer.byteLength(line.line, "utf8") + LINE_OVERHEAD;
}

/**
 * Spool files of one data directory, oldest first. Files found at {@link open} (left by a
 * previous agent process) come before anything this process writes; {@link write} at the
 * `"front"` puts lines before every file (lines that were in flight at shutdown), at the `"back"`
 * after them.
 */
export class LogSpool {
  readonly #o: LogSpoolOptions;
  readonly #files: SpoolFile[] = [];
  /** Lines of the file being drained (the oldest), not yet in a batch. */
  #reading: { file: SpoolFile; entries: SpoolEntry[] } | null = null;
  #bytes = 0;
  #nextSeq = FIRST_SEQ;
  readonly #sync: SyncBatch;
  /** The directory exists (created, or found, by this process). */
  #dirReady = false;
  /** Why the last write failed (cleared by a write that works, or {@link recheck}). */
  #problem: string | null = null;

  constructor(options: LogSpoolOptions) {
    this.#o = options;
    this.#sync = options.sync ?? new SyncBatch({ logger: options.logger });
  }

  /**
   * Why the spool cannot take lines now (the last write failed: disk full, directory not
   * creatable...), or null. Lines it did not take stay with the caller.
   */
  get problem(): string | null {
    return this.#problem;
  }

  /**
   * With a {@link problem} and nothing written since: clear it when the disk has room again
   * (`statfs` says at least `probeFreeBytes` are free), so a problem does not outlive its cause
   * when the spool is not needed (the principal is back). The next write decides for good.
   */
  recheck(): void {
    if (this.#problem === null || !this.#ensureDir()) return;
    try {
      const st = statfsSync(this.#o.dir);
      if (st.bavail * st.bsize >= (this.#o.probeFreeBytes ?? CHUNK_BYTES)) this.#ok();
    } catch {
      /* still unusable */
    }
  }

  /** Bytes of spool files on disk. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes that may still be written before the cap. */
  get room(): number {
    return this.#o.maxBytes - this.#bytes;
  }

  /** No file is left (everything read back was acknowledged). */
  get empty(): boolean {
    return this.#files.length === 0 && this.#reading === null;
  }

  /** Some file left by a previous agent process is not acknowledged yet. */
  get hasPrevious(): boolean {
    return this.#files.some((f) => !f.ours);
  }

  /**
   * Create the directory and pick up the files of a previous process (empty ones are removed).
   * Never throws: a directory that cannot be created or read is a {@link problem} (writes try
   * again).
   */
  open(): void {
    if (!this.#ensureDir()) return;
    let names: string[];
    try {
      names = readdirSync(this.#o.dir)
        .filter((n) => /^\d+\.jsonl$/.test(n))
        .sort();
    } catch (e: unknown) {
      this.#failed(this.#o.dir, e);
      return;
    }
    for (const name of names) {
      let bytes: number;
      try {
        bytes = statSync(join(this.#o.dir, name)).size;
      } catch {
        continue;
      }
      if (bytes === 0) {
        this.#remove(name);
        continue;
      }
      this.#files.push({ name, bytes, ours: false, draining: false });
      this.#bytes += bytes;
    }
    const last = names.at(-1);
    if (last !== undefined) this.#nextSeq = Math.max(FIRST_SEQ, Number.parseInt(last, 10) + 1);
    if (this.#files.length > 0) {
      this.#o.logger.info("resending log lines spooled by a previous agent process", {
        files: this.#files.length,
        bytes: this.#bytes,
      });
    }
  }

  /**
   * The next lines of the oldest file (at most `maxLines`, about `maxBytes`), or null when the
   * spool is empty. Files that turn out empty or unreadable are removed on the way.
   */
  nextBatch(maxLines: number, maxBytes: number): SpoolBatch | null {
    for (;;) {
      if (this.empty) return null;
      const batch = this.#batchOnce(maxLines, maxBytes);
      if (batch !== null) return batch;
    }
  }

  /** The principal acknowledged `batch`: remove its file once nothing of it is left to send. */
  acked(batch: SpoolBatch): void {
    if (batch.rest.length === 0 && this.#reading?.file !== batch.file) this.#drop(batch.file);
  }

  /** Put `entries` of an unsent batch back in front of the rest of its file. */
  putBack(batch: SpoolBatch, entries: SpoolEntry[]): void {
    batch.rest.unshift(...entries);
    if (this.#reading === null) this.#reading = { file: batch.file, entries: batch.rest };
  }

  /**
   * Append `entries` (in order) at the `"back"` of the spool, or before every file at the
   * `"front"`. Never throws: returns how many of them (a prefix) are held on disk; a write that
   * fails (disk full, file not creatable) stops there, leaves the files as they were before it
   * and sets {@link problem}. Written files and new names are fsynced at the end of the turn.
   */
  write(entries: readonly SpoolEntry[], where: "front" | "back"): number {
    let i = 0;
    if (entries.length === 0) return 0;
    if (!this.#ensureDir()) return 0;
    while (i < entries.length) {
      let file: SpoolFile;
      let created = false;
      const last = this.#files.at(-1);
      if (where === "back" && last !== undefined && last.ours && last.bytes < this.#o.fileBytes && !last.draining) {
        file = last;
      } else {
        const seq =
          where === "front"
            ? Math.min(this.#nextSeq, ...this.#files.map((f) => Number.parseInt(f.name, 10))) - 1
            : this.#nextSeq++;
        file = { name: `${String(seq).padStart(NAME_DIGITS, "0")}.jsonl`, bytes: 0, ours: true, draining: false };
        try {
          writeFileSync(join(this.#o.dir, file.name), "", { flag: "wx" });
        } catch (e: unknown) {
          this.#failed(join(this.#o.dir, file.name), e);
          return i;
        }
        created = true;
        if (where === "front") this.#files.unshift(file);
        else this.#files.push(file);
        this.#sync.dir(this.#o.dir);
      }
      // Fill this file (a front file takes everything), one bounded append at a time.
      while (i < entries.length && (where === "front" || created || file.bytes < this.#o.fileBytes)) {
        const chunk: string[] = [];
        let bytes = 0;
        let j = i;
        while (j < entries.length && (chunk.length === 0 || bytes < CHUNK_BYTES)) {
          if (where === "back" && chunk.length > 0 && file.bytes + bytes >= this.#o.fileBytes) break;
          const e = entries[j++] as SpoolEntry;
          const text = `${JSON.stringify({ o: e.ord, l: e.line, ...(e.token === undefined ? {} : { t: e.token }) })}\n`;
          chunk.push(text);
          bytes += Buffer.byteLength(text);
        }
        const path = join(this.#o.dir, file.name);
        try {
          appendFileSync(path, chunk.join(""));
        } catch (e: unknown) {
          this.#undo(file, path);
          this.#failed(path, e);
          return i;
        }
        file.bytes += bytes;
        this.#bytes += bytes;
        i = j;
        created = false;
        this.#sync.file(path);
        if (where === "back" && file.bytes >= this.#o.fileBytes) break;
      }
    }
    this.#ok();
    return i;
  }

  /** Resolves once what was written so far is fsynced. */
  synced(): Promise<void> {
    return this.#sync.synced();
  }

  /** Sync what was written in this turn now (at shutdown). */
  syncNow(): void {
    this.#sync.now();
  }

  /** A failed append may have left part of its chunk: cut the file back to what is counted. */
  #undo(file: SpoolFile, path: string): void {
    try {
      if (file.bytes === 0) {
        this.#files.splice(this.#files.indexOf(file), 1);
        rmSync(path, { force: true });
        this.#sync.dir(this.#o.dir);
      } else {
        truncateSync(path, file.bytes);
      }
    } catch (e: unknown) {
      // Never append after a torn line: later lines start a new file (the reader skips the torn one).
      file.draining = true;
      this.#o.logger.warn("cannot cut a log spool file back after a failed write", {
        file: file.name,
        error: errorMessage(e),
      });
    }
  }

  #ensureDir(): boolean {
    if (this.#dirReady) return true;
    try {
      mkdirSync(this.#o.dir, { recursive: true });
      this.#dirReady = true;
      this.#sync.dir(join(this.#o.dir, ".."));
      return true;
    } catch (e: unknown) {
      this.#failed(this.#o.dir, e);
      return false;
    }
  }

  #failed(path: string, e: unknown): void {
    const problem = writeProblem(
      "log spool",
      path,
      e,
      "log lines wait in memory and task output pauses at the memory cap until they can be sent or spooled",
    );
    if (problem !== this.#problem) this.#o.logger.error("cannot write the log spool", { path, error: errorMessage(e) });
    this.#problem = problem;
  }

  #ok(): void {
    if (this.#problem !== null) this.#o.logger.info("the log spool can be written again", { dir: this.#o.dir });
    this.#problem = null;
  }

  #remove(name: string): void {
    try {
      rmSync(join(this.#o.dir, name), { force: true });
      this.#sync.dir(this.#o.dir);
    } catch (e: unknown) {
      this.#o.logger.warn("cannot remove a log spool file", { file: name, error: errorMessage(e) });
    }
  }

  #batchOnce(maxLines: number, maxBytes: number): SpoolBatch | null {
    if (this.#reading === null) {
      const file = this.#files[0];
      if (file === undefined) return null;
      // Never append to a file being drained: later spills start a new file.
      file.draining = true;
      this.#reading = { file, entries: this.#read(file) };
    }
    const reading = this.#reading;
    const entries: SpoolEntry[] = [];
    let bytes = 0;
    while (reading.entries.length > 0 && entries.length < maxLines) {
      const next = reading.entries[0] as SpoolEntry;
      if (entries.length > 0 && bytes + next.bytes > maxBytes) break;
      entries.push(next);
      bytes += next.bytes;
      reading.entries.shift();
    }
    if (reading.entries.length === 0) this.#reading = null;
    if (entries.length === 0) {
      this.#drop(reading.file);
      return null;
    }
    return { entries, file: reading.file, rest: reading.entries };
  }

  #read(file: SpoolFile): SpoolEntry[] {
    const out: SpoolEntry[] = [];
    let text: string;
    try {
      text = readFileSync(join(this.#o.dir, file.name), "utf8");
    } catch (e: unknown) {
      this.#o.logger.error("cannot read a log spool file; skipping it", { file: file.name, error: errorMessage(e) });
      return out;
    }
    for (const raw of text.split("\n")) {
      if (raw === "") continue;
      try {
        const rec = JSON.parse(raw) as { o: number; l: LogLine; t?: unknown };
        out.push({
          ord: file.ours ? rec.o : 0,
          bytes: entryBytes(rec.l),
          line: rec.l,
          ...(typeof rec.t === "string" ? { token: rec.t } : {}),
        });
      } catch {
        // A torn last line of a file written when the agent was killed: the rest is intact.
        this.#o.logger.warn("skipping a corrupt line in a log spool file", { file: file.name });
      }
    }
    return out;
  }

  #drop(file: SpoolFile): void {
    const i = this.#files.indexOf(file);
    if (i < 0) return;
    this.#files.splice(i, 1);
    this.#bytes -= file.bytes;
    this.#remove(file.name);
  }
}

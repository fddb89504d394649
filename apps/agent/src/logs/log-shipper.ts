/**
 * Ships task log lines to the principal in batches, in order, holding every line until the
 * principal acknowledged it. While the principal is unreachable lines spill to spool files in
 * the data directory (capped); at the caps the shipper asks the task readers to pause instead
 * of dropping anything. Backpressure is per task ({@link LogShipper.flowFor}): a task holding
 * more than its share of unacknowledged lines in memory is paused alone, so one noisy task does
 * not stall the others; only when the shared memory cap is reached (the principal is away and the
 * spool is full) does every task with lines in memory wait. Spool files left by a previous agent
 * process are resent first.
 */
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage, isCdktrError, type LogLine, type Logger } from "@cdktr/protocol";
import type { OutputFlowControl } from "../exec/task-process.js";

/** Delivers one batch; resolves once the principal stored it (or already had it). */
export type LogSink = (lines: LogLine[]) => Promise<void>;

/** Options of {@link LogShipper}. */
export interface LogShipperOptions {
  sink: LogSink;
  /** Directory of the spool files (created if needed). */
  spoolDir: string;
  /** Cap of the spool files' total size. */
  spoolMaxBytes: number;
  logger: Logger;
  /** @default 2000 */
  maxBatchLines?: number;
  /** Approximate cap of one batch's encoded size. @default 524288 */
  maxBatchBytes?: number;
  /** How long to wait for more lines before sending a small batch. @default 50 */
  lingerMs?: number;
  /** In-memory bytes (all tasks) at which every task with lines in memory is paused. @default 8 MiB */
  memoryHighBytes?: number;
  /**
   * In-memory bytes of one task (run, task) at which that task alone is paused; it resumes below
   * half of it. @default memoryHighBytes / 4
   */
  taskMemoryHighBytes?: number;
  /** Largest spool file. @default 8 MiB */
  spoolFileBytes?: number;
  /** Retry delays after a failed send. @default 100 .. 2000 ms */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

interface Entry {
  /** Ordinal in this process (1, 2, ...); 0 for lines read from a previous process's spool. */
  ord: number;
  bytes: number;
  line: LogLine;
}

interface SpoolFile {
  name: string;
  bytes: number;
  /** Written by this process (its ordinals are meaningful). */
  ours: boolean;
}

interface Batch {
  entries: Entry[];
  /** Set when the batch came from a spool file: delete the file once this batch is acked. */
  spoolFile: SpoolFile | null;
  /** Lines left in that file after this batch (they follow in later batches). */
  rest: Entry[];
}

/** Overhead of the record's other fields, in bytes, added to each line's length. */
const LINE_OVERHEAD = 200;
const NAME_DIGITS = 16;
const FIRST_SEQ = 1_000_000_000_000;

function taskKey(runId: string, taskId: string): string {
  return `${runId}\u0000${taskId}`;
}

function entryBytes(line: LogLine): number {
  return Buffer.byteLength(line.line, "utf8") + LINE_OVERHEAD;
}

/**
 * Batching, acknowledged, spill-to-disk log shipper. One send at a time, so lines reach the
 * principal in the order they were appended (after any older spooled lines).
 */
export class LogShipper {
  readonly #o: Required<Omit<LogShipperOptions, "sink" | "logger" | "spoolDir" | "spoolMaxBytes">> & LogShipperOptions;
  readonly #memory: Entry[] = [];
  #memHead = 0;
  #memBytes = 0;
  #inflight: Batch | null = null;
  /** Lines of the spool file being drained (oldest file), not yet in a batch. */
  #spoolReading: { file: SpoolFile; entries: Entry[] } | null = null;
  readonly #spoolFiles: SpoolFile[] = [];
  #spoolBytes = 0;
  #nextSeq = FIRST_SEQ;
  #appended = 0;
  #ackedThrough = 0;
  #connected = true;
  #running = false;
  #stopped = false;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #writableWaiters: (() => void)[] = [];
  /** In-memory bytes per task (queued and in flight, not spooled), by {@link taskKey}. */
  readonly #taskBytes = new Map<string, number>();
  #taskWaiters: { key: string; resolve: () => void }[] = [];
  #ackWaiters: { ord: number; resolve: () => void }[] = [];
  #retryDelay: number;

  constructor(options: LogShipperOptions) {
    this.#o = {
      maxBatchLines: 2000,
      maxBatchBytes: 512 * 1024,
      lingerMs: 50,
      memoryHighBytes: 8 * 1024 * 1024,
      spoolFileBytes: 8 * 1024 * 1024,
      retryBaseMs: 100,
      retryMaxMs: 2000,
      ...options,
      taskMemoryHighBytes: options.taskMemoryHighBytes ?? Math.floor((options.memoryHighBytes ?? 8 * 1024 * 1024) / 4),
    };
    this.#retryDelay = this.#o.retryBaseMs;
  }

  /** Bytes of log lines held in memory (queued and in flight). */
  get memoryBytes(): number {
    return this.#memBytes;
  }

  /** Bytes of spool files on disk. */
  get spoolBytes(): number {
    return this.#spoolBytes;
  }

  /** Whether the last send reached the principal. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Scan the spool directory (files of a previous process go first) and start sending. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    mkdirSync(this.#o.spoolDir, { recursive: true });
    const names = readdirSync(this.#o.spoolDir)
      .filter((n) => /^\d+\.jsonl$/.test(n))
      .sort();
    for (const name of names) {
      const bytes = statSync(join(this.#o.spoolDir, name)).size;
      if (bytes === 0) {
        rmSync(join(this.#o.spoolDir, name), { force: true });
        continue;
      }
      this.#spoolFiles.push({ name, bytes, ours: false });
      this.#spoolBytes += bytes;
    }
    const last = names.at(-1);
    if (last !== undefined) this.#nextSeq = Math.max(FIRST_SEQ, Number.parseInt(last, 10) + 1);
    if (this.#spoolFiles.length > 0) {
      this.#o.logger.info("resending log lines spooled by a previous agent process", {
        files: this.#spoolFiles.length,
        bytes: this.#spoolBytes,
      });
    }
    this.#loop = this.#run();
  }

  /** Queue one line. Never drops and never throws; callers pause on {@link shouldPause}. */
  append(line: LogLine): void {
    const bytes = entryBytes(line);
    this.#memory.push({ ord: ++this.#appended, bytes, line });
    this.#memBytes += bytes;
    const key = taskKey(line.runId, line.taskId);
    this.#taskBytes.set(key, (this.#taskBytes.get(key) ?? 0) + bytes);
    this.#wake?.();
  }

  /**
   * True when the shared memory cap is reached. Task readers use {@link flowFor} (per task)
   * instead; this is the all-tasks view.
   */
  shouldPause(): boolean {
    return this.#memBytes >= this.#o.memoryHighBytes;
  }

  /** Resolves when memory use fell below half the high-water mark. */
  whenWritable(): Promise<void> {
    if (this.#memBytes < this.#o.memoryHighBytes / 2) return Promise.resolve();
    return new Promise((resolve) => this.#writableWaiters.push(resolve));
  }

  /**
   * Flow control for one task's output readers: pause when this task holds
   * `taskMemoryHighBytes` in memory (resume below half of it), or when all tasks together hold
   * `memoryHighBytes` and this task holds any (resume once its own lines left memory or the total
   * fell below half).
   */
  flowFor(runId: string, taskId: string): OutputFlowControl {
    const key = taskKey(runId, taskId);
    return {
      shouldPause: () => {
        const own = this.#taskBytes.get(key) ?? 0;
        return own >= this.#o.taskMemoryHighBytes || (own > 0 && this.#memBytes >= this.#o.memoryHighBytes);
      },
      whenWritable: () => {
        if (this.#stopped || this.#taskWritable(key)) return Promise.resolve();
        return new Promise((resolve) => this.#taskWaiters.push({ key, resolve }));
      },
    };
  }

  /** Bytes of one task's lines held in memory (queued and in flight). */
  taskMemoryBytes(runId: string, taskId: string): number {
    return this.#taskBytes.get(taskKey(runId, taskId)) ?? 0;
  }

  #taskWritable(key: string): boolean {
    const own = this.#taskBytes.get(key) ?? 0;
    return own < this.#o.taskMemoryHighBytes / 2 && (own === 0 || this.#memBytes < this.#o.memoryHighBytes / 2);
  }

  /** The ordinal of the last line appended so far (for {@link whenAcked}). */
  mark(): number {
    return this.#appended;
  }

  /** Resolves once every line up to `mark` was acknowledged by the principal. */
  whenAcked(mark: number): Promise<void> {
    if (this.#ackedThrough >= mark) return Promise.resolve();
    return new Promise((resolve) => this.#ackWaiters.push({ ord: mark, resolve }));
  }

  /**
   * Resolves once the spool files left by a previous agent process were all acknowledged (or
   * this shipper stopped).
   */
  async whenPreviousSpoolSent(): Promise<void> {
    while (!this.#stopped && this.#spoolFiles.some((f) => !f.ours)) await new Promise((r) => setTimeout(r, 50));
  }

  /** Wait until everything (memory and spool) is acknowledged, at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.#idle()) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.#idle();
  }

  /**
   * Stop sending. Lines not acknowledged yet are written to the spool, so the next agent
   * process started with the same data directory resends them.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    const pending: Entry[] = [];
    if (this.#inflight !== null && this.#inflight.spoolFile === null) pending.push(...this.#inflight.entries);
    const unsent = this.#takeMemory(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
    this.#release(unsent);
    if (this.#inflight?.spoolFile === null) this.#release(this.#inflight.entries);
    if (pending.length > 0) this.#writeSpool(pending, "front");
    if (unsent.length > 0) this.#writeSpool(unsent, "back");
    this.#inflight = null;
    if (this.#spoolBytes > 0) {
      this.#o.logger.warn("log lines not delivered yet were left in the spool; the next agent start resends them", {
        bytes: this.#spoolBytes,
      });
    }
    for (const w of this.#writableWaiters.splice(0)) w();
    for (const w of this.#taskWaiters.splice(0)) w.resolve();
    // Nothing more will be acknowledged by this process; what is left is in the spool.
    for (const w of this.#ackWaiters.splice(0)) w.resolve();
  }

  #idle(): boolean {
    return (
      this.#memory.length - this.#memHead === 0 &&
      this.#inflight === null &&
      this.#spoolFiles.length === 0 &&
      this.#spoolReading === null
    );
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const batch = this.#inflight ?? (await this.#nextBatch());
      if (batch === null) continue;
      this.#inflight = batch;
      try {
        await this.#o.sink(batch.entries.map((e) => e.line));
        this.#acked(batch);
        if (!this.#connected) this.#o.logger.info("log delivery resumed");
        this.#connected = true;
        this.#retryDelay = this.#o.retryBaseMs;
      } catch (e: unknown) {
        if (isCdktrError(e) && !e.retryable && e.code !== "CLOSED") {
          this.#rejected(batch, e);
          continue;
        }
        if (this.#connected) this.#o.logger.warn("cannot deliver log lines; holding them", { error: errorMessage(e) });
        this.#connected = false;
        this.#spillMemory();
        await this.#sleep(this.#retryDelay);
        this.#retryDelay = Math.min(this.#o.retryMaxMs, this.#retryDelay * 2);
      }
    }
  }

  /** The next batch: the oldest spooled lines first, then memory. Waits when there is none. */
  async #nextBatch(): Promise<Batch | null> {
    const fromSpool = this.#spoolBatch();
    if (fromSpool !== null) return fromSpool;
    if (this.#memory.length - this.#memHead === 0) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = null;
      if (this.#stopped) return null;
      // Give the producer a moment to fill the batch.
      if (this.#o.lingerMs > 0) await this.#sleep(this.#o.lingerMs);
      return null;
    }
    // Memory bytes are released on ack: they stay counted while in flight.
    const entries = this.#takeMemory(this.#o.maxBatchLines, this.#o.maxBatchBytes);
    return { entries, spoolFile: null, rest: [] };
  }

  #spoolBatch(): Batch | null {
    for (;;) {
      if (this.#spoolFiles.length === 0 && this.#spoolReading === null) return null;
      const batch = this.#spoolBatchOnce();
      if (batch !== null) return batch;
    }
  }

  #spoolBatchOnce(): Batch | null {
    if (this.#spoolReading === null) {
      const file = this.#spoolFiles[0];
      if (file === undefined) return null;
      this.#spoolReading = { file, entries: this.#readSpool(file) };
    }
    const reading = this.#spoolReading;
    const entries: Entry[] = [];
    let bytes = 0;
    while (reading.entries.length > 0 && entries.length < this.#o.maxBatchLines) {
      const next = reading.entries[0] as Entry;
      if (entries.length > 0 && bytes + next.bytes > this.#o.maxBatchBytes) break;
      entries.push(next);
      bytes += next.bytes;
      reading.entries.shift();
    }
    if (reading.entries.length === 0) this.#spoolReading = null;
    if (entries.length === 0) {
      this.#dropSpoolFile(reading.file);
      return null;
    }
    return { entries, spoolFile: reading.file, rest: reading.entries };
  }

  #readSpool(file: SpoolFile): Entry[] {
    // Never append to a file being drained: later spills start a new file.
    const out: Entry[] = [];
    let text: string;
    try {
      text = readFileSync(join(this.#o.spoolDir, file.name), "utf8");
    } catch (e: unknown) {
      this.#o.logger.error("cannot read a log spool file; skipping it", { file: file.name, error: errorMessage(e) });
      return out;
    }
    for (const raw of text.split("\n")) {
      if (raw === "") continue;
      try {
        const rec = JSON.parse(raw) as { o: number; l: LogLine };
        out.push({ ord: file.ours ? rec.o : 0, bytes: entryBytes(rec.l), line: rec.l });
      } catch {
        // A torn last line of a file written when the agent was killed: the rest is intact.
        this.#o.logger.warn("skipping a corrupt line in a log spool file", { file: file.name });
      }
    }
    return out;
  }

  #takeMemory(maxLines: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    while (this.#memHead < this.#memory.length && out.length < maxLines) {
      const e = this.#memory[this.#memHead] as Entry;
      if (out.length > 0 && bytes + e.bytes > maxBytes) break;
      out.push(e);
      bytes += e.bytes;
      this.#memHead++;
    }
    if (this.#memHead > 4096 && this.#memHead * 2 > this.#memory.length) {
      this.#memory.splice(0, this.#memHead);
      this.#memHead = 0;
    }
    return out;
  }

  #release(entries: readonly Entry[]): void {
    for (const e of entries) {
      this.#memBytes -= e.bytes;
      const key = taskKey(e.line.runId, e.line.taskId);
      const left = (this.#taskBytes.get(key) ?? 0) - e.bytes;
      if (left > 0) this.#taskBytes.set(key, left);
      else this.#taskBytes.delete(key);
    }
    this.#notifyWritable();
  }

  #acked(batch: Batch): void {
    this.#inflight = null;
    let maxOrd = 0;
    for (const e of batch.entries) if (e.ord > maxOrd) maxOrd = e.ord;
    if (batch.spoolFile === null) {
      this.#release(batch.entries);
    } else if (batch.rest.length === 0 && this.#spoolReading?.file !== batch.spoolFile) {
      this.#dropSpoolFile(batch.spoolFile);
    }
    if (maxOrd > this.#ackedThrough) this.#ackedThrough = maxOrd;
    const ready = this.#ackWaiters.filter((w) => w.ord <= this.#ackedThrough);
    this.#ackWaiters = this.#ackWaiters.filter((w) => w.ord > this.#ackedThrough);
    for (const w of ready) w.resolve();
  }

  /** The principal refused the batch for good (not a connectivity problem). */
  #rejected(batch: Batch, e: unknown): void {
    if (batch.entries.length > 1) {
      // Split to isolate the bad line; the halves are sent one after the other, in order.
      const half = Math.ceil(batch.entries.length / 2);
      const first = batch.entries.slice(0, half);
      const second = batch.entries.slice(half);
      if (batch.spoolFile === null) {
        this.#memory.splice(this.#memHead, 0, ...second);
        this.#inflight = { entries: first, spoolFile: null, rest: [] };
      } else {
        batch.rest.unshift(...second);
        if (this.#spoolReading === null) this.#spoolReading = { file: batch.spoolFile, entries: batch.rest };
        this.#inflight = { entries: first, spoolFile: batch.spoolFile, rest: batch.rest };
      }
      return;
    }
    const line = batch.entries[0]?.line;
    this.#o.logger.error("the principal refused a log line; dropping it", {
      error: errorMessage(e),
      runId: line?.runId,
      taskId: line?.taskId,
      seq: line?.seq,
    });
    this.#acked(batch);
  }

  /** Move queued (not in-flight) memory lines to the spool, if it has room. */
  #spillMemory(): void {
    if (this.#memory.length - this.#memHead === 0) return;
    let room = this.#o.spoolMaxBytes - this.#spoolBytes;
    if (room <= 0) return;
    const toSpill: Entry[] = [];
    let i = this.#memHead;
    while (i < this.#memory.length) {
      const e = this.#memory[i] as Entry;
      if (e.bytes > room) break;
      room -= e.bytes;
      toSpill.push(e);
      i++;
    }
    if (toSpill.length === 0) return;
    this.#takeMemory(toSpill.length, Number.POSITIVE_INFINITY);
    this.#writeSpool(toSpill, "back");
    this.#release(toSpill);
  }

  #writeSpool(entries: Entry[], where: "front" | "back"): void {
    let i = 0;
    while (i < entries.length) {
      let file: SpoolFile;
      const last = this.#spoolFiles.at(-1);
      if (
        where === "back" &&
        last !== undefined &&
        last.ours &&
        last.bytes < this.#o.spoolFileBytes &&
        this.#spoolReading?.file !== last &&
        this.#inflight?.spoolFile !== last
      ) {
        file = last;
      } else {
        const seq =
          where === "front"
            ? Math.min(this.#nextSeq, ...this.#spoolFiles.map((f) => Number.parseInt(f.name, 10))) - 1
            : this.#nextSeq++;
        file = { name: `${String(seq).padStart(NAME_DIGITS, "0")}.jsonl`, bytes: 0, ours: true };
        writeFileSync(join(this.#o.spoolDir, file.name), "");
        if (where === "front") this.#spoolFiles.unshift(file);
        else this.#spoolFiles.push(file);
      }
      const chunk: string[] = [];
      let bytes = 0;
      while (i < entries.length && (where === "front" || file.bytes + bytes < this.#o.spoolFileBytes)) {
        const e = entries[i++] as Entry;
        const text = `${JSON.stringify({ o: e.ord, l: e.line })}\n`;
        chunk.push(text);
        bytes += Buffer.byteLength(text);
      }
      try {
        appendFileSync(join(this.#o.spoolDir, file.name), chunk.join(""));
      } catch (e: unknown) {
        this.#o.logger.error("cannot write the log spool", { file: file.name, error: errorMessage(e) });
      }
      file.bytes += bytes;
      this.#spoolBytes += bytes;
    }
  }

  #dropSpoolFile(file: SpoolFile): void {
    const i = this.#spoolFiles.indexOf(file);
    if (i < 0) return;
    this.#spoolFiles.splice(i, 1);
    this.#spoolBytes -= file.bytes;
    rmSync(join(this.#o.spoolDir, file.name), { force: true });
  }

  #notifyWritable(): void {
    if (this.#memBytes < this.#o.memoryHighBytes / 2 && this.#writableWaiters.length > 0) {
      for (const w of this.#writableWaiters.splice(0)) w();
    }
    if (this.#taskWaiters.length > 0) {
      const ready = this.#taskWaiters.filter((w) => this.#taskWritable(w.key));
      if (ready.length > 0) {
        this.#taskWaiters = this.#taskWaiters.filter((w) => !ready.includes(w));
        for (const w of ready) w.resolve();
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      // stop() cuts sleeps short
      this.#wake = () => {
        if (this.#stopped) {
          clearTimeout(t);
          this.#wake = null;
          resolve();
        }
      };
    });
  }
}

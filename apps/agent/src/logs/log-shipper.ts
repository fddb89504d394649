/**
 * Ships task log lines to the principal in batches, in order, holding every line until the
 * principal acknowledged it. While the principal is unreachable lines spill to spool files in
 * the data directory (capped); at the caps the shipper asks the task readers to pause instead
 * of dropping anything. Backpressure is per task ({@link LogShipper.flowFor}): a task holding
 * more than its share of unacknowledged lines in memory is paused alone, so one noisy task does
 * not stall the others; only when the shared memory cap is reached (the principal is away and the
 * spool is full) does every task with lines in memory wait. Spool files left by a previous agent
 * process are resent first. A batch the principal refuses as busy (`RESOURCE_EXHAUSTED`: it holds
 * as many of this agent's lines as it takes) is kept and resent after a backoff.
 */
import { backoffDelay, errorMessage, isCdktrError, type LogLine, type Logger } from "@cdktr/protocol";
import type { OutputFlowControl } from "../exec/task-process.js";
import { entryBytes, LogSpool, type SpoolBatch, type SpoolEntry } from "./log-spool.js";

/**
 * Delivers one batch with the assignment token of each of its runs (runId -> token); resolves
 * once the principal stored it (or already had it).
 */
export type LogSink = (lines: LogLine[], tokens: Record<string, string>) => Promise<void>;

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
  /**
   * First delay before resending after a failed send (then doubling, with jitter: `backoffDelay`).
   * @default 100
   */
  retryBaseMs?: number;
  /** Largest delay between resends. @default 2000 */
  retryMaxMs?: number;
}

/** The batch being sent. */
interface Batch {
  entries: SpoolEntry[];
  /** Set when the batch came from a spool file: the spool removes the file once it is all acked. */
  spool: SpoolBatch | null;
}

function taskKey(runId: string, taskId: string): string {
  return `${runId}\u0000${taskId}`;
}

/** The token of each run of `entries` (runId -> token). */
function tokensOf(entries: readonly SpoolEntry[]): Record<string, string> {
  const tokens: Record<string, string> = {};
  for (const e of entries) if (e.token !== undefined) tokens[e.line.runId] = e.token;
  return tokens;
}

/**
 * Batching, acknowledged, spill-to-disk log shipper. One send at a time, so lines reach the
 * principal in the order they were appended (after any older spooled lines).
 */
export class LogShipper {
  readonly #o: Required<Omit<LogShipperOptions, "sink" | "logger" | "spoolDir" | "spoolMaxBytes">> & LogShipperOptions;
  readonly #memory: SpoolEntry[] = [];
  #memHead = 0;
  #memBytes = 0;
  #inflight: Batch | null = null;
  readonly #spool: LogSpool;
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
  /** Failed sends in a row (the attempt of the next backoff). */
  #failures = 0;
  /** `RESOURCE_EXHAUSTED` refusals since the last acknowledged batch. */
  #busyRefusals = 0;
  /** `RESOURCE_EXHAUSTED` refusals in total (the batch was resent each time). */
  #refusedBatches = 0;

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
    this.#spool = new LogSpool({
      dir: this.#o.spoolDir,
      maxBytes: this.#o.spoolMaxBytes,
      fileBytes: this.#o.spoolFileBytes,
      logger: this.#o.logger,
    });
  }

  /** Bytes of log lines held in memory (queued and in flight). */
  get memoryBytes(): number {
    return this.#memBytes;
  }

  /** Bytes of spool files on disk. */
  get spoolBytes(): number {
    return this.#spool.bytes;
  }

  /** Batches the principal refused as busy (`RESOURCE_EXHAUSTED`) and that were sent again. */
  get refusedBatches(): number {
    return this.#refusedBatches;
  }

  /** Whether the last send reached the principal. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Scan the spool directory (files of a previous process go first) and start sending. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#spool.open();
    this.#loop = this.#run();
  }

  /**
   * Queue one line of a run holding the assignment `token` (kept with the line, in memory and in
   * the spool, and sent with it). Never drops and never throws; callers pause on {@link shouldPause}.
   */
  append(line: LogLine, token?: string): void {
    const bytes = entryBytes(line);
    this.#memory.push({ ord: ++this.#appended, bytes, line, ...(token === undefined ? {} : { token }) });
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
    while (!this.#stopped && this.#spool.hasPrevious) await new Promise((r) => setTimeout(r, 50));
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
    const pending: SpoolEntry[] = [];
    if (this.#inflight !== null && this.#inflight.spool === null) pending.push(...this.#inflight.entries);
    const unsent = this.#takeMemory(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
    this.#release(unsent);
    if (this.#inflight?.spool === null) this.#release(this.#inflight.entries);
    if (pending.length > 0) this.#spool.write(pending, "front");
    if (unsent.length > 0) this.#spool.write(unsent, "back");
    this.#inflight = null;
    if (this.#spool.bytes > 0) {
      this.#o.logger.warn("log lines not delivered yet were left in the spool; the next agent start resends them", {
        bytes: this.#spool.bytes,
      });
    }
    for (const w of this.#writableWaiters.splice(0)) w();
    for (const w of this.#taskWaiters.splice(0)) w.resolve();
    // Nothing more will be acknowledged by this process; what is left is in the spool.
    for (const w of this.#ackWaiters.splice(0)) w.resolve();
  }

  #idle(): boolean {
    return this.#memory.length - this.#memHead === 0 && this.#inflight === null && this.#spool.empty;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const batch = this.#inflight ?? (await this.#nextBatch());
      if (batch === null) continue;
      this.#inflight = batch;
      try {
        await this.#o.sink(
          batch.entries.map((e) => e.line),
          tokensOf(batch.entries),
        );
        this.#acked(batch);
        this.#busyRefusals = 0;
        if (!this.#connected) this.#o.logger.info("log delivery resumed");
        this.#connected = true;
        this.#failures = 0;
      } catch (e: unknown) {
        if (isCdktrError(e) && !e.retryable && e.code !== "CLOSED") {
          this.#rejected(batch, e);
          continue;
        }
        if (isCdktrError(e, "RESOURCE_EXHAUSTED")) {
          // The principal holds as many of this agent's lines as it takes: keep the batch (and
          // everything behind it in memory: per-task backpressure pauses the tasks) and resend it
          // after a pause. The principal is there: nothing goes to the spool.
          this.#refusedBatches++;
          if (this.#busyRefusals++ === 0) {
            this.#o.logger.info("the principal is busy storing this agent's log lines; resending after a pause", {
              error: errorMessage(e),
            });
          }
          await this.#sleep(
            backoffDelay(++this.#failures, { initialMs: this.#o.retryBaseMs, maxMs: this.#o.retryMaxMs }),
          );
          continue;
        }
        if (this.#connected) this.#o.logger.warn("cannot deliver log lines; holding them", { error: errorMessage(e) });
        this.#connected = false;
        this.#spillMemory();
        await this.#sleep(
          backoffDelay(++this.#failures, { initialMs: this.#o.retryBaseMs, maxMs: this.#o.retryMaxMs }),
        );
      }
    }
  }

  /** The next batch: the oldest spooled lines first, then memory. Waits when there is none. */
  async #nextBatch(): Promise<Batch | null> {
    const fromSpool = this.#spool.nextBatch(this.#o.maxBatchLines, this.#o.maxBatchBytes);
    if (fromSpool !== null) return { entries: fromSpool.entries, spool: fromSpool };
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
    return { entries, spool: null };
  }

  #takeMemory(maxLines: number, maxBytes: number): SpoolEntry[] {
    const out: SpoolEntry[] = [];
    let bytes = 0;
    while (this.#memHead < this.#memory.length && out.length < maxLines) {
      const e = this.#memory[this.#memHead] as SpoolEntry;
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

  #release(entries: readonly SpoolEntry[]): void {
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
    if (batch.spool === null) this.#release(batch.entries);
    else this.#spool.acked(batch.spool);
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
      if (batch.spool === null) {
        this.#memory.splice(this.#memHead, 0, ...second);
        this.#inflight = { entries: first, spool: null };
      } else {
        this.#spool.putBack(batch.spool, second);
        this.#inflight = { entries: first, spool: { ...batch.spool, entries: first } };
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
    let room = this.#spool.room;
    if (room <= 0) return;
    const toSpill: SpoolEntry[] = [];
    let i = this.#memHead;
    while (i < this.#memory.length) {
      const e = this.#memory[i] as SpoolEntry;
      if (e.bytes > room) break;
      room -= e.bytes;
      toSpill.push(e);
      i++;
    }
    if (toSpill.length === 0) return;
    this.#takeMemory(toSpill.length, Number.POSITIVE_INFINITY);
    this.#spool.write(toSpill, "back");
    this.#release(toSpill);
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

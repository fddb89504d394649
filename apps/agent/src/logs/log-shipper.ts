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
import type { SyncBatch } from "../data-dir/sync-batch.js";
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
  /** Where spool files are fsynced (batched with the agent's other records). @default one of its own */
  sync?: SyncBatch;
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
  readonly #o: Required<Omit<LogShipperOptions, "sink" | "logger" | "spoolDir" | "spoolMaxBytes" | "sync">> &
    LogShipperOptions;
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
  #durableWaiters: { ord: number; resolve: () => void }[] = [];
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
      ...(options.sync === undefined ? {} : { sync: options.sync }),
    });
  }

  /**
   * Why log lines cannot leave memory now, for the agent's heartbeat: the spool cannot be
   * written (disk full...), or it is at its cap while the principal is unreachable. Null when
   * all is well. A spool problem is cleared by the next write that works, or once the disk has
   * room again.
   */
  get problem(): string | null {
    this.#spool.recheck();
    if (this.#spool.problem !== null) return this.#spool.problem;
    if (!this.#connected && this.#spool.room <= 0 && this.#memory.length - this.#memHead > 0) {
      return `log spool full (CDKTR_AGENT_LOG_SPOOL_MAX_BYTES=${this.#o.spoolMaxBytes}) while the principal is unreachable: task output pauses at the memory cap`;
    }
    return null;
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
   * Resolves once every line up to `mark` would survive a crash of this process: acknowledged by
   * the principal, or written to the spool and fsynced. The status outbox journals a task's or a
   * run's final status only then, so a status on disk never outlives the lines it reports on
   * (a line the spool could not take stays in memory, and keeps the status waiting).
   */
  whenDurable(mark: number): Promise<void> {
    if (mark < this.#lowestVolatile()) return this.#spool.synced();
    return new Promise((resolve) => this.#durableWaiters.push({ ord: mark, resolve }));
  }

  /** The lowest ordinal held only in memory (queued, or in flight from memory); Infinity when none. */
  #lowestVolatile(): number {
    let low = Number.POSITIVE_INFINITY;
    if (this.#inflight !== null && this.#inflight.spool === null) {
      for (const e of this.#inflight.entries) if (e.ord < low) low = e.ord;
    }
    const head = this.#memory[this.#memHead];
    if (head !== undefined && head.ord < low) low = head.ord;
    return low;
  }

  /** Resolve the durability waiters whose lines all left memory (once the spool is fsynced). */
  #checkDurable(): void {
    if (this.#durableWaiters.length === 0) return;
    const low = this.#lowestVolatile();
    const ready = this.#durableWaiters.filter((w) => w.ord < low);
    if (ready.length === 0) return;
    this.#durableWaiters = this.#durableWaiters.filter((w) => w.ord >= low);
    const synced = this.#spool.synced();
    for (const w of ready) void synced.then(w.resolve);
  }

  /**
   * Resolves once the spool files left by a previous agent process were all acknowledged (or
   * this shipper stopped).
   */
  async whenPreviousSpoolSent(): Promise<void> {
    while (!this.#stopped && this.#spool.hasPrevious) await new Promise((r) => setTimeout(r, 50));
  }

  /**
   * Wait until everything (memory and spool) is acknowledged, at most `timeoutMs`. True only when
   * no line is left anywhere: a line the spool could not take is still held (in memory), and
   * counts.
   */
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
    // The spool stores a prefix of each write; what it could not take is lost with this process.
    const lostLines: SpoolEntry[] = [];
    if (pending.length > 0) lostLines.push(...pending.slice(this.#spool.write(pending, "front")));
    if (unsent.length > 0) lostLines.push(...unsent.slice(this.#spool.write(unsent, "back")));
    const lost = lostLines.length;
    this.#spool.syncNow();
    this.#inflight = null;
    // Waiters whose lines are all on disk resolve; those of lost lines never do (their statuses
    // are never journaled: no run is reported final over lines it lost).
    let lowestLost = Number.POSITIVE_INFINITY;
    for (const e of lostLines) if (e.ord < lowestLost) lowestLost = e.ord;
    for (const w of this.#durableWaiters.splice(0)) if (w.ord < lowestLost) w.resolve();
    if (lost > 0) {
      this.#o.logger.error("log lines not delivered could not be saved in the spool and are lost with this process", {
        lines: lost,
        problem: this.#spool.problem,
      });
    }
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
      try {
        await this.#step();
      } catch (e: unknown) {
        // A bug, not an outage: log it and go on (the lines stay held).
        this.#o.logger.error("log shipping step failed; retrying", { error: errorMessage(e) });
        await this.#sleep(this.#o.retryMaxMs);
      }
    }
  }

  /** Send one batch (or wait for one); on failure spill what memory holds and back off. */
  async #step(): Promise<void> {
    const batch = this.#inflight ?? (await this.#nextBatch());
    if (batch === null) return;
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
        return;
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
        return;
      }
      if (this.#connected) this.#o.logger.warn("cannot deliver log lines; holding them", { error: errorMessage(e) });
      this.#connected = false;
      this.#spillInflight(batch);
      this.#spillMemory();
      await this.#sleep(backoffDelay(++this.#failures, { initialMs: this.#o.retryBaseMs, maxMs: this.#o.retryMaxMs }));
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
    this.#checkDurable();
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

  /**
   * Move queued (not in-flight) memory lines to the spool, if it has room. Only the lines the
   * spool wrote leave memory; the rest stay (and hold the task readers' backpressure).
   */
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
    const held = this.#spool.write(toSpill, "back");
    if (held === 0) return;
    const spilled = this.#takeMemory(held, Number.POSITIVE_INFINITY);
    this.#release(spilled);
    this.#checkDurable();
  }

  /**
   * A batch from memory that could not be sent goes to the front of the spool (it is older than
   * anything queued), so an outage does not leave it in memory only; the next batch is then read
   * from the spool. When the spool cannot take all of it, it stays in flight (a prefix the spool
   * took is sent twice: the principal stores a line once).
   */
  #spillInflight(batch: Batch): void {
    if (batch.spool !== null || this.#inflight !== batch) return;
    let bytes = 0;
    for (const e of batch.entries) bytes += e.bytes;
    if (bytes > this.#spool.room) return;
    if (this.#spool.write(batch.entries, "front") < batch.entries.length) return;
    this.#inflight = null;
    this.#release(batch.entries);
    this.#checkDurable();
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

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
import { backoffDelay, errorMessage, isCdktrError, type LogLine } from "@cdktr/protocol";
import type { OutputFlowControl } from "../exec/task-process.js";
import { DeliveryMarks } from "./delivery-marks.js";
import { withDefaults, type LogShipperOptions, type ResolvedLogShipperOptions } from "./log-shipper-options.js";
import { entryBytes, LogSpool, type SpoolBatch, type SpoolEntry } from "./log-spool.js";
import { MemoryQueue } from "./memory-queue.js";

/** The batch being sent. */
interface Batch {
  entries: SpoolEntry[];
  /** Set when the batch came from a spool file: the spool removes the file once it is all acked. */
  spool: SpoolBatch | null;
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
  readonly #o: ResolvedLogShipperOptions;
  /** Lines in memory (queued, and in flight from memory), with the task readers' backpressure. */
  readonly #memory: MemoryQueue;
  #inflight: Batch | null = null;
  readonly #spool: LogSpool;
  #appended = 0;
  /** The acknowledged and durable marks, and their waiters. */
  readonly #marks = new DeliveryMarks();
  #connected = true;
  #running = false;
  #stopped = false;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  /** Failed sends in a row (the attempt of the next backoff). */
  #failures = 0;
  /** `RESOURCE_EXHAUSTED` refusals since the last acknowledged batch. */
  #busyRefusals = 0;
  /** `RESOURCE_EXHAUSTED` refusals in total (the batch was resent each time). */
  #refusedBatches = 0;

  constructor(options: LogShipperOptions) {
    this.#o = withDefaults(options);
    this.#memory = new MemoryQueue({
      memoryHighBytes: this.#o.memoryHighBytes,
      taskMemoryHighBytes: this.#o.taskMemoryHighBytes,
    });
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
    if (!this.#connected && this.#spool.room <= 0 && this.#memory.length > 0) {
      return `log spool full (CDKTR_AGENT_LOG_SPOOL_MAX_BYTES=${this.#o.spoolMaxBytes}) while the principal is unreachable: task output pauses at the memory cap`;
    }
    return null;
  }

  /** Bytes of log lines held in memory (queued and in flight). */
  get memoryBytes(): number {
    return this.#memory.bytes;
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
    this.#wake?.();
  }

  /**
   * True when the shared memory cap is reached. Task readers use {@link flowFor} (per task)
   * instead; this is the all-tasks view.
   */
  shouldPause(): boolean {
    return this.#memory.shouldPause();
  }

  /** Resolves when memory use fell below half the high-water mark. */
  whenWritable(): Promise<void> {
    return this.#memory.whenWritable();
  }

  /**
   * Flow control for one task's output readers: pause when this task holds
   * `taskMemoryHighBytes` in memory (resume below half of it), or when all tasks together hold
   * `memoryHighBytes` and this task holds any (resume once its own lines left memory or the total
   * fell below half).
   */
  flowFor(runId: string, taskId: string): OutputFlowControl {
    return this.#memory.flowFor(runId, taskId);
  }

  /** Bytes of one task's lines held in memory (queued and in flight). */
  taskMemoryBytes(runId: string, taskId: string): number {
    return this.#memory.taskBytes(runId, taskId);
  }

  /** The ordinal of the last line appended so far (for {@link whenAcked}). */
  mark(): number {
    return this.#appended;
  }

  /** Resolves once every line up to `mark` was acknowledged by the principal. */
  whenAcked(mark: number): Promise<void> {
    return this.#marks.whenAcked(mark);
  }

  /**
   * Resolves once every line up to `mark` would survive a crash of this process: acknowledged by
   * the principal, or written to the spool and fsynced. The status outbox journals a task's or a
   * run's final status only then, so a status on disk never outlives the lines it reports on
   * (a line the spool could not take stays in memory, and keeps the status waiting).
   */
  whenDurable(mark: number): Promise<void> {
    return this.#marks.whenDurable(mark, this.#lowestVolatile(), () => this.#spool.synced());
  }

  /** The lowest ordinal held only in memory (queued, or in flight from memory); Infinity when none. */
  #lowestVolatile(): number {
    let low = Number.POSITIVE_INFINITY;
    if (this.#inflight !== null && this.#inflight.spool === null) {
      for (const e of this.#inflight.entries) if (e.ord < low) low = e.ord;
    }
    const head = this.#memory.head();
    if (head !== undefined && head.ord < low) low = head.ord;
    return low;
  }

  /** Resolve the durability waiters whose lines all left memory (once the spool is fsynced). */
  #checkDurable(): void {
    this.#marks.checkDurable(
      () => this.#lowestVolatile(),
      () => this.#spool.synced(),
    );
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
    this.#memory.close();
    this.#wake?.();
    await this.#loop;
    const pending: SpoolEntry[] = [];
    if (this.#inflight !== null && this.#inflight.spool === null) pending.push(...this.#inflight.entries);
    const unsent = this.#memory.take(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
    this.#memory.release(unsent);
    if (this.#inflight?.spool === null) this.#memory.release(this.#inflight.entries);
    // The spool stores a prefix of each write; what it could not take is lost with this process.
    const lostLines: SpoolEntry[] = [];
    if (pending.length > 0) lostLines.push(...pending.slice(this.#spool.write(pending, "front")));
    if (unsent.length > 0) lostLines.push(...unsent.slice(this.#spool.write(unsent, "back")));
    const lost = lostLines.length;
    this.#spool.syncNow();
    this.#inflight = null;
    // Waiters whose lines are all on disk resolve; those of lost lines never do.
    let lowestLost = Number.POSITIVE_INFINITY;
    for (const e of lostLines) if (e.ord < lowestLost) lowestLost = e.ord;
    this.#marks.stopped(lowestLost);
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
    this.#memory.releaseWaiters();
    // Nothing more will be acknowledged by this process; what is left is in the spool.
    this.#marks.releaseAckWaiters();
  }

  #idle(): boolean {
    return this.#memory.length === 0 && this.#inflight === null && this.#spool.empty;
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
    if (this.#memory.length === 0) {
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
    const entries = this.#memory.take(this.#o.maxBatchLines, this.#o.maxBatchBytes);
    return { entries, spool: null };
  }

  /** The batch is done with: stored by the principal (`delivered`), or refused for good. */
  #acked(batch: Batch, delivered = true): void {
    this.#inflight = null;
    if (delivered) this.#o.onDelivered?.(batch.entries.length);
    let maxOrd = 0;
    for (const e of batch.entries) if (e.ord > maxOrd) maxOrd = e.ord;
    if (batch.spool === null) this.#memory.release(batch.entries);
    else this.#spool.acked(batch.spool);
    this.#checkDurable();
    this.#marks.acked(maxOrd);
  }

  /** The principal refused the batch for good (not a connectivity problem). */
  #rejected(batch: Batch, e: unknown): void {
    if (batch.entries.length > 1) {
      // Split to isolate the bad line; the halves are sent one after the other, in order.
      const half = Math.ceil(batch.entries.length / 2);
      const first = batch.entries.slice(0, half);
      const second = batch.entries.slice(half);
      if (batch.spool === null) {
        this.#memory.unshift(second);
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
    this.#acked(batch, false);
  }

  /**
   * Move queued (not in-flight) memory lines to the spool, if it has room. Only the lines the
   * spool wrote leave memory; the rest stay (and hold the task readers' backpressure).
   */
  #spillMemory(): void {
    if (this.#memory.length === 0) return;
    let room = this.#spool.room;
    if (room <= 0) return;
    const toSpill: SpoolEntry[] = [];
    for (const e of this.#memory.queued()) {
      if (e.bytes > room) break;
      room -= e.bytes;
      toSpill.push(e);
    }
    if (toSpill.length === 0) return;
    const held = this.#spool.write(toSpill, "back");
    if (held === 0) return;
    this.#memory.release(this.#memory.take(held, Number.POSITIVE_INFINITY));
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
    this.#memory.release(batch.entries);
    this.#checkDurable();
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

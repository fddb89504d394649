/**
 * The in-memory half of log shipping: the lines appended and not yet acknowledged or spooled, in
 * order, with their bytes counted per task and in total, and the backpressure those counts drive
 * (which task readers pause, and when they may read again).
 */
import type { OutputFlowControl } from "../exec/task-process.js";
import type { SpoolEntry } from "./log-spool.js";

/** Options of {@link MemoryQueue}. */
export interface MemoryQueueOptions {
  /** In-memory bytes (all tasks) at which every task with lines in memory is paused. */
  memoryHighBytes: number;
  /** In-memory bytes of one task at which that task alone is paused; it resumes below half of it. */
  taskMemoryHighBytes: number;
}

function taskKey(runId: string, taskId: string): string {
  return `${runId}\u0000${taskId}`;
}

/**
 * Lines held in memory, oldest first. A line's bytes are counted from {@link push} until
 * {@link release}: a line taken for a send ({@link take}) still counts while it is in flight.
 */
export class MemoryQueue {
  readonly #o: MemoryQueueOptions;
  readonly #entries: SpoolEntry[] = [];
  #head = 0;
  #bytes = 0;
  /** In-memory bytes per task (queued and in flight, not spooled), by {@link taskKey}. */
  readonly #taskBytes = new Map<string, number>();
  #writableWaiters: (() => void)[] = [];
  #taskWaiters: { key: string; resolve: () => void }[] = [];
  /** Set by {@link close}: no task reader starts waiting any more. */
  #closed = false;

  constructor(options: MemoryQueueOptions) {
    this.#o = options;
  }

  /** Bytes of the lines held (queued and in flight). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Lines queued (not taken). */
  get length(): number {
    return this.#entries.length - this.#head;
  }

  /** The oldest queued line, if any. */
  head(): SpoolEntry | undefined {
    return this.#entries[this.#head];
  }

  /** The queued lines, oldest first (a view: do not keep it across changes). */
  *queued(): IterableIterator<SpoolEntry> {
    for (let i = this.#head; i < this.#entries.length; i++) yield this.#entries[i] as SpoolEntry;
  }

  /** Queue one line and count its bytes. */
  push(entry: SpoolEntry): void {
    this.#entries.push(entry);
    this.#bytes += entry.bytes;
    const key = taskKey(entry.line.runId, entry.line.taskId);
    this.#taskBytes.set(key, (this.#taskBytes.get(key) ?? 0) + entry.bytes);
  }

  /** Put lines back at the front of the queue (they are older than anything queued); still counted. */
  unshift(entries: readonly SpoolEntry[]): void {
    this.#entries.splice(this.#head, 0, ...entries);
  }

  /** Take up to `maxLines` queued lines of about `maxBytes` (at least one); they stay counted. */
  take(maxLines: number, maxBytes: number): SpoolEntry[] {
    const out: SpoolEntry[] = [];
    let bytes = 0;
    while (this.#head < this.#entries.length && out.length < maxLines) {
      const e = this.#entries[this.#head] as SpoolEntry;
      if (out.length > 0 && bytes + e.bytes > maxBytes) break;
      out.push(e);
      bytes += e.bytes;
      this.#head++;
    }
    if (this.#head > 4096 && this.#head * 2 > this.#entries.length) {
      this.#entries.splice(0, this.#head);
      this.#head = 0;
    }
    return out;
  }

  /** Stop counting lines that left memory (acknowledged or spooled) and wake the readers that may go on. */
  release(entries: readonly SpoolEntry[]): void {
    for (const e of entries) {
      this.#bytes -= e.bytes;
      const key = taskKey(e.line.runId, e.line.taskId);
      const left = (this.#taskBytes.get(key) ?? 0) - e.bytes;
      if (left > 0) this.#taskBytes.set(key, left);
      else this.#taskBytes.delete(key);
    }
    this.#notifyWritable();
  }

  /** True when the shared memory cap is reached. */
  shouldPause(): boolean {
    return this.#bytes >= this.#o.memoryHighBytes;
  }

  /** Resolves when memory use fell below half the high-water mark. */
  whenWritable(): Promise<void> {
    if (this.#bytes < this.#o.memoryHighBytes / 2) return Promise.resolve();
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
        return own >= this.#o.taskMemoryHighBytes || (own > 0 && this.#bytes >= this.#o.memoryHighBytes);
      },
      whenWritable: () => {
        if (this.#closed || this.#taskWritable(key)) return Promise.resolve();
        return new Promise((resolve) => this.#taskWaiters.push({ key, resolve }));
      },
    };
  }

  /** Bytes of one task's lines held in memory (queued and in flight). */
  taskBytes(runId: string, taskId: string): number {
    return this.#taskBytes.get(taskKey(runId, taskId)) ?? 0;
  }

  /** The shipper is stopping: a task reader that asks from now on does not wait. */
  close(): void {
    this.#closed = true;
  }

  /** Wake every reader waiting (the shipper stopped: nothing more will be released). */
  releaseWaiters(): void {
    for (const w of this.#writableWaiters.splice(0)) w();
    for (const w of this.#taskWaiters.splice(0)) w.resolve();
  }

  #taskWritable(key: string): boolean {
    const own = this.#taskBytes.get(key) ?? 0;
    return own < this.#o.taskMemoryHighBytes / 2 && (own === 0 || this.#bytes < this.#o.memoryHighBytes / 2);
  }

  #notifyWritable(): void {
    if (this.#bytes < this.#o.memoryHighBytes / 2 && this.#writableWaiters.length > 0) {
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
}

import type { LogLine } from "@cdktr/protocol";

interface TaskBuffer {
  readonly runId: string;
  readonly taskId: string;
  /** Next sequence number to print. */
  nextSeq: number;
  /** Lines received ahead of `nextSeq`. */
  readonly pending: Map<number, LogLine>;
  /** Time of the last line released, to narrow gap queries. */
  lastTime: string | null;
  /** When the current gap was first seen (ms), null without a gap. */
  gapSince: number | null;
}

/** A task whose lines arrived with a hole in their sequence numbers. */
export interface LogGap {
  readonly runId: string;
  readonly taskId: string;
  /** Query from this time (the last line printed), or from the start when null. */
  readonly since: string | null;
  /** First missing sequence number. */
  readonly fromSeq: number;
  /** How long the gap has been open (ms). */
  readonly ageMs: number;
}

/**
 * Puts log lines arriving from two sources (live publications and queries), in any order and
 * with duplicates, back into per-task sequence order. Each (run, task) line is released exactly
 * once, in `seq` order, as soon as every earlier line of that task has been released.
 */
export class LogSequencer {
  readonly #tasks = new Map<string, TaskBuffer>();
  readonly #ready: LogLine[] = [];
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  #buffer(runId: string, taskId: string): TaskBuffer {
    const key = `${runId}\u0000${taskId}`;
    let b = this.#tasks.get(key);
    if (b === undefined) {
      b = { runId, taskId, nextSeq: 1, pending: new Map(), lastTime: null, gapSince: null };
      this.#tasks.set(key, b);
    }
    return b;
  }

  /** Accept a line (duplicates and already released lines are ignored). Returns whether it was new. */
  add(line: LogLine): boolean {
    const b = this.#buffer(line.runId, line.taskId);
    if (line.seq < b.nextSeq || b.pending.has(line.seq)) return false;
    b.pending.set(line.seq, line);
    this.#release(b);
    return true;
  }

  #release(b: TaskBuffer): void {
    for (let next = b.pending.get(b.nextSeq); next !== undefined; next = b.pending.get(b.nextSeq)) {
      b.pending.delete(b.nextSeq);
      this.#ready.push(next);
      b.lastTime = next.time;
      b.nextSeq++;
    }
    if (b.pending.size === 0) b.gapSince = null;
    else b.gapSince ??= this.#now();
  }

  /** Lines that may be printed now, in release order; the internal list is emptied. */
  drain(): LogLine[] {
    return this.#ready.splice(0, this.#ready.length);
  }

  /** Tasks holding lines behind a missing sequence number. */
  gaps(): LogGap[] {
    const now = this.#now();
    const out: LogGap[] = [];
    for (const b of this.#tasks.values()) {
      if (b.pending.size === 0 || b.gapSince === null) continue;
      out.push({ runId: b.runId, taskId: b.taskId, since: b.lastTime, fromSeq: b.nextSeq, ageMs: now - b.gapSince });
    }
    return out;
  }

  /**
   * Give up on the hole at the start of one task (its earlier lines are outside the window being
   * shown): continue from its smallest held line.
   */
  skipToHeld(runId: string, taskId: string): void {
    const b = this.#tasks.get(`${runId}\u0000${taskId}`);
    if (b === undefined || b.pending.size === 0) return;
    b.nextSeq = Math.min(...b.pending.keys());
    this.#release(b);
  }

  /** Whether any line of this task was released already. */
  started(runId: string, taskId: string): boolean {
    const b = this.#tasks.get(`${runId}\u0000${taskId}`);
    return b !== undefined && b.lastTime !== null;
  }

  /** Start this task at `nextSeq` (lines before it are not wanted); no effect once lines were released. */
  seed(runId: string, taskId: string, nextSeq: number): void {
    const b = this.#buffer(runId, taskId);
    if (b.lastTime !== null || nextSeq <= b.nextSeq) return;
    b.nextSeq = nextSeq;
    for (const s of [...b.pending.keys()]) if (s < nextSeq) b.pending.delete(s);
    this.#release(b);
  }

  /**
   * Give up on the holes: release every held line in sequence order and report how many
   * sequence numbers were skipped.
   */
  releaseAll(): { lines: LogLine[]; missing: number } {
    let missing = 0;
    for (const b of this.#tasks.values()) {
      const seqs = [...b.pending.keys()].sort((x, y) => x - y);
      for (const s of seqs) {
        const line = b.pending.get(s);
        if (line === undefined) continue;
        missing += s - b.nextSeq;
        b.pending.delete(s);
        this.#ready.push(line);
        b.lastTime = line.time;
        b.nextSeq = s + 1;
      }
      b.gapSince = null;
    }
    return { lines: this.drain(), missing };
  }
}

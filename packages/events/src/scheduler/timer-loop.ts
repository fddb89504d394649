import type { Clock, TimerHandle } from "@cdktr/protocol";
import { PriorityQueue } from "./priority-queue.js";
import type { QueueItem } from "./scheduler-types.js";

/** Options of {@link TimerLoop}. */
export interface TimerLoopOptions {
  clock: Clock;
  /** Longest single sleep; the clock is re-read at least this often. */
  maxSleepMs: number;
  /** Wake this long before a jitter-free item and spin on the clock for the rest. */
  earlyWakeMs: number;
  /** False once the scheduler stopped: no timer is armed or handled then. */
  active: () => boolean;
  /** Called with each due item, in queue order, as soon as it leaves the queue. */
  onDue: (item: QueueItem) => void;
  /** Called once the due items of a wake-up were handed to `onDue`; it re-arms the loop. */
  afterDue: () => void;
}

/**
 * The cron scheduler's single timer over its queue of sends: sleeps until the earliest item
 * (never polls; sleeps are capped by `maxSleepMs`), wakes `earlyWakeMs` before a jitter-free
 * occurrence and spins on the clock for the rest so that its sends leave on the millisecond,
 * then hands every due item over.
 */
export class TimerLoop {
  readonly #queue = new PriorityQueue<QueueItem>(
    (a, b) =>
      a.at - b.at ||
      a.scheduledFor - b.scheduledFor ||
      (a.workflowId < b.workflowId ? -1 : a.workflowId > b.workflowId ? 1 : 0),
  );
  readonly #o: TimerLoopOptions;
  #timer: TimerHandle | null = null;
  #timerAt = 0;

  constructor(options: TimerLoopOptions) {
    this.#o = options;
  }

  /** Queue a send (call {@link arm} afterwards). */
  push(item: QueueItem): void {
    this.#queue.push(item);
  }

  /** The earliest queued send. */
  peek(): QueueItem | undefined {
    return this.#queue.peek();
  }

  /** Drop every queued send. */
  clear(): void {
    this.#queue.clear();
  }

  /** (Re)arm the single timer for the earliest queue item; sleeps are capped by maxSleepMs. */
  arm(): void {
    if (!this.#o.active()) return;
    const clock = this.#o.clock;
    const head = this.#queue.peek();
    if (head === undefined) {
      if (this.#timer !== null) clock.clearTimer(this.#timer);
      this.#timer = null;
      return;
    }
    const now = clock.now();
    const earlyWakeMs = this.#o.earlyWakeMs;
    // inside the early window already (a spin gave up): wait for the instant itself
    const early = head.precise && head.at - earlyWakeMs > now ? earlyWakeMs : 0;
    const wakeAt = Math.min(head.at - early, now + this.#o.maxSleepMs);
    if (this.#timer !== null) {
      if (this.#timerAt <= wakeAt) return; // already waking early enough
      clock.clearTimer(this.#timer);
    }
    this.#timerAt = wakeAt;
    this.#timer = clock.setTimer(() => this.#onTimer(), Math.max(0, wakeAt - now));
  }

  /** Cancel the timer (the queue is kept). */
  stop(): void {
    if (this.#timer !== null) this.#o.clock.clearTimer(this.#timer);
    this.#timer = null;
  }

  /** Hand every due item over (spinning first when the earliest is a precise one just ahead). */
  #onTimer(): void {
    this.#timer = null;
    if (!this.#o.active()) return;
    let now = this.#o.clock.now();
    const first = this.#queue.peek();
    if (first?.precise && first.at > now && first.at - now <= this.#o.earlyWakeMs) now = this.#spinUntil(first.at);
    for (let head = this.#queue.peek(); head !== undefined && head.at <= now; head = this.#queue.peek()) {
      this.#queue.pop();
      this.#o.onDue(head);
    }
    this.#o.afterDue();
  }

  /**
   * Busy-wait until the clock reads `at` (at most `earlyWakeMs` + 2 ms of real time, so a
   * clock that does not move cannot hang the process). Returns the clock's time.
   */
  #spinUntil(at: number): number {
    const limit = performance.now() + this.#o.earlyWakeMs + 2;
    let now = this.#o.clock.now();
    while (now < at && performance.now() < limit) now = this.#o.clock.now();
    return now;
  }
}

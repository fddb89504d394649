/**
 * Time as every cdktr process sees it: the current instant and one-shot timers. Injected (the
 * scheduler's cron and catch-up, the principal's leases, heartbeats and long-polls) so that time
 * logic is tested on fake time ({@link ManualClock}) without sleeping.
 */

/** An opaque timer handle returned by {@link Clock.setTimer}. */
export type TimerHandle = unknown;

/** A source of the current time and of one-shot timers. */
export interface Clock {
  /** Current time, epoch milliseconds. */
  now(): number;
  /**
   * Call `fn` once after about `delayMs`. Implementations may fire EARLY (the system clock
   * clamps delays to Node's 2^31-1 ms limit); callers re-check the time when woken.
   */
  setTimer(fn: () => void, delayMs: number): TimerHandle;
  /** Cancel a timer; unknown or fired handles are ignored. */
  clearTimer(handle: TimerHandle): void;
}

/** Node's largest timeout; longer delays fire at once. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** The real clock: `Date.now()` and `setTimeout` (delays clamped to {@link MAX_TIMER_DELAY_MS}). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, delayMs) => setTimeout(fn, Math.min(Math.max(0, delayMs), MAX_TIMER_DELAY_MS)),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface ManualTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to: {@link ManualClock.advance} fires due timers in time
 * order and lets promises settle between them. For tests.
 */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: ManualTimer[] = [];

  /** @param start initial time, epoch ms or a Date @default 2026-01-01T00:00:00Z */
  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.#now = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, delayMs: number): TimerHandle {
    const timer = { id: this.#nextId++, at: this.#now + Math.max(0, delayMs), fn };
    this.#timers.push(timer);
    return timer.id;
  }

  clearTimer(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Number of pending timers. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Let pending promise callbacks and immediates run (a few macrotask turns). */
  async settle(turns = 10): Promise<void> {
    for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
  }

  /**
   * Jump to `t` (epoch ms or Date) at once, backwards too, like a wall clock being set; fires no
   * timer (the next {@link advance} fires what is due by then).
   */
  setNow(t: number | Date): void {
    this.#now = typeof t === "number" ? t : t.getTime();
  }

  /** Move time forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.#now + ms);
  }

  /** Move time forward to `t` (epoch ms or Date), firing due timers in order. */
  async advanceTo(t: number | Date): Promise<void> {
    const target = typeof t === "number" ? t : t.getTime();
    await this.settle();
    for (;;) {
      let first: ManualTimer | undefined;
      for (const timer of this.#timers) {
        if (
          timer.at <= target &&
          (first === undefined || timer.at < first.at || (timer.at === first.at && timer.id < first.id))
        )
          first = timer;
      }
      if (first === undefined) break;
      this.#timers = this.#timers.filter((x) => x !== first);
      if (first.at > this.#now) this.#now = first.at;
      first.fn();
      await this.settle();
    }
    if (target > this.#now) this.#now = target;
    await this.settle();
  }
}

/** ISO-8601 UTC with milliseconds (the form of every instant on the wire) of epoch ms `ms`. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

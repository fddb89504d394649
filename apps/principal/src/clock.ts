/** A source of "now" in epoch milliseconds; injected so time logic can run on fake time. */
export interface Clock {
  now(): number;
}

/** The real wall clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to; for unit tests of leases and heartbeats. */
export class ManualClock implements Clock {
  private t: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  /** Move forward by `ms`. */
  advance(ms: number): void {
    this.t += ms;
  }
  /** Jump to `t` (epoch ms). */
  set(t: number): void {
    this.t = t;
  }
}

/** ISO-8601 UTC with milliseconds, as every record on the wire carries. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

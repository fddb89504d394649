import type { Clock, TimerHandle } from "@cdktr/protocol";

/** A repeating timer started by {@link every}. */
export interface RepeatingTimer {
  /** Cancel the timer; idempotent. */
  stop(): void;
}

/**
 * Call `fn` every `periodMs` on `clock` (first call one period from now) until stopped: the
 * principal's periodic work (lease and heartbeat checks, retention, the workflow rescan) runs on
 * the injected clock, so tests drive it with `ManualClock.advance` instead of sleeping. The next
 * call is armed before `fn` runs, so a throwing `fn` does not stop the timer.
 */
export function every(clock: Clock, periodMs: number, fn: () => void): RepeatingTimer {
  let handle: TimerHandle | null = null;
  let stopped = false;
  const arm = (): void => {
    handle = clock.setTimer(() => {
      if (stopped) return;
      arm();
      fn();
    }, periodMs);
  };
  arm();
  return {
    stop() {
      stopped = true;
      if (handle !== null) clock.clearTimer(handle);
      handle = null;
    },
  };
}

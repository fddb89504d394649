/**
 * A wake-up signal shared by the agent's loops: a heartbeat or fetch wait ends early
 * when something changed (registration succeeded, a run finished, shutdown began).
 */
import { systemClock, type Clock } from "@cdktr/protocol";

/** `wait(ms)` resolves after `ms`, or earlier on the next {@link Notifier.notify}. */
export class Notifier {
  readonly #clock: Clock;
  #waiters: (() => void)[] = [];

  /** @param clock timers of the waits @default systemClock */
  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  /** Wake every pending {@link wait} now. */
  notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves after `ms`, or at the next {@link notify}, whichever comes first. Never rejects. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#clock.clearTimer(t);
        resolve();
      };
      const t = this.#clock.setTimer(() => {
        const i = this.#waiters.indexOf(done);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve();
      }, ms);
      this.#waiters.push(done);
    });
  }

  /**
   * Resolves true once `pred()` holds, re-checked at every {@link notify} and at least every
   * 100 ms; false when it still does not after `timeoutMs`.
   */
  async until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    const end = this.#clock.now() + timeoutMs;
    while (!pred()) {
      const left = end - this.#clock.now();
      if (left <= 0) return false;
      await this.wait(Math.min(100, Math.max(1, left)));
    }
    return true;
  }
}

/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Attempts allowed per key and window. */
  limit: number;
  windowMs: number;
  /** Most keys remembered; the oldest window is forgotten first. */
  maxKeys: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * A fixed-window counter per key (the sign-in attempts of one remote address), bounded in keys.
 */
export class RateLimiter {
  readonly #opts: Required<RateLimiterOptions>;
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(opts: RateLimiterOptions) {
    this.#opts = { now: Date.now, ...opts };
  }

  /**
   * Count one attempt for `key`.
   * @returns 0 when allowed, else the seconds until the window ends (for `Retry-After`)
   */
  take(key: string): number {
    const now = this.#opts.now();
    let w = this.#windows.get(key);
    if (w === undefined || now - w.start >= this.#opts.windowMs) {
      this.#windows.delete(key);
      w = { start: now, count: 0 };
      this.#windows.set(key, w);
      while (this.#windows.size > this.#opts.maxKeys) {
        const oldest = this.#windows.keys().next();
        if (oldest.done === true) break;
        this.#windows.delete(oldest.value);
      }
    }
    w.count++;
    if (w.count <= this.#opts.limit) return 0;
    return Math.max(1, Math.ceil((w.start + this.#opts.windowMs - now) / 1000));
  }
}

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this long. @default 10000 */
  timeoutMs?: number;
  /** Pause between two calls. @default 50 */
  intervalMs?: number;
  /** What is awaited, for the timeout message. @default "condition" */
  what?: string;
}

/**
 * Poll `fn` until it returns a value other than `undefined`/`false`, or throw after `timeoutMs`
 * with `what` in the message. Used to wait for data, never to assert on speed.
 * @throws Error naming `what` (and the last error `fn` threw) when the time is up.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<Exclude<T, undefined | false>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as Exclude<T, undefined | false>;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > end) {
      const suffix = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? "condition"}${suffix}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

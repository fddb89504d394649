/**
 * Exponential backoff with jitter: the one delay rule of every retry loop in cdktr (clients, agents,
 * the scheduler, the built-in listeners), so that a fleet never retries in lock-step.
 */

/** Backoff settings. */
export interface BackoffOptions {
  /** First delay. @default 500 */
  initialMs?: number;
  /** Largest delay. @default 30000 */
  maxMs?: number;
  /** Growth per attempt. @default 2 */
  factor?: number;
}

/**
 * Delay before attempt `attempt` (1-based): `initialMs * factor^(attempt-1)` capped at `maxMs`,
 * then "equal jitter" (half fixed, half random) so a fleet of listeners does not retry in step.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialMs ?? 500;
  const max = options.maxMs ?? 30_000;
  const factor = options.factor ?? 2;
  const base = Math.min(max, initial * factor ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

/**
 * What the built-in listeners of message sources share: which trigger failures mean "try again
 * later", and URLs made safe for logs.
 */

/**
 * Error codes of a failed trigger that mean the principal could not take it now (it is down,
 * busy, or failing over): the event waits at its source and is sent again after a backoff, never
 * refused as poison.
 */
export const RETRYABLE_TRIGGER_CODES: ReadonlySet<string> = new Set([
  "TIMEOUT",
  "UNAVAILABLE",
  "SHUTTING_DOWN",
  "DEADLINE_EXCEEDED",
  "INTERNAL",
  "CLOSED",
]);

/** `url` with its password replaced by `***`, for logs; `(unparseable url)` when it is not a URL. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable url)";
  }
}

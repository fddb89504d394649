/**
 * Errors raised by `@cdktr/events` itself. Errors that come from the principal keep the wire
 * codes of `@cdktr/protocol` (`CdktrError`); these are local to a listener process.
 */

/** A cron expression, timezone or start time that cannot be scheduled. */
export class InvalidScheduleError extends Error {
  /** Stable code for guards: compare `code`, not `instanceof`. */
  readonly code = "INVALID_SCHEDULE" as const;
  /** The workflow the schedule belongs to, when known. */
  readonly workflowId: string | null;

  constructor(message: string, options: { workflowId?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "InvalidScheduleError";
    this.workflowId = options.workflowId ?? null;
  }
}

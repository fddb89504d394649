/**
 * Errors raised by `@cdktr/events` itself. Errors that come from the principal keep the wire
 * codes of `@cdktr/protocol` (`CdktrError`); these are local to a listener process.
 */
import { CodedError } from "@cdktr/protocol";

/** A cron expression, timezone or start time that cannot be scheduled (code `INVALID_SCHEDULE`). */
export class InvalidScheduleError extends CodedError<"INVALID_SCHEDULE"> {
  /** The workflow the schedule belongs to, when known. */
  readonly workflowId: string | null;

  constructor(message: string, options: { workflowId?: string; cause?: unknown } = {}) {
    super("INVALID_SCHEDULE", message, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      ...(options.workflowId === undefined ? {} : { context: { workflowId: options.workflowId } }),
    });
    this.workflowId = options.workflowId ?? null;
  }
}

/**
 * A listener cannot start (code `LISTENER_START_FAILED`): a watched path that does not exist, a
 * webhook port in use... The message names the listener and the resource and says what to fix.
 */
export class ListenerStartError extends CodedError<"LISTENER_START_FAILED"> {
  constructor(message: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super("LISTENER_START_FAILED", message, options);
  }
}

/**
 * A webhook request body larger than the listener's `maxBodyBytes` (code `PAYLOAD_TOO_LARGE`):
 * the listener answers 413 and stops reading. Internal to the webhook listener.
 */
export class BodyTooLarge extends CodedError<"PAYLOAD_TOO_LARGE"> {
  constructor(limit: number) {
    super("PAYLOAD_TOO_LARGE", `request body exceeds ${limit} bytes`, { context: { limit } });
  }
}

/**
 * The webhook listener cannot record a signature in its replay cache (code
 * `REPLAY_CACHE_UNAVAILABLE`): the cache file cannot be written (full disk, permissions) or holds
 * its maximum of live signatures. The listener answers 503 and triggers nothing, rather than
 * accept a signature it could not remember across a restart. Internal to the webhook listener.
 */
export class ReplayCacheError extends CodedError<"REPLAY_CACHE_UNAVAILABLE"> {
  constructor(message: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super("REPLAY_CACHE_UNAVAILABLE", message, options);
  }
}

/**
 * The MQTT listener cannot republish a parked message to its dead-letter topic (code
 * `DEAD_LETTER_UNAVAILABLE`): no connection, no PUBACK in time, or a publish the broker refused.
 * The message stays unacknowledged and is tried again after a backoff. Internal to the MQTT listener.
 */
export class DeadLetterError extends CodedError<"DEAD_LETTER_UNAVAILABLE"> {
  constructor(message: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super("DEAD_LETTER_UNAVAILABLE", message, options);
  }
}

/**
 * Handed to MQTT.js to go on without acknowledging a message (code `NOT_ACKNOWLEDGED`): its run
 * was not accepted, or the connection is closing, so the broker keeps it and redelivers it.
 * Internal to the MQTT listener.
 */
export class NotAcknowledgedError extends CodedError<"NOT_ACKNOWLEDGED"> {
  constructor(message: string) {
    super("NOT_ACKNOWLEDGED", message);
  }
}

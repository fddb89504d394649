/**
 * Errors that cross process boundaries. On the wire an error is always
 * `{ code, message, retryable }`; code is stable, message says what to do.
 */
import { z } from "zod";

/** Every error code that can cross the wire (see docs/protocol.md for each). */
export const ERROR_CODES = [
  // request framing and validation
  "BAD_REQUEST",
  "UNKNOWN_VERB",
  "PROTOCOL_MISMATCH",
  "MESSAGE_TOO_LARGE",
  "DEADLINE_EXCEEDED",
  // domain
  "WORKFLOW_NOT_FOUND",
  "RUN_NOT_FOUND",
  "INVALID_PARAMS",
  "IDEMPOTENCY_CONFLICT",
  "STALE_ASSIGNMENT",
  "INVALID_TRANSITION",
  "AGENT_NOT_REGISTERED",
  // server state
  "SHUTTING_DOWN",
  "INTERNAL",
  // client side only: never sent by a server
  "TIMEOUT",
  "UNAVAILABLE",
  "CLOSED",
] as const;
/** An error code. */
export const ErrorCodeSchema = z.enum(ERROR_CODES);
/** Type of {@link ErrorCodeSchema}. */
export type ErrorCode = z.infer<typeof ErrorCodeSchema>;

/** An error reply body: `{ code, message, retryable }`. */
export const WireErrorSchema = z.object({
  code: ErrorCodeSchema,
  message: z.string(),
  retryable: z.boolean(),
});
/** Type of {@link WireErrorSchema}. */
export type WireError = z.infer<typeof WireErrorSchema>;

/** Codes whose failure may succeed when the same request is sent again later. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "DEADLINE_EXCEEDED",
  "SHUTTING_DOWN",
  "INTERNAL",
  "TIMEOUT",
  "UNAVAILABLE",
]);

/** Whether an error with this code is worth retrying. */
export function isRetryableCode(code: ErrorCode): boolean {
  return RETRYABLE.has(code);
}

/** Base class of every cdktr error: a stable `code`, a message that says what to do. */
export class CdktrError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; retryable?: boolean; context?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CdktrError";
    this.code = code;
    this.retryable = options.retryable ?? isRetryableCode(code);
    this.context = options.context ?? {};
  }

  /** The `{ code, message, retryable }` form sent on the wire. */
  toWire(): WireError {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }

  static fromWire(error: WireError): CdktrError {
    return new CdktrError(error.code, error.message, { retryable: error.retryable });
  }
}

/** Type guard on the code, not on `instanceof` (errors may come from another copy of this package). */
export function isCdktrError(e: unknown, code?: ErrorCode): e is CdktrError {
  if (typeof e !== "object" || e === null) return false;
  const c = (e as { code?: unknown }).code;
  if (typeof c !== "string" || !(ERROR_CODES as readonly string[]).includes(c)) return false;
  return code === undefined || c === code;
}

/** Normalise anything caught into a CdktrError (`INTERNAL` for unknown errors). */
export function toCdktrError(e: unknown): CdktrError {
  if (e instanceof CdktrError) return e;
  if (isCdktrError(e)) {
    const { code, message, retryable } = e as unknown as WireError;
    return new CdktrError(code, message, { retryable });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new CdktrError("INTERNAL", `internal error: ${message}`, { cause: e });
}

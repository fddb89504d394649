/**
 * The errors of cdktr: {@link CodedError}, the base of every error a cdktr package raises (a
 * stable `code`, a message that says what to do, `context`, `cause`), and {@link CdktrError},
 * the errors that cross process boundaries. On the wire an error is always
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
  // security
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "KEY_IN_USE",
  "KEY_NOT_FOUND",
  // server state
  "SHUTTING_DOWN",
  "RESOURCE_EXHAUSTED",
  "STORAGE_FULL",
  "STORAGE_UNAVAILABLE",
  "NOT_LEADER",
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

/**
 * The three endpoints of a principal as its clients reach them (`tcp://host:port`): the API
 * (5561), log ingest (5562) and publish (5563). Advertised by every principal for the current
 * leader in `ping`, `registerAgent` and `NOT_LEADER` replies, so a client that knows only a list
 * of API endpoints finds the other two.
 */
export const PrincipalEndpointsSchema = z.object({
  api: z.string().min(1).max(512),
  logs: z.string().min(1).max(512),
  publish: z.string().min(1).max(512),
});
/** Type of {@link PrincipalEndpointsSchema}. */
export type AdvertisedEndpoints = z.infer<typeof PrincipalEndpointsSchema>;

/**
 * An error reply body: `{ code, message, retryable }`, plus `leader` on a `NOT_LEADER` error
 * (the current leader's endpoints, absent while no principal leads).
 */
export const WireErrorSchema = z.object({
  code: ErrorCodeSchema,
  message: z.string(),
  retryable: z.boolean(),
  leader: PrincipalEndpointsSchema.optional(),
});
/** Type of {@link WireErrorSchema}. */
export type WireError = z.infer<typeof WireErrorSchema>;

/** Codes whose failure may succeed when the same request is sent again later. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "DEADLINE_EXCEEDED",
  "SHUTTING_DOWN",
  "RESOURCE_EXHAUSTED",
  "STORAGE_FULL",
  "STORAGE_UNAVAILABLE",
  "NOT_LEADER",
  "INTERNAL",
  "TIMEOUT",
  "UNAVAILABLE",
]);

/** Whether an error with this code is worth retrying. */
export function isRetryableCode(code: ErrorCode): boolean {
  return RETRYABLE.has(code);
}

/** Options of {@link CodedError}. */
export interface CodedErrorOptions {
  /** The error this one wraps. */
  cause?: unknown;
  /** Ids and values that locate the failure (`workflowId`, `runId`, `file`...). */
  context?: Record<string, unknown>;
}

/**
 * Base class of every error cdktr raises: a stable `code` that guards compare (never
 * `instanceof`: errors may come from another copy of a package), a message that says what to do,
 * `context` fields naming the place, and the `cause`. Local errors (config, data directory, CLI
 * usage, DAG plans) extend it with their own codes; errors that cross the wire are
 * {@link CdktrError}s.
 *
 * @example
 * class LockError extends CodedError<"DATA_DIR_LOCKED"> {}
 * throw new LockError("DATA_DIR_LOCKED", "another agent holds /data: stop it or pick another dir", { context: { dir } });
 */
export class CodedError<C extends string = string> extends Error {
  readonly code: C;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: C, message: string, options: CodedErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
  }
}

/**
 * A cdktr API called against its contract: a programming error, not a runtime failure.
 * `INVALID_ARGUMENT` (e.g. a verb that is not in the table) or `INVALID_STATE` (e.g. binding a
 * server twice); the message names the call.
 */
export class UsageError extends CodedError<"INVALID_ARGUMENT" | "INVALID_STATE"> {}

/**
 * What {@link coerceError} makes of a thrown value that is not an `Error` (a string, a plain
 * object, `null`...): its text as the message, the value itself as `cause`. The code is the
 * value's own `code` (a string or number) when it had one (`{ code: "ENOENT", message }`), else
 * `THROWN_VALUE`.
 */
export class ThrownValueError extends CodedError<string> {
  constructor(message: string, value: unknown, code = "THROWN_VALUE") {
    super(code, message, { cause: value });
  }
}

/**
 * Anything caught, as an `Error`: errors pass through; other thrown values (strings, plain
 * objects, `null`) become a {@link ThrownValueError} whose message describes them. Use it in every
 * `catch (e: unknown)` instead of `String(e)`.
 */
export function coerceError(e: unknown): Error {
  if (e instanceof Error) return e;
  if (typeof e === "object" && e !== null && typeof (e as { message?: unknown }).message === "string") {
    const code = (e as { code?: unknown }).code;
    const message = (e as { message: string }).message;
    return typeof code === "string" || typeof code === "number"
      ? new ThrownValueError(message, e, String(code))
      : new ThrownValueError(message, e);
  }
  let text: string;
  try {
    text = typeof e === "string" ? e : (JSON.stringify(e) ?? typeof e);
  } catch {
    text = Object.prototype.toString.call(e);
  }
  return new ThrownValueError(text, e);
}

/** The message of anything caught (see {@link coerceError}). */
export function errorMessage(e: unknown): string {
  return coerceError(e).message;
}

/** Error crossing the wire: a code of {@link ERROR_CODES}, `retryable`, `{ code, message, retryable }` on the wire. */
export class CdktrError extends CodedError<ErrorCode> {
  readonly retryable: boolean;
  /** On `NOT_LEADER`: the leader's endpoints, when a leader is known. */
  readonly leader: AdvertisedEndpoints | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      cause?: unknown;
      retryable?: boolean;
      context?: Record<string, unknown>;
      leader?: AdvertisedEndpoints | undefined;
    } = {},
  ) {
    super(code, message, options);
    this.retryable = options.retryable ?? isRetryableCode(code);
    this.leader = options.leader;
  }

  /** The `{ code, message, retryable, leader? }` form sent on the wire. */
  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.leader !== undefined) wire.leader = this.leader;
    return wire;
  }

  /** The error a `{ code, message, retryable, leader? }` reply stands for. */
  static fromWire(error: WireError): CdktrError {
    return new CdktrError(error.code, error.message, { retryable: error.retryable, leader: error.leader });
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
  return new CdktrError("INTERNAL", `internal error: ${errorMessage(e)}`, { cause: e });
}

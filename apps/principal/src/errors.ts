/**
 * Errors of the principal. Local ones (start-up, cursors) are {@link CodedError} subclasses with
 * stable codes; the wire errors the principal answers with are built here once so every place
 * (API handlers, dispatcher, store, state rules) says the same thing.
 */
import { CdktrError, CodedError, type KeyIdentity } from "@cdktr/protocol";

/** Stable codes of {@link PrincipalStartError}. */
export type PrincipalStartErrorCode =
  | "ALREADY_STARTED"
  | "DATABASE_UNAVAILABLE"
  | "SOCKET_UNAVAILABLE"
  | "KEYS_UNAVAILABLE";

/**
 * The principal cannot start: `start()` was called twice, the database cannot be opened, a
 * socket cannot be bound, or the keys directory cannot be created, written or read. The message
 * names the setting to change (`CDKTR_DB_PATH`, the port variable, `CDKTR_KEYS_DIR`); `main` logs
 * it and exits 1.
 */
export class PrincipalStartError extends CodedError<PrincipalStartErrorCode> {}

/**
 * The database was written by a newer principal (`SCHEMA_TOO_NEW`: its schema version is above
 * the last migration this code knows): upgrade cdktr or point `CDKTR_DB_PATH` /
 * `CDKTR_DATABASE_URL` elsewhere; or (PostgreSQL, `NO_SCHEMA`) the schema the connection's
 * `search_path` names does not exist.
 */
export class SchemaVersionError extends CodedError<"SCHEMA_TOO_NEW" | "NO_SCHEMA"> {}

/**
 * A `listRuns`/`queryLogs` cursor could not be decoded (answered as `BAD_REQUEST`). Thrown in the
 * read worker too, so it carries nothing but its message.
 */
export class BadCursorError extends CodedError<"BAD_CURSOR"> {
  constructor(message: string) {
    super("BAD_CURSOR", message);
  }
}

/** Whether `e` is a {@link BadCursorError} (checked by code, not `instanceof`). */
export function isBadCursorError(e: unknown): e is BadCursorError {
  return e instanceof Error && (e as { code?: unknown }).code === "BAD_CURSOR";
}

/**
 * `RUN_NOT_FOUND` for a run id nobody knows, pointing at `cdktr runs`; with `visibleTo`, for a run
 * that key may not read (another key's run looks like no run at all: run ids are not an oracle).
 */
export function runNotFound(runId: string, visibleTo: KeyIdentity | null = null): CdktrError {
  const message =
    visibleTo === null
      ? `no run \`${runId}\`: \`cdktr runs\` lists recent runs`
      : `no run \`${runId}\` among the runs key \`${visibleTo.name}\` triggered (a ${visibleTo.role} key reads only its own runs): \`cdktr runs\` lists them`;
  return new CdktrError("RUN_NOT_FOUND", message, { context: { runId } });
}

/** `WORKFLOW_NOT_FOUND` for a workflow id that is not loaded, pointing at `cdktr workflows`. */
export function workflowNotFound(workflowId: string): CdktrError {
  return new CdktrError("WORKFLOW_NOT_FOUND", `no workflow \`${workflowId}\`: \`cdktr workflows\` lists the ids`, {
    context: { workflowId },
  });
}

/**
 * `IDEMPOTENCY_CONFLICT`: an idempotency key reused for another workflow or other params
 * (`params` as canonical JSON), naming the run that has it.
 */
export function idempotencyConflict(key: string, runId: string, workflowId: string, params: string): CdktrError {
  return new CdktrError(
    "IDEMPOTENCY_CONFLICT",
    `idempotency key \`${key}\` was already used for run ${runId} of workflow \`${workflowId}\` with params ${params}: use a new key for a different trigger`,
    { context: { idempotencyKey: key, runId } },
  );
}

/** `STALE_ASSIGNMENT`: the assignment an agent holds is no longer valid (`why` says how). */
export function staleAssignment(runId: string, why: string): CdktrError {
  return new CdktrError("STALE_ASSIGNMENT", `assignment of run ${runId} is no longer valid (${why}): do not start it`, {
    context: { runId },
  });
}

/** `STALE_ASSIGNMENT`: an agent reports on a run another agent (or none) holds. */
export function notHeldBy(runId: string, agentId: string): CdktrError {
  return new CdktrError("STALE_ASSIGNMENT", `run ${runId} is not held by agent \`${agentId}\`: stop working on it`, {
    context: { runId },
  });
}

/** `INVALID_TRANSITION`: a run report asks for a move the run state machine refuses. */
export function invalidRunTransition(runId: string, from: string, to: string): CdktrError {
  return new CdktrError("INVALID_TRANSITION", `run ${runId} cannot go from ${from} to ${to}`, { context: { runId } });
}

/** `SHUTTING_DOWN` from a component that is closing; `retry` says where to retry. */
export function shuttingDown(retry: string): CdktrError {
  return new CdktrError("SHUTTING_DOWN", `the principal is shutting down: ${retry}`);
}

/** `PERMISSION_DENIED`: the caller's key may not do this (`why` says what and which key may). */
export function permissionDenied(why: string, context: Record<string, unknown> = {}): CdktrError {
  return new CdktrError("PERMISSION_DENIED", why, { context });
}

/** `PERMISSION_DENIED`: a report about a run from a key that does not hold its lease. */
export function notLeasedTo(runId: string, keyName: string): CdktrError {
  return permissionDenied(
    `run ${runId} is not leased to key \`${keyName}\`: only the key that fetched it may report on it`,
    { runId, key: keyName },
  );
}

/**
 * `STORAGE_FULL` (retryable): the disk of the database is full, so nothing of the request was
 * stored; it succeeds again once space is freed there (the principal notices by itself).
 */
export function storageFull(dbPath: string, cause?: unknown): CdktrError {
  return new CdktrError(
    "STORAGE_FULL",
    `the principal's disk is full (database ${dbPath}): nothing of this request was stored; free space on that file system (or move CDKTR_DB_PATH) and retry`,
    { retryable: true, cause, context: { dbPath } },
  );
}

/**
 * `STORAGE_UNAVAILABLE` (retryable): the principal cannot reach its PostgreSQL database, so
 * nothing of the request was stored (or, when the connection broke during the commit, it may have
 * been: every write is idempotent, so a retry is safe); it reconnects by itself with backoff.
 */
export function storageUnavailable(database: string, cause?: unknown): CdktrError {
  return new CdktrError(
    "STORAGE_UNAVAILABLE",
    `the principal cannot reach its database (${database}): the request was not acknowledged; retry (the principal reconnects by itself; \`cdktr ping\` says degraded meanwhile)`,
    { retryable: true, cause, context: { database } },
  );
}

/**
 * `RESOURCE_EXHAUSTED` (retryable): an agent already has as many log lines (or bytes) waiting to
 * be stored as the principal holds for one agent; the batch was not taken: send it again after a
 * pause.
 */
export function logIngestBusy(agentId: string, pending: { lines: number; bytes: number }, limit: string): CdktrError {
  return new CdktrError(
    "RESOURCE_EXHAUSTED",
    `agent \`${agentId}\` has ${pending.lines} log lines (${pending.bytes} bytes) waiting to be stored, the most the principal holds per agent (${limit}): send this batch again after a pause`,
    { retryable: true, context: { agentId } },
  );
}

/**
 * `RESOURCE_EXHAUSTED` (retryable): the triggers of `runWorkflows` batches a key (or, without
 * authentication, a connection) has in progress would exceed its bound; nothing of this batch was
 * run: send it again (with the same idempotency keys) after a pause, or in smaller batches.
 */
export function batchTriggersBusy(who: string, inFlight: number, batch: number, limit: number): CdktrError {
  return new CdktrError(
    "RESOURCE_EXHAUSTED",
    `${who} has ${inFlight} triggers of runWorkflows batches in progress; ${batch} more would pass the bound of ${limit} (CDKTR_MAX_REQUESTS_IN_FLIGHT_PER_KEY): send this batch again after a pause, or in smaller batches`,
    { retryable: true, context: { inFlight, batch, limit } },
  );
}

/**
 * The principal's persistence boundary. Everything the API layer needs from a database goes
 * through this async interface, so a PostgreSQL store can be added next to the SQLite one
 * (`./sqlite/`) without touching the API layer.
 *
 * Contract for implementations:
 * - every mutating call is durable when its promise resolves (the API replies only after it);
 * - mutations are applied in call order, except that log lines (`insertLogs`) and retention
 *   (`prune`) may be applied after control mutations (runs, tasks, keys) called later: they have a
 *   lane of their own so a log flood never delays a trigger (the SQLite store groups the calls of
 *   one event-loop tick into one transaction, each call in its own savepoint);
 * - a full disk fails a mutation with the retryable `STORAGE_FULL` and shows in {@link Store.problems};
 * - state rules live in `../runs/state-machine.ts` and are checked inside the transaction, so the
 *   database stays the truth even when the in-memory queue is behind.
 */
import type { LeaseClaim } from "../runs/state-machine.js";
import type {
  KeyRecord,
  KeyRole,
  LogLine,
  Params,
  Reason,
  RunRecord,
  TaskRunRecord,
  Upstream,
  WorkflowDefinition,
  ReplyOf,
  ApiVerbs,
  ParsedRequestOf,
} from "@cdktr/protocol";
import type { ReusedTask } from "./rows.js";

export type { ReusedTask } from "./rows.js";

/** Input of {@link Store.createRun}. */
export interface CreateRunInput {
  /** Id for the new run (a ULID), used only when a run is created. */
  runId: string;
  /** The definition the run executes (snapshotted by hash). */
  workflow: WorkflowDefinition;
  /** Resolved (validated, coerced, defaulted) parameters. */
  params: Params;
  /** Parameters as the caller sent them: compared on idempotency key reuse. */
  requestParams: Record<string, unknown>;
  idempotencyKey: string | null;
  /**
   * The scope the idempotency key lives in: the caller key's scope, `""` without authentication.
   * The same key in two scopes names two runs.
   */
  idempotencyScope: string;
  source: string;
  /** Name of the key that triggered the run; null without authentication. */
  triggeredBy: string | null;
  scheduledFor: string | null;
  /** The finished run whose outcome this trigger follows (chaining), checked by the caller. */
  upstream?: Upstream | null;
  /** Initial message (e.g. a requeued run names the crashed one). */
  message?: string | null;
  /**
   * A retry (`runWorkflow` with `retryFrom`, checked by the caller): the source run, kept as
   * `retryOf`, and the tasks taken as done, written COMPLETED with `reusedFrom` in the same
   * transaction as the run (unless the run is created SKIPPED).
   */
  retry?: RetryInput | null;
}

/** The retry part of {@link CreateRunInput}. */
export interface RetryInput {
  /** The source run's id. */
  retryOf: string;
  /** The tasks taken as done, copied from the source run's task records. */
  reused: readonly ReusedTask[];
}

/** Result of {@link Store.createRun}. */
export interface CreateRunResult {
  run: RunRecord;
  /** The key was seen before; `run` is the first run. */
  duplicate: boolean;
}

/** A run that is not terminal, with what dispatch needs to know. */
export interface ActiveRun {
  run: RunRecord;
  workflow: WorkflowDefinition;
  token: string | null;
  /** Name of the key that fetched the current assignment; null when unassigned or without authentication. */
  leaseKey: string | null;
  /** Epoch ms. */
  leaseExpiresAt: number | null;
  cancelRequested: boolean;
  /** The tasks of a retry taken as done (sent with the assignment); empty for other runs. */
  reusedTasks: string[];
}

/** A key to enrol (its public half only). */
export interface NewKey {
  name: string;
  role: KeyRole;
  scope: string;
  /** Workflows a trigger or scheduler key may run; null = any. */
  workflows: string[] | null;
  publicKey: string;
}

/** Result of {@link Store.enrollKey}. */
export interface EnrollKeyResult {
  key: KeyRecord;
  /** False when the same key was enrolled already (a resent request). */
  created: boolean;
}

/** Result of {@link Store.revokeKey}. */
export interface RevokeKeyResult {
  key: KeyRecord;
  /** False when it was revoked already. */
  revoked: boolean;
}

/**
 * Log lines and who sends them: with authentication on, the key behind the connection and the
 * assignment token of each run (runId -> token).
 */
export interface LogClaim {
  keyName: string;
  tokens: Readonly<Record<string, string>>;
}

/** Extra conditions of a run listing that the caller's role imposes (not part of the request). */
export interface RunListScope {
  /** Only runs triggered by this key. */
  triggeredBy?: string;
}

/** A status report from an agent about a run. */
export type RunStatusUpdate = ParsedRequestOf<ApiVerbs, "runStatus">;
/** A status report from an agent about a task. */
export type TaskStatusUpdate = ParsedRequestOf<ApiVerbs, "taskStatus">;

/** Result of a status update; `applied` false means recorded in history only. */
export interface RunUpdateResult {
  applied: boolean;
  run: RunRecord;
  /** Tasks that changed as a side effect (e.g. PENDING tasks cancelled with the run). */
  tasks: TaskRunRecord[];
}

/** Result of a task status update. */
export interface TaskUpdateResult {
  applied: boolean;
  run: RunRecord;
  task: TaskRunRecord | null;
}

/** Result of {@link Store.crashRun}. */
export interface CrashResult {
  run: RunRecord;
  tasks: TaskRunRecord[];
  /** The replacement run when the workflow says `on_agent_lost: requeue`. */
  requeued: RunRecord | null;
}

/** Result of {@link Store.cancelRun}. */
export interface CancelResult {
  run: RunRecord;
  /** False when the run had already finished. */
  cancelled: boolean;
  /** True when an agent holds the run (ASSIGNED or RUNNING) and has to stop it. */
  agentMustStop: boolean;
  tasks: TaskRunRecord[];
}

/** Result of {@link Store.insertLogs}. */
export interface InsertLogsResult {
  stored: number;
  duplicates: number;
  /** The lines that were new (to republish). */
  inserted: LogLine[];
}

/** What {@link Store.prune} removed. */
export interface PruneResult {
  runs: number;
  logs: number;
  idempotencyKeys: number;
}

/** Retention settings in days; 0 keeps forever. */
export interface RetentionPolicy {
  runDays: number;
  logDays: number;
  idempotencyDays: number;
}

/** Row counts of every table (tests and diagnostics). */
export type TableCounts = Record<string, number>;

/** The principal's store. */
export interface Store {
  /** Non-terminal runs (QUEUED, ASSIGNED, RUNNING) in id order, to rebuild the queue at start. */
  loadActiveRuns(): Promise<ActiveRun[]>;
  /**
   * Create a run, or return the first run of a known idempotency key.
   * @throws CdktrError IDEMPOTENCY_CONFLICT when the key belongs to another workflow or params.
   * Applies the `skip` overlap policy: the run is created SKIPPED when `maxActiveRuns` runs of
   * the workflow are active.
   */
  createRun(input: CreateRunInput): Promise<CreateRunResult>;
  /**
   * QUEUED -> ASSIGNED with a token and lease held by the key `leaseKey` (null without
   * authentication); null when the run is no longer QUEUED.
   */
  assignRun(
    runId: string,
    agentId: string,
    token: string,
    leaseExpiresAt: number,
    leaseKey: string | null,
  ): Promise<RunRecord | null>;
  /** ASSIGNED -> QUEUED when the lease expired (token and lease key cleared); null when the token no longer matches. */
  expireAssignment(runId: string, token: string): Promise<RunRecord | null>;
  /**
   * ASSIGNED -> RUNNING for the agent holding `token` (and, with authentication, the key
   * `keyName` that fetched it); creates a PENDING row per task. `startedAt` (epoch ms, the
   * agent's clock) is recorded as the run's start when given, else the commit time.
   * @throws CdktrError STALE_ASSIGNMENT when the token is not the current one; PERMISSION_DENIED
   * when another key fetched it.
   */
  confirmAssignment(
    runId: string,
    agentId: string,
    token: string,
    taskIds: string[],
    keyName: string | null,
    startedAt?: number,
  ): Promise<{ run: RunRecord; tasks: TaskRunRecord[] }>;
  /**
   * Apply an agent's run report; with `claim` (authentication on) only from the key holding the
   * run's lease with its token (`checkLeaseClaim`).
   * @throws CdktrError RUN_NOT_FOUND, INVALID_TRANSITION, STALE_ASSIGNMENT, PERMISSION_DENIED
   */
  updateRunStatus(update: RunStatusUpdate, claim: LeaseClaim | null): Promise<RunUpdateResult>;
  /**
   * Apply an agent's task report (same `claim` rule as {@link updateRunStatus}).
   * @throws CdktrError RUN_NOT_FOUND, INVALID_TRANSITION, STALE_ASSIGNMENT, PERMISSION_DENIED
   */
  updateTaskStatus(update: TaskStatusUpdate, claim: LeaseClaim | null): Promise<TaskUpdateResult>;
  /** Cancel: QUEUED -> CANCELLED now; ASSIGNED/RUNNING -> flagged for the agent. @throws RUN_NOT_FOUND */
  cancelRun(runId: string): Promise<CancelResult>;
  /**
   * Mark an ASSIGNED/RUNNING run CRASHED (and its unfinished tasks); when `requeueRunId` is
   * given, queue a new run with the same params (source `requeue`) and, for a retry, the same
   * `retryOf` and reused tasks. Null when not active.
   */
  crashRun(runId: string, reason: Reason, message: string, requeueRunId: string | null): Promise<CrashResult | null>;
  /** A run and its tasks, or null. Sees every mutation whose promise has resolved. */
  getRun(runId: string): Promise<{ run: RunRecord; tasks: TaskRunRecord[] } | null>;
  /** Paged run listing (answered off the main event loop by the SQLite store), within `scope`. */
  listRuns(req: ParsedRequestOf<ApiVerbs, "listRuns">, scope?: RunListScope): Promise<ReplyOf<ApiVerbs, "listRuns">>;
  /** Paged log query (answered off the main event loop by the SQLite store). */
  queryLogs(req: ParsedRequestOf<ApiVerbs, "queryLogs">): Promise<ReplyOf<ApiVerbs, "queryLogs">>;
  /**
   * Store log lines idempotently on (runId, taskId, seq). With `claim` (authentication on), every
   * run of the batch must exist, be leased to `claim.keyName` and come with its token, and each
   * line must name the run's workflow; otherwise nothing of the batch is stored. An implementation
   * may write a large batch in several transactions (the SQLite store does, in a database file of
   * its own, reading the leases from the main file as last committed), checking the leases again
   * before each: a lease lost in the middle of a batch refuses the rest of it, and the lines
   * stored before stay (they were sent under the lease; a resend counts them as duplicates).
   * @throws CdktrError RUN_NOT_FOUND, PERMISSION_DENIED, STALE_ASSIGNMENT (with a claim only)
   */
  insertLogs(lines: LogLine[], claim: LogClaim | null): Promise<InsertLogsResult>;
  /**
   * Enrol a key. A name may be reused once its key was revoked (the revoked row is replaced);
   * enrolling the same key again is a no-op (`created` false).
   * @throws CdktrError KEY_IN_USE when the name belongs to another enrolled key, or the public key
   * to another key (enrolled or revoked)
   */
  enrollKey(key: NewKey): Promise<EnrollKeyResult>;
  /** Every key, revoked ones included, by name. */
  listKeys(): Promise<KeyRecord[]>;
  /** Revoke a key by name (idempotent); null when no key has that name. */
  revokeKey(name: string): Promise<RevokeKeyResult | null>;
  /** Delete finished runs, logs and idempotency keys older than the policy allows. */
  prune(policy: RetentionPolicy): Promise<PruneResult>;
  /** Row count of every table. */
  counts(): Promise<TableCounts>;
  /**
   * What is wrong with the storage right now, for the health of `ping` (e.g. `"disk full"`);
   * empty when it works. Clears by itself once writes succeed again.
   */
  problems(): string[];
  /** Wait for pending writes, stop workers, close connections. Idempotent. */
  close(): Promise<void>;
}

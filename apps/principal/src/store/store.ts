/**
 * The principal's persistence boundary. Everything the API layer needs from a database goes
 * through this async interface, so a PostgreSQL store can be added next to the SQLite one
 * (`./sqlite/`) without touching the API layer.
 *
 * Contract for implementations:
 * - every mutating call is durable when its promise resolves (the API replies only after it);
 * - mutations are applied in call order (the SQLite store groups the calls of one event-loop
 *   tick into one transaction, each call in its own savepoint);
 * - state rules live in `../runs/state-machine.ts` and are checked inside the transaction, so the
 *   database stays the truth even when the in-memory queue is behind.
 */
import type {
  LogLine,
  Params,
  Reason,
  RunRecord,
  TaskRunRecord,
  WorkflowDefinition,
  ReplyOf,
  ApiVerbs,
  ParsedRequestOf,
} from "@cdktr/protocol";

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
  source: string;
  scheduledFor: string | null;
  /** Initial message (e.g. a requeued run names the crashed one). */
  message?: string | null;
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
  /** Epoch ms. */
  leaseExpiresAt: number | null;
  cancelRequested: boolean;
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
  /** True when the run is RUNNING and the agent has to stop it. */
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
  /** QUEUED -> ASSIGNED with a token and lease; null when the run is no longer QUEUED. */
  assignRun(runId: string, agentId: string, token: string, leaseExpiresAt: number): Promise<RunRecord | null>;
  /** ASSIGNED -> QUEUED when the lease expired; null when the token no longer matches. */
  expireAssignment(runId: string, token: string): Promise<RunRecord | null>;
  /**
   * ASSIGNED -> RUNNING for the agent holding `token`; creates a PENDING row per task.
   * @throws CdktrError STALE_ASSIGNMENT when the token is not the current one.
   */
  confirmAssignment(
    runId: string,
    agentId: string,
    token: string,
    taskIds: string[],
  ): Promise<{ run: RunRecord; tasks: TaskRunRecord[] }>;
  /** Apply an agent's run report. @throws CdktrError RUN_NOT_FOUND, INVALID_TRANSITION */
  updateRunStatus(update: RunStatusUpdate): Promise<RunUpdateResult>;
  /** Apply an agent's task report. @throws CdktrError RUN_NOT_FOUND, INVALID_TRANSITION */
  updateTaskStatus(update: TaskStatusUpdate): Promise<TaskUpdateResult>;
  /** Cancel: QUEUED/ASSIGNED -> CANCELLED now; RUNNING -> flagged for the agent. @throws RUN_NOT_FOUND */
  cancelRun(runId: string): Promise<CancelResult>;
  /**
   * Mark an ASSIGNED/RUNNING run CRASHED (and its unfinished tasks); when `requeueRunId` is
   * given, queue a new run with the same params (source `requeue`). Null when not active.
   */
  crashRun(runId: string, reason: Reason, message: string, requeueRunId: string | null): Promise<CrashResult | null>;
  /** A run and its tasks, or null. Sees every mutation whose promise has resolved. */
  getRun(runId: string): Promise<{ run: RunRecord; tasks: TaskRunRecord[] } | null>;
  /** Paged run listing (answered off the main event loop by the SQLite store). */
  listRuns(req: ParsedRequestOf<ApiVerbs, "listRuns">): Promise<ReplyOf<ApiVerbs, "listRuns">>;
  /** Paged log query (answered off the main event loop by the SQLite store). */
  queryLogs(req: ParsedRequestOf<ApiVerbs, "queryLogs">): Promise<ReplyOf<ApiVerbs, "queryLogs">>;
  /** Store log lines idempotently on (runId, taskId, seq). */
  insertLogs(lines: LogLine[]): Promise<InsertLogsResult>;
  /** Delete finished runs, logs and idempotency keys older than the policy allows. */
  prune(policy: RetentionPolicy): Promise<PruneResult>;
  /** Row count of every table. */
  counts(): Promise<TableCounts>;
  /** Wait for pending writes, stop workers, close connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * What the SQLite and PostgreSQL stores share: the row shapes and their mapping to wire records,
 * the inputs of a few writes, page sizes, and the canonical text of params.
 */
import type {
  KeyRecord,
  KeyRole,
  LogLevel,
  LogLine,
  LogStream,
  Reason,
  RunRecord,
  RunStatus,
  TaskRunRecord,
  TaskStatus,
  Upstream,
} from "@cdktr/protocol";
import { LOG_LEVELS, type ApiVerbs, type ParsedRequestOf } from "@cdktr/protocol";
import type { RunLease } from "../runs/state-machine.js";

/** A `runs` row. */
export interface RunRow {
  run_id: string;
  workflow_id: string;
  workflow_hash: string;
  status: RunStatus;
  source: string;
  idempotency_key: string | null;
  params: string;
  scheduled_for: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  agent_id: string | null;
  reason: string | null;
  message: string | null;
  token: string | null;
  lease_expires_at: number | null;
  cancel_requested: number;
  updated_at: number;
  /** Name of the key that triggered the run; null without authentication. */
  triggered_by: string | null;
  /** Name of the key that fetched the current (or last) assignment; null without authentication. */
  lease_key: string | null;
  /** JSON of the run whose outcome started this one (`Upstream`), or null. */
  upstream: string | null;
  /** The run this one re-runs from its failed tasks (`retryFrom`), or null. */
  retry_of: string | null;
}

/** A `keys` row (public halves only). */
export interface KeyRow {
  name: string;
  role: KeyRole;
  scope: string;
  public_key: string;
  /** JSON array of workflow ids, or null for any. */
  workflows: string | null;
  created_at: number;
  revoked_at: number | null;
}

/** A `task_runs` row. */
export interface TaskRow {
  run_id: string;
  task_id: string;
  status: TaskStatus;
  attempt: number;
  started_at: number | null;
  finished_at: number | null;
  exit_code: number | null;
  signal: string | null;
  reason: string | null;
  message: string | null;
  /** On a retry's task taken as done: the run where it really ran; else null. */
  reused_from: string | null;
}

/** A `logs` row. */
export interface LogRow {
  id: number;
  run_id: string;
  workflow_id: string;
  task_id: string;
  seq: number;
  time: number;
  level: number;
  stream: string;
  line: string;
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Map a `runs` row to the wire record. */
export function runFromRow(r: RunRow): RunRecord {
  return {
    runId: r.run_id,
    workflowId: r.workflow_id,
    status: r.status,
    source: r.source,
    triggeredBy: r.triggered_by,
    idempotencyKey: r.idempotency_key,
    params: JSON.parse(r.params) as RunRecord["params"],
    scheduledFor: isoOrNull(r.scheduled_for),
    upstream: r.upstream === null ? null : (JSON.parse(r.upstream) as Upstream),
    retryOf: r.retry_of ?? null,
    createdAt: new Date(r.created_at).toISOString(),
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
    agentId: r.agent_id,
    reason: r.reason as Reason | null,
    message: r.message,
  };
}

/** Map a `keys` row to the wire record. */
export function keyFromRow(r: KeyRow): KeyRecord {
  return {
    name: r.name,
    role: r.role,
    scope: r.scope,
    workflows: r.workflows === null ? null : (JSON.parse(r.workflows) as string[]),
    publicKey: r.public_key,
    createdAt: new Date(r.created_at).toISOString(),
    revokedAt: isoOrNull(r.revoked_at),
  };
}

/** Map a `task_runs` row to the wire record. */
export function taskFromRow(r: TaskRow): TaskRunRecord {
  return {
    runId: r.run_id,
    taskId: r.task_id,
    status: r.status,
    attempt: r.attempt,
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
    exitCode: r.exit_code,
    signal: r.signal,
    reason: r.reason as Reason | null,
    message: r.message,
    reusedFrom: r.reused_from ?? null,
  };
}

/** Numeric level used in the `logs` table so `level >= ?` filters by minimum level. */
export function levelNumber(level: LogLevel): number {
  return LOG_LEVELS.indexOf(level);
}

/** Map a `logs` row to the wire record. */
export function logFromRow(r: LogRow): LogLine {
  return {
    time: new Date(r.time).toISOString(),
    runId: r.run_id,
    workflowId: r.workflow_id,
    taskId: r.task_id,
    stream: r.stream as LogStream,
    level: LOG_LEVELS[r.level] ?? "info",
    seq: r.seq,
    line: r.line,
  };
}

/** One line of the append-only `status_history` table. */
export interface HistoryEntry {
  runId: string;
  taskId?: string | null;
  attempt?: number | null;
  from: RunStatus | TaskStatus | null;
  to: RunStatus | TaskStatus;
  /** When it happened (the agent's time for reports). @default the commit time */
  time?: number;
  /** False for a report recorded but not applied. @default true */
  applied?: boolean;
  agentId?: string | null;
  reason?: string | null;
  message?: string | null;
}

/** The columns of a new `runs` row that are not defaulted. */
export interface NewRun {
  runId: string;
  workflowId: string;
  hash: string;
  status: RunStatus;
  source: string;
  /** Name of the key that triggered it (null without authentication). */
  triggeredBy: string | null;
  key: string | null;
  params: string;
  scheduledFor: number | null;
  /** JSON of the run's `Upstream`, or null. */
  upstream: string | null;
  /** The run this one re-runs from its failed tasks, or null. */
  retryOf: string | null;
  finishedAt: number | null;
  reason: string | null;
  message: string | null;
}

/** The lease of a `runs` row. */
export function leaseOf(row: RunRow): RunLease {
  return { runId: row.run_id, token: row.token, leaseKey: row.lease_key };
}

/** JSON with object keys sorted, so equal params compare equal as text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Default page sizes. */
export const DEFAULT_RUN_PAGE = 100;
/** Default `queryLogs` page size (oldest first). */
export const DEFAULT_LOG_PAGE = 1000;
/** Upper bound of a log page in (worst-case UTF-8) bytes; the reply limit is 32 MiB. */
export const MAX_LOG_PAGE_BYTES = 8 * 1024 * 1024;

/** A `listRuns` request, with the condition the caller's role adds (only the runs a key triggered). */
export type RunListQuery = ParsedRequestOf<ApiVerbs, "listRuns"> & { triggeredBy?: string };

/**
 * Key of a definition snapshot: the content hash alone is not enough, two files with the same
 * text are two workflows.
 */
export function snapshotKey(wf: { id: string; hash: string }): string {
  return `${wf.id}@${wf.hash}`;
}

/** The `runs` row a new run starts as (written by both stores' insertRun). */
export function newRunRow(now: number, r: NewRun): RunRow {
  return {
    run_id: r.runId,
    workflow_id: r.workflowId,
    workflow_hash: r.hash,
    status: r.status,
    source: r.source,
    idempotency_key: r.key,
    params: r.params,
    scheduled_for: r.scheduledFor,
    created_at: now,
    started_at: null,
    finished_at: r.finishedAt,
    agent_id: null,
    reason: r.reason,
    message: r.message,
    token: null,
    lease_expires_at: null,
    cancel_requested: 0,
    updated_at: now,
    triggered_by: r.triggeredBy,
    lease_key: null,
    upstream: r.upstream,
    retry_of: r.retryOf,
  };
}

/**
 * A task a new retry run takes as done, copied from the source run's task record (times in epoch
 * ms); written COMPLETED with `reused_from` in the run's own transaction.
 */
export interface ReusedTaskRow {
  taskId: string;
  /** The run where the task really ran. */
  reusedFrom: string;
  attempt: number;
  exitCode: number | null;
  startedAt: number | null;
  finishedAt: number | null;
}

/** The history line of a task taken as done by a retry. */
export function reusedTaskHistory(runId: string, t: ReusedTaskRow): HistoryEntry {
  return {
    runId,
    taskId: t.taskId,
    attempt: t.attempt,
    from: null,
    to: "COMPLETED",
    message: `reused: completed in run ${t.reusedFrom}`,
  };
}

/** The tasks a retry takes as done, as rows (none without a retry). */
export function reusedTaskRows(input: {
  retry?: { retryOf: string; reused: readonly ReusedTask[] } | null | undefined;
}): ReusedTaskRow[] {
  const reused = input.retry?.reused ?? [];
  const ms = (iso: string | null): number | null => (iso === null ? null : Date.parse(iso));
  return reused.map((t) => ({
    taskId: t.taskId,
    reusedFrom: t.reusedFrom,
    attempt: t.attempt,
    exitCode: t.exitCode,
    startedAt: ms(t.startedAt),
    finishedAt: ms(t.finishedAt),
  }));
}

/** A task a retry takes as done, as the API layer hands it to `createRun` (wire times). */
export interface ReusedTask {
  taskId: string;
  /** The run where the task really ran (the source run, or the run the source itself reused it from). */
  reusedFrom: string;
  attempt: number;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A reused task's row as the input of another run's copy. */
export function reusedRowOf(t: TaskRow): ReusedTaskRow {
  return {
    taskId: t.task_id,
    reusedFrom: t.reused_from ?? "",
    attempt: t.attempt,
    exitCode: t.exit_code,
    startedAt: t.started_at,
    finishedAt: t.finished_at,
  };
}

/** Task ids by run id, from `(run_id, task_id)` rows (the reused tasks of the active runs). */
export function reusedByRun(rows: readonly { run_id: string; task_id: string }[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const list = out.get(r.run_id);
    if (list === undefined) out.set(r.run_id, [r.task_id]);
    else list.push(r.task_id);
  }
  return out;
}

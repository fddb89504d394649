// Records as the dashboard API sends them (see DASHBOARD-API.md / @cdktr/protocol).

export const RUN_STATUSES = [
  "QUEUED",
  "ASSIGNED",
  "RUNNING",
  "COMPLETED",
  "FAILED",
  "CRASHED",
  "CANCELLED",
  "SKIPPED",
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_RUN_STATUSES: readonly string[] = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED", "SKIPPED"];
export const RETRYABLE_RUN_STATUSES: readonly string[] = ["FAILED", "CRASHED", "CANCELLED"];

export type ParamValue = string | number | boolean;

export interface RunRecord {
  runId: string;
  workflowId: string;
  status: string;
  source: string;
  triggeredBy: string | null;
  idempotencyKey: string | null;
  params: Record<string, ParamValue>;
  scheduledFor: string | null;
  upstream?: { runId: string; workflowId: string; status: string } | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  agentId: string | null;
  reason: string | null;
  message: string | null;
  retryOf?: string | null;
}

export interface TaskRunRecord {
  runId: string;
  taskId: string;
  status: string;
  attempt: number;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  message: string | null;
  reusedFrom?: string | null;
}

export interface ParamSpec {
  type: "string" | "number" | "boolean" | "enum";
  values?: ParamValue[];
  required: boolean;
  default?: ParamValue;
  description?: string;
}

export interface TaskDefinition {
  id: string;
  name?: string;
  description?: string;
  depends: string[];
  config?: unknown;
}

export interface WorkflowDefinition {
  id: string;
  name: string;
  description?: string;
  path?: string;
  cron?: string | null;
  schedule?: unknown;
  timezone?: string | null;
  params: Record<string, ParamSpec>;
  tasks: Record<string, TaskDefinition>;
  hash?: string;
  [key: string]: unknown;
}

export interface LogLine {
  time: string;
  runId: string;
  workflowId: string;
  taskId: string;
  stream: string;
  level: string;
  seq: number;
  line: string;
}

export interface AgentRecord {
  agentId: string;
  host: string;
  capacity: number;
  labels: Record<string, string> | string[];
  version: string;
  runningRuns: string[];
  registeredAt: string;
  lastHeartbeatAt: string;
  status: string;
  problems?: string[];
}

export interface Session {
  signedIn: boolean;
  name: string | null;
  role: "reader" | "operator" | null;
  canWrite: boolean;
  signInRequired: boolean;
}

export interface RunsPage {
  runs: RunRecord[];
  nextCursor: string | null;
}

export interface RunDetail {
  run: RunRecord;
  tasks: TaskRunRecord[];
  workflow: WorkflowDefinition | null;
}

export interface LogsPage {
  lines: LogLine[];
  nextCursor: string | null;
}

export interface WorkflowSummary {
  id: string;
  name: string;
  description?: string;
  cron: string | null;
  timezone: string | null;
  paramCount: number;
  taskCount: number;
  nextOccurrences: string[];
  lastRuns: { runId: string; status: string; createdAt: string }[];
}

export interface WorkflowLoadError {
  file: string;
  line?: number | null;
  column?: number | null;
  path?: string | null;
  message: string;
}

export interface WorkflowsList {
  workflows: WorkflowSummary[];
  errors: WorkflowLoadError[];
}

export interface WorkflowDetail {
  workflow: WorkflowDefinition;
  nextOccurrences: string[];
  lastRuns: RunRecord[];
}

export interface TriggerResult {
  runId: string;
  duplicate: boolean;
  skipped: boolean;
  status: string;
}

export interface CancelResult {
  runId: string;
  status: string;
  cancelled: boolean;
}

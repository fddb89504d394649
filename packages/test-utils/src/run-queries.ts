/**
 * What every multi-process test asks a principal: trigger a run, wait until it has finished,
 * read all of its logs and all runs of a workflow (following pagination), task states by id.
 */
import {
  isTerminalRunStatus,
  type ApiVerbs,
  type LogLine,
  type PrincipalClient,
  type ReplyOf,
  type RunRecord,
} from "@cdktr/protocol";
import { waitFor } from "@cdktr/test-base";

/** The reply of `getRun`: the run and its tasks. */
export type RunWithTasks = ReplyOf<ApiVerbs, "getRun">;

/** Trigger `workflowId` with `source: "test"`; resolves with the run id. */
export async function triggerRun(
  client: PrincipalClient,
  workflowId: string,
  params?: Record<string, string | number | boolean>,
): Promise<string> {
  const r = await client.runWorkflow({ workflowId, source: "test", ...(params === undefined ? {} : { params }) });
  return r.runId;
}

/**
 * Poll until the run is in a terminal state; resolves with the run and its tasks.
 * @throws Error naming the run when it is still going after `timeoutMs`.
 */
export function waitForRun(client: PrincipalClient, runId: string, timeoutMs = 30_000): Promise<RunWithTasks> {
  return waitFor(
    async () => {
      const r = await client.getRun(runId, { timeoutMs: 2000, retry: false });
      return isTerminalRunStatus(r.run.status) ? r : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `run ${runId} to finish` },
  );
}

/** Every stored log line of a run (optionally of one task), oldest first, following pagination. */
export async function runLogs(client: PrincipalClient, runId: string, taskId?: string): Promise<LogLine[]> {
  const out: LogLine[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await client.queryLogs({
      runId,
      ...(taskId === undefined ? {} : { taskId }),
      since: "2000-01-01T00:00:00.000Z",
      order: "asc",
      limit: 1000,
      ...(cursor === undefined ? {} : { cursor }),
    });
    out.push(...page.lines);
    if (page.nextCursor === null) return out;
    cursor = page.nextCursor;
  }
}

/** Options of {@link workflowRuns}. */
export interface WorkflowRunsOptions {
  /** Only runs that carry a `scheduledFor` (cron occurrences). @default false */
  scheduledOnly?: boolean;
}

/** Every run of `workflowId`, oldest first, following pagination. */
export async function workflowRuns(
  client: PrincipalClient,
  workflowId: string,
  options: WorkflowRunsOptions = {},
): Promise<RunRecord[]> {
  const out: RunRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listRuns({
      workflowId,
      ...(options.scheduledOnly === true ? { scheduledOnly: true } : {}),
      order: "asc",
      limit: 1000,
      ...(cursor === undefined ? {} : { cursor }),
    });
    out.push(...page.runs);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

/** Task states by task id, e.g. `{ a: "COMPLETED", b: "SKIPPED" }`. */
export function taskStates(run: RunWithTasks): Record<string, string> {
  return Object.fromEntries(run.tasks.map((t) => [t.taskId, t.status]));
}

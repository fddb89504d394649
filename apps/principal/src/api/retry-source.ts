import {
  CdktrError,
  isTerminalRunStatus,
  type KeyIdentity,
  type Params,
  type WorkflowDefinition,
} from "@cdktr/protocol";
import { reusableTasks } from "@cdktr/workflow";
import { mayReadRun } from "../auth/roles.js";
import { runNotFound } from "../errors.js";
import type { RetryInput, Store } from "../store/store.js";

/** What a trigger with `retryFrom` runs with: the source run's params and the retry's reused tasks. */
export interface RetryPlan {
  params: Params;
  retry: RetryInput;
}

/**
 * Check the source run of a retry (`runWorkflow` with `retryFrom`) and plan the retry: the source
 * run's params, and the tasks of the current definition `wf` that are taken as done
 * (`reusableTasks`), each with the id of the run where it really ran (a task the source run
 * itself reused keeps its `reusedFrom`).
 * @throws CdktrError RUN_NOT_FOUND when the run does not exist or `identity` may not read it (as
 * `getRun` answers); BAD_REQUEST when `params` are given, or the run belongs to another workflow,
 * has not finished, or COMPLETED.
 */
export async function planRetry(
  store: Store,
  identity: KeyIdentity | null,
  req: { workflowId: string; retryFrom: string; params?: Params | undefined },
  wf: WorkflowDefinition,
): Promise<RetryPlan> {
  const sourceId = req.retryFrom;
  const context = { workflowId: req.workflowId, retryFrom: sourceId };
  if (req.params !== undefined) {
    throw new CdktrError(
      "BAD_REQUEST",
      `retryFrom: a retry runs with the params of its source run ${sourceId}; send no params (to run with other params, trigger the workflow without retryFrom)`,
      { context },
    );
  }
  const source = await store.getRun(sourceId);
  if (source === null) throw runNotFound(sourceId);
  if (!mayReadRun(identity, "getRun", source.run.triggeredBy)) throw runNotFound(sourceId, identity);
  const run = source.run;
  const problem =
    run.workflowId !== req.workflowId
      ? `run ${sourceId} is a run of \`${run.workflowId}\`, not of \`${req.workflowId}\`: retry it as \`${run.workflowId}\``
      : !isTerminalRunStatus(run.status)
        ? `run ${sourceId} is ${run.status}: wait for it to end or cancel it`
        : run.status === "COMPLETED"
          ? `run ${sourceId} COMPLETED: nothing to retry; re-run it without retryFrom`
          : null;
  if (problem !== null) throw new CdktrError("BAD_REQUEST", `retryFrom: ${problem}`, { context });
  const reusedIds = new Set(reusableTasks(wf, source.tasks));
  const reused = source.tasks
    .filter((t) => reusedIds.has(t.taskId))
    .map((t) => ({
      taskId: t.taskId,
      reusedFrom: t.reusedFrom ?? sourceId,
      attempt: t.attempt,
      exitCode: t.exitCode,
      startedAt: t.startedAt,
      finishedAt: t.finishedAt,
    }));
  return { params: run.params, retry: { retryOf: sourceId, reused } };
}

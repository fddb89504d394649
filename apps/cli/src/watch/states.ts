import { isTerminalRunStatus, type RunRecord, type RunStatus, type TaskRunRecord } from "@cdktr/protocol";

/** Whether a run record is in a final state (protocol's `TERMINAL_RUN_STATUSES`). */
export function isTerminalRun(run: Pick<RunRecord, "status">): boolean {
  return isTerminalRunStatus(run.status);
}

function runRank(s: RunStatus): number {
  switch (s) {
    case "QUEUED":
      return 0;
    case "ASSIGNED":
      return 1;
    case "RUNNING":
      return 2;
    default:
      return 3;
  }
}

function taskRank(t: Pick<TaskRunRecord, "status" | "attempt">): number {
  const r = t.status === "PENDING" ? 0 : t.status === "RUNNING" ? 1 : 2;
  return t.attempt * 10 + r;
}

/**
 * Whether `next` is a later state of the run than `prev` (events and polls arrive in any order,
 * so an older observation must never overwrite a newer one).
 */
export function isNewerRun(prev: RunRecord | undefined, next: RunRecord): boolean {
  if (prev === undefined) return true;
  if (isTerminalRunStatus(prev.status)) return false;
  return runRank(next.status) > runRank(prev.status);
}

/** Like {@link isNewerRun} for one task: a higher attempt, or a later state of the same attempt. */
export function isNewerTask(prev: TaskRunRecord | undefined, next: TaskRunRecord): boolean {
  if (prev === undefined) return true;
  return taskRank(next) > taskRank(prev);
}

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

/**
 * The states a run must have passed through between `prev` (what was seen, if anything) and
 * `next`, which were not seen (a live feed joined late, or polling): QUEUED for any run but a
 * SKIPPED one, ASSIGNED for a run that started, RUNNING for a finished run that had started.
 * Each is `next`'s record with that status and only what was known then, oldest first, so a
 * follower prints every step in order whatever it observed.
 */
export function missedRunStates(prev: RunRecord | undefined, next: RunRecord): RunRecord[] {
  const seen = prev === undefined ? -1 : runRank(prev.status);
  const at = (status: RunStatus): RunRecord => ({
    ...next,
    status,
    startedAt: status === "RUNNING" ? next.startedAt : null,
    finishedAt: null,
    agentId: status === "QUEUED" ? null : next.agentId,
    reason: null,
    message: null,
  });
  const out: RunRecord[] = [];
  if (next.status === "SKIPPED") return out;
  const started = next.status === "RUNNING" || next.startedAt !== null;
  if (seen < 0 && next.status !== "QUEUED") out.push(at("QUEUED"));
  if (seen < 1 && started && next.status !== "ASSIGNED") out.push(at("ASSIGNED"));
  if (seen < 2 && started && isTerminalRunStatus(next.status)) out.push(at("RUNNING"));
  return out;
}

/**
 * Like {@link missedRunStates} for one task: the RUNNING state of a finished attempt that had
 * started and was not seen running.
 */
export function missedTaskStates(prev: TaskRunRecord | undefined, next: TaskRunRecord): TaskRunRecord[] {
  const finished = next.status !== "PENDING" && next.status !== "RUNNING";
  const seenRunning = prev !== undefined && prev.attempt === next.attempt && prev.status !== "PENDING";
  if (!finished || next.startedAt === null || seenRunning) return [];
  return [{ ...next, status: "RUNNING", finishedAt: null, exitCode: null, signal: null, reason: null, message: null }];
}

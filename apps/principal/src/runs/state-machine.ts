import type { RunStatus, TaskStatus } from "@cdktr/protocol";
import { TERMINAL_RUN_STATUSES } from "@cdktr/protocol";

/** Run states that count against `max_active_runs` and that an agent may hold. */
export const ACTIVE_RUN_STATUSES: readonly RunStatus[] = ["QUEUED", "ASSIGNED", "RUNNING"];

const RUN_TRANSITIONS: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  QUEUED: ["ASSIGNED", "CANCELLED"],
  ASSIGNED: ["RUNNING", "QUEUED", "CANCELLED", "CRASHED"],
  RUNNING: ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"],
  COMPLETED: [],
  FAILED: [],
  CRASHED: [],
  CANCELLED: [],
  SKIPPED: [],
};

/** Whether a run may move from `from` to `to`. */
export function canTransitionRun(from: RunStatus, to: RunStatus): boolean {
  return RUN_TRANSITIONS[from].includes(to);
}

/** Whether a run in this state never changes again. */
export function isTerminalRun(status: RunStatus): boolean {
  return TERMINAL_RUN_STATUSES.includes(status);
}

/** Task states a task never leaves (except a new attempt after FAILED, see {@link taskTransition}). */
export const TERMINAL_TASK_STATUSES: readonly TaskStatus[] = ["COMPLETED", "FAILED", "SKIPPED", "CRASHED", "CANCELLED"];

/** Result of checking a task update against the task's current state. */
export type TaskTransitionCheck = "apply" | "duplicate" | "invalid";

/**
 * Check a task report. PENDING -> RUNNING | SKIPPED | CANCELLED | FAILED; RUNNING ->
 * COMPLETED | FAILED | CANCELLED, or RUNNING again with a higher attempt (a retry); FAILED ->
 * RUNNING with a higher attempt (a retry after backoff). The same status and attempt again is a
 * harmless resend (`duplicate`).
 */
export function taskTransition(
  from: TaskStatus,
  fromAttempt: number,
  to: TaskStatus,
  toAttempt: number,
): TaskTransitionCheck {
  if (from === to && fromAttempt === toAttempt) return "duplicate";
  switch (from) {
    case "PENDING":
      return to === "RUNNING" || to === "SKIPPED" || to === "CANCELLED" || to === "FAILED" || to === "COMPLETED"
        ? "apply"
        : "invalid";
    case "RUNNING":
      if (to === "RUNNING") return toAttempt > fromAttempt ? "apply" : "invalid";
      if (to === "COMPLETED" || to === "FAILED" || to === "CANCELLED")
        return toAttempt >= fromAttempt ? "apply" : "invalid";
      return "invalid";
    case "FAILED":
      return to === "RUNNING" && toAttempt > fromAttempt ? "apply" : "invalid";
    default:
      return "invalid";
  }
}

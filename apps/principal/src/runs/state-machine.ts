/**
 * The run and task state rules, written once. A store reads the current row, asks one of these
 * pure functions what a request does (or which error it gets), and only persists the answer; the
 * status lists its SQL needs are rendered from the constants here. So the SQLite store and a
 * PostgreSQL store next to it cannot drift apart.
 */
import {
  CdktrError,
  isTerminalRunStatus,
  type RunStatus,
  type TaskStatus,
  type WorkflowDefinition,
} from "@cdktr/protocol";
import { invalidRunTransition, notHeldBy, notLeasedTo, staleAssignment } from "../errors.js";

/** Run states that count against `max_active_runs` and that an agent may hold. */
export const ACTIVE_RUN_STATUSES: readonly RunStatus[] = ["QUEUED", "ASSIGNED", "RUNNING"];

/** Run states in which an agent holds the run (assigned to it, or running on it). */
export const HELD_RUN_STATUSES: readonly RunStatus[] = ["ASSIGNED", "RUNNING"];

/** The message of a run cancelled while ASSIGNED, once its agent said it did not start it (or its lease expired). */
export const NOT_STARTED_CANCEL = "cancelled by request before its agent started it";

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

/** The state a new run starts in, and why when it is not QUEUED. */
export type RunAdmission = { status: "QUEUED" } | { status: "SKIPPED"; reason: "overlap_skip"; message: string };

/**
 * Admit a new run of `workflow`: QUEUED, or SKIPPED when the workflow's overlap policy is `skip`
 * and `max_active_runs` of its runs are active. `countActive` (runs of the workflow in
 * {@link ACTIVE_RUN_STATUSES}) is only called when the answer depends on it.
 */
export function admitRun(
  workflow: Pick<WorkflowDefinition, "id" | "overlap" | "maxActiveRuns">,
  countActive: () => number,
): RunAdmission {
  if (workflow.overlap !== "skip" || workflow.maxActiveRuns === null) return { status: "QUEUED" };
  const n = countActive();
  if (n < workflow.maxActiveRuns) return { status: "QUEUED" };
  return {
    status: "SKIPPED",
    reason: "overlap_skip",
    message: `skipped: ${n} run(s) of \`${workflow.id}\` already active (max_active_runs ${workflow.maxActiveRuns}, overlap skip)`,
  };
}

/** The part of a stored run the rules look at. */
export interface RunState {
  runId: string;
  status: RunStatus;
  /** The agent holding (or that last held) the run. */
  agentId: string | null;
}

/** The lease of a run as the rules see it: its current token and the key that fetched it. */
export interface RunLease {
  runId: string;
  /** The assignment token (kept after confirmation and completion; cleared when the run is requeued). */
  token: string | null;
  /** The name of the key that fetched the assignment; null when leased without authentication. */
  leaseKey: string | null;
}

/**
 * What an agent presents with a report when authentication is on: the name of the key behind its
 * connection and the run's assignment token (absent when the agent sent none).
 */
export interface LeaseClaim {
  keyName: string;
  token: string | undefined;
}

/**
 * Check that a report (confirmation, run or task status, log lines) about a run comes from the
 * key holding its lease, with the run's token. `claim` null (authentication off) passes.
 * @throws CdktrError PERMISSION_DENIED when another key (or none) holds the lease;
 * STALE_ASSIGNMENT when the token is missing or is not the run's.
 */
export function checkLeaseClaim(lease: RunLease, claim: LeaseClaim | null): void {
  if (claim === null) return;
  if (lease.leaseKey !== claim.keyName) throw notLeasedTo(lease.runId, claim.keyName);
  if (claim.token === undefined) throw staleAssignment(lease.runId, "the report carries no assignment token");
  if (lease.token !== claim.token) throw staleAssignment(lease.runId, "the token is not the run's assignment token");
}

/** What a confirmation does: `start` moves ASSIGNED -> RUNNING, `already` is a resend of one that did. */
export type ConfirmOutcome = "start" | "already";

/**
 * Check an agent's confirmation of an assignment against the stored run, its current token and
 * (authentication on: `keyName` not null) the key that fetched it.
 * @throws CdktrError STALE_ASSIGNMENT when the run is not ASSIGNED to this agent with this token;
 * PERMISSION_DENIED when another key fetched it.
 */
export function checkConfirm(
  run: RunState & { token: string | null; leaseKey: string | null },
  agentId: string,
  token: string,
  keyName: string | null = null,
): ConfirmOutcome {
  // The token names the lease; a current token presented by another key is refused outright.
  if (keyName !== null && run.token === token && run.leaseKey !== keyName) throw notLeasedTo(run.runId, keyName);
  const holder = run.token === token && run.agentId === agentId;
  if (run.status === "RUNNING" && holder) return "already";
  if (!canTransitionRun(run.status, "RUNNING") || !holder) {
    throw staleAssignment(run.runId, `run is ${run.status}: the lease expired, it was cancelled or reassigned`);
  }
  return "start";
}

/**
 * What an agent's run report does: `apply` it, `unchanged` (RUNNING again after the
 * confirmation), or `late`: recorded in the history but not applied (a report about a CRASHED
 * run, or the same final state again).
 */
export type RunReportOutcome = "apply" | "unchanged" | "late";

/**
 * Check an agent's run report. Agents move their runs only out of RUNNING, along
 * {@link canTransitionRun}.
 * @throws CdktrError STALE_ASSIGNMENT when another agent holds the run; INVALID_TRANSITION for a
 * move the state machine refuses.
 */
export function checkRunReport(run: RunState, report: { agentId: string; status: RunStatus }): RunReportOutcome {
  if (isTerminalRunStatus(run.status)) {
    if (run.status === "CRASHED" || run.status === report.status) return "late";
    throw invalidRunTransition(run.runId, run.status, report.status);
  }
  if (run.agentId !== report.agentId) throw notHeldBy(run.runId, report.agentId);
  if (run.status === "RUNNING" && report.status === "RUNNING") return "unchanged";
  if (run.status !== "RUNNING" || !canTransitionRun(run.status, report.status)) {
    throw invalidRunTransition(run.runId, run.status, report.status);
  }
  return "apply";
}

/**
 * What `cancelRun` does to a run in `status`: nothing when it has finished, `ask-agent` when it
 * is RUNNING (its agent stops it and reports CANCELLED), else `cancel` it now.
 */
export function cancelEffect(status: RunStatus): "none" | "ask-agent" | "cancel" {
  if (isTerminalRunStatus(status)) return "none";
  // ASSIGNED too: an agent starts a run on its assignment, before confirming it, so only it can
  // say whether it runs (a cancel decided here would refuse the reports of a running task).
  if (status === "RUNNING" || status === "ASSIGNED") return "ask-agent";
  return canTransitionRun(status, "CANCELLED") ? "cancel" : "none";
}

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

/**
 * What an agent's task report does: `apply` it, ignore a `duplicate` resend, or `late`: the run
 * has finished, so the report is recorded in the history only.
 */
export type TaskReportOutcome = "apply" | "duplicate" | "late";

/**
 * Check an agent's task report against its run and the task's stored state (`task` undefined:
 * the run has no such task). A retry's task taken as done (`reusedFrom` set) never runs: every
 * report about it is refused.
 * @throws CdktrError INVALID_TRANSITION (run not confirmed yet, no such task, a task taken as done,
 * or a move {@link taskTransition} refuses); STALE_ASSIGNMENT when another agent holds the run.
 */
export function checkTaskReport(
  run: RunState & { workflowId: string },
  task: { status: TaskStatus; attempt: number; reusedFrom?: string | null } | undefined,
  report: { agentId: string; taskId: string; status: TaskStatus; attempt: number },
): TaskReportOutcome {
  if (isTerminalRunStatus(run.status)) return "late";
  const context = { runId: run.runId, taskId: report.taskId };
  if (run.status !== "RUNNING") {
    throw new CdktrError(
      "INVALID_TRANSITION",
      `run ${run.runId} is ${run.status}: confirm the assignment before reporting task ${report.taskId}`,
      { context },
    );
  }
  if (run.agentId !== report.agentId) throw notHeldBy(run.runId, report.agentId);
  if (task === undefined) {
    throw new CdktrError(
      "INVALID_TRANSITION",
      `run ${run.runId} of \`${run.workflowId}\` has no task \`${report.taskId}\``,
      { context },
    );
  }
  if (task.reusedFrom != null) {
    throw new CdktrError(
      "INVALID_TRANSITION",
      `task \`${report.taskId}\` of run ${run.runId} is taken as done from run ${task.reusedFrom}: it does not run, report nothing about it`,
      { context },
    );
  }
  const check = taskTransition(task.status, task.attempt, report.status, report.attempt);
  if (check === "invalid") {
    throw new CdktrError(
      "INVALID_TRANSITION",
      `task \`${report.taskId}\` of run ${run.runId} cannot go from ${task.status} (attempt ${task.attempt}) to ${report.status} (attempt ${report.attempt})`,
      { context },
    );
  }
  return check;
}

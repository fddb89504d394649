import { isTerminalTaskStatus, type Reason, type TaskRunRecord } from "@cdktr/protocol";
import { checkLeaseClaim, checkTaskReport, type LeaseClaim } from "../../runs/state-machine.js";
import type { TaskStatusUpdate, TaskUpdateResult } from "../store.js";
import { runFromRow, taskFromRow } from "../rows.js";
import type { Tables } from "./tables.js";

/**
 * Writes to `task_runs`, inside group-commit commands: agents' task reports (checked by
 * `checkTaskReport` of the state machine) and the closing of a run's unfinished tasks when the
 * run ends without them.
 */
export class TaskWrites {
  constructor(private readonly tables: Tables) {}

  /**
   * Apply an agent's task report; a report about a finished run is recorded in the history only.
   * With a `claim`, only the key holding the run's lease with its token may report.
   * @throws CdktrError RUN_NOT_FOUND, INVALID_TRANSITION, STALE_ASSIGNMENT, PERMISSION_DENIED
   */
  report(now: number, u: TaskStatusUpdate, claim: LeaseClaim | null): TaskUpdateResult {
    const t = this.tables;
    const row = t.requireRun(u.runId);
    checkLeaseClaim({ runId: row.run_id, token: row.token, leaseKey: row.lease_key }, claim);
    const time = Date.parse(u.time);
    const task = t.taskRow(u.runId, u.taskId);
    const outcome = checkTaskReport(
      { runId: row.run_id, workflowId: row.workflow_id, status: row.status, agentId: row.agent_id },
      task === undefined ? undefined : { status: task.status, attempt: task.attempt, reusedFrom: task.reused_from },
      u,
    );
    if (outcome === "late" || outcome === "duplicate" || task === undefined) {
      if (outcome === "late") this.record(now, u, task?.status ?? null, time, false);
      return { applied: false, run: runFromRow(row), task: task === undefined ? null : taskFromRow(task) };
    }
    t.sql(
      `UPDATE task_runs SET status = ?, attempt = ?, started_at = ?, finished_at = ?, exit_code = ?, signal = ?, reason = ?, message = ?
       WHERE run_id = ? AND task_id = ?`,
    ).run(
      u.status,
      u.attempt,
      u.status === "RUNNING" ? time : task.started_at,
      isTerminalTaskStatus(u.status) ? time : null,
      u.exitCode ?? null,
      u.signal ?? null,
      u.reason ?? null,
      u.message ?? null,
      u.runId,
      u.taskId,
    );
    this.record(now, u, task.status, time, true);
    const updated = t.taskRow(u.runId, u.taskId) ?? task;
    return { applied: true, run: runFromRow(row), task: taskFromRow(updated) };
  }

  /**
   * Move every unfinished task of a run to `status` (the run was CRASHED or CANCELLED), with a
   * history line each. Returns the tasks as they are now.
   */
  closeOpen(
    now: number,
    runId: string,
    status: "CRASHED" | "CANCELLED",
    reason: Reason,
    message: string,
    agentId: string | null,
  ): TaskRunRecord[] {
    const t = this.tables;
    const open = t.taskRows(runId).filter((task) => !isTerminalTaskStatus(task.status));
    const upd = t.sql(
      "UPDATE task_runs SET status = ?, finished_at = ?, reason = ?, message = ? WHERE run_id = ? AND task_id = ?",
    );
    const out: TaskRunRecord[] = [];
    for (const task of open) {
      upd.run(status, now, reason, message, runId, task.task_id);
      t.history(now, {
        runId,
        taskId: task.task_id,
        attempt: task.attempt,
        from: task.status,
        to: status,
        agentId,
        reason,
        message,
      });
      out.push(taskFromRow({ ...task, status, finished_at: now, reason, message }));
    }
    return out;
  }

  private record(
    now: number,
    u: TaskStatusUpdate,
    from: TaskRunRecord["status"] | null,
    time: number,
    applied: boolean,
  ) {
    this.tables.history(now, {
      runId: u.runId,
      taskId: u.taskId,
      attempt: u.attempt,
      from,
      to: u.status,
      time,
      applied,
      agentId: u.agentId,
      reason: u.reason ?? null,
      message: u.message ?? null,
    });
  }
}

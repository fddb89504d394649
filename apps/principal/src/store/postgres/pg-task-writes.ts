import { isTerminalTaskStatus, type Reason, type TaskRunRecord } from "@cdktr/protocol";
import { checkLeaseClaim, checkTaskReport, type LeaseClaim } from "../../runs/state-machine.js";
import { runFromRow, taskFromRow } from "../rows.js";
import type { TaskStatusUpdate, TaskUpdateResult } from "../store.js";
import { PgTables } from "./pg-tables.js";
import type { TxSql } from "./tx-sql.js";

/**
 * Writes to `task_runs` on PostgreSQL, inside a lane's commands: agents' task reports (checked by
 * `checkTaskReport`) and the closing of a run's unfinished tasks, as the SQLite store's `TaskWrites`.
 */
export class PgTaskWrites {
  /**
   * Apply an agent's task report; a report about a finished run is recorded in the history only.
   * @throws CdktrError RUN_NOT_FOUND, INVALID_TRANSITION, STALE_ASSIGNMENT, PERMISSION_DENIED
   */
  async report(sql: TxSql, now: number, u: TaskStatusUpdate, claim: LeaseClaim | null): Promise<TaskUpdateResult> {
    const t = new PgTables(sql);
    const row = await t.requireRun(u.runId);
    checkLeaseClaim({ runId: row.run_id, token: row.token, leaseKey: row.lease_key }, claim);
    const time = Date.parse(u.time);
    const task = await t.taskRow(u.runId, u.taskId);
    const outcome = checkTaskReport(
      { runId: row.run_id, workflowId: row.workflow_id, status: row.status, agentId: row.agent_id },
      task === undefined ? undefined : { status: task.status, attempt: task.attempt, reusedFrom: task.reused_from },
      u,
    );
    if (outcome === "late" || outcome === "duplicate" || task === undefined) {
      if (outcome === "late") this.record(t, now, u, task?.status ?? null, time, false);
      return { applied: false, run: runFromRow(row), task: task === undefined ? null : taskFromRow(task) };
    }
    await sql.run(
      `UPDATE task_runs SET status = $1, attempt = $2, started_at = $3, finished_at = $4, exit_code = $5, signal = $6, reason = $7, message = $8
       WHERE run_id = $9 AND task_id = $10`,
      [
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
      ],
    );
    this.record(t, now, u, task.status, time, true);
    const updated = (await t.taskRow(u.runId, u.taskId)) ?? task;
    return { applied: true, run: runFromRow(row), task: taskFromRow(updated) };
  }

  /** Move every unfinished task of a run to `status`, with a history line each; returns them as they are now. */
  async closeOpen(
    t: PgTables,
    now: number,
    runId: string,
    status: "CRASHED" | "CANCELLED",
    reason: Reason,
    message: string,
    agentId: string | null,
  ): Promise<TaskRunRecord[]> {
    const open = (await t.taskRows(runId)).filter((task) => !isTerminalTaskStatus(task.status));
    const out: TaskRunRecord[] = [];
    for (const task of open) {
      await t.sql.run(
        "UPDATE task_runs SET status = $1, finished_at = $2, reason = $3, message = $4 WHERE run_id = $5 AND task_id = $6",
        [status, now, reason, message, runId, task.task_id],
      );
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
    t: PgTables,
    now: number,
    u: TaskStatusUpdate,
    from: TaskRunRecord["status"] | null,
    time: number,
    applied: boolean,
  ): void {
    t.history(now, {
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

/**
 * Executes one confirmed run: drives its task DAG, runs each task (with retries, timeout and
 * cancellation), streams output to the log shipper and reports every transition.
 */
import { DagPlanner } from "@cdktr/workflow";
import {
  errorMessage,
  type Assignment,
  type LogLevel,
  type LogStream,
  type Logger,
  type Reason,
  type RunStatus,
  type TaskDefinition,
  type TaskStatus,
} from "@cdktr/protocol";
import { AgentStateError, TaskCommandError } from "../errors.js";
import { allFlows } from "../exec/output-flow.js";
import { buildTaskCommand, type TaskEnvSource, type TaskRunContext } from "../exec/task-command.js";
import { runTaskProcess, type AttemptResult } from "../exec/task-process.js";
import type { Containment } from "../exec/containment.js";
import type { Spawner } from "../exec/spawner/spawner.js";
import type { ProcessGroupRegistry } from "../exec/process-group-registry.js";
import type { LogShipper } from "../logs/log-shipper.js";
import type { StatusOutbox } from "../status/status-outbox.js";

/** Why a run is being cancelled by the agent. */
export type CancelReason = "cancelled" | "agent_shutdown";

/** Dependencies of a {@link RunExecution}. */
export interface RunExecutionOptions {
  agentId: string;
  /** The confirmed assignment; its token goes with every status report and log line of the run. */
  assignment: Pick<Assignment, "run" | "workflow" | "token" | "reusedTasks">;
  /** The agent's side of every task's environment (what of it a task may get: `buildTaskEnv`). */
  taskEnv: TaskEnvSource;
  outbox: StatusOutbox;
  shipper: LogShipper;
  groups: ProcessGroupRegistry;
  /** Finds the processes of a task that left its process group; without it only the group is killed. */
  containment?: Containment;
  /** The agent's spawner process, when tasks are forked there (`CDKTR_AGENT_SPAWNER=process`). */
  spawner?: () => Spawner | null;
  /** Between SIGTERM and SIGKILL to a task's process group. */
  killGraceMs: number;
  logger: Logger;
  /** Clock of reported transition times. @default () => new Date() */
  now?: () => Date;
  /** Called once the run's final status was delivered to the principal (or refused for good). */
  onReported?: () => void;
}

/** How a task ended, from the run's point of view. */
type TaskOutcome = { ok: true } | { ok: false; cancelled: boolean };

const MAX_MESSAGE = 8000;
function clip(message: string): string {
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}...` : message;
}

/**
 * One run on this agent. {@link execute} never rejects: whatever happens inside, every task and
 * the run get a final status (queued in the outbox) before it resolves.
 */
export class RunExecution {
  readonly runId: string;
  readonly workflowId: string;
  readonly #o: RunExecutionOptions;
  readonly #abort = new AbortController();
  readonly #seq = new Map<string, number>();
  readonly #final = new Map<string, TaskStatus>();
  readonly #now: () => Date;
  readonly #logger: Logger;
  #cancelMessage = "";

  constructor(options: RunExecutionOptions) {
    this.#o = options;
    this.runId = options.assignment.run.runId;
    this.workflowId = options.assignment.workflow.id;
    this.#now = options.now ?? (() => new Date());
    this.#logger = options.logger.child({ runId: this.runId, workflowId: this.workflowId });
  }

  /** Whether {@link cancel} was called. */
  get cancelled(): boolean {
    return this.#abort.signal.aborted;
  }

  /**
   * Stop the run: tasks not started are CANCELLED, running ones have their process group
   * killed (SIGTERM, then SIGKILL after the kill grace) and end CANCELLED with `reason`.
   */
  cancel(reason: CancelReason, message?: string): void {
    if (this.#abort.signal.aborted) return;
    this.#cancelMessage =
      message ?? (reason === "agent_shutdown" ? "the agent shut down before the run finished" : "cancelled");
    this.#logger.info("cancelling run", { reason });
    this.#abort.abort(reason);
  }

  /** Run to the end; resolves with the run's final status. */
  async execute(): Promise<RunStatus> {
    const { workflow } = this.#o.assignment;
    let status: "COMPLETED" | "FAILED" | "CANCELLED" = "FAILED";
    let reason: Reason | undefined;
    let message: string | undefined;
    const running = new Map<string, Promise<{ id: string; outcome: TaskOutcome }>>();
    try {
      // A retry's tasks taken as done (reused from an earlier run): COMPLETED from the start,
      // never run and never reported (the principal has their rows); their dependents start now.
      const reused = this.#o.assignment.reusedTasks ?? [];
      const planner = new DagPlanner(workflow.tasks, { done: reused });
      for (const id of reused) this.#final.set(id, "COMPLETED");
      this.#logger.info("run started", {
        tasks: planner.taskIds.length,
        ...(reused.length === 0 ? {} : { reused: reused.length }),
      });
      for (;;) {
        if (this.cancelled) {
          for (const id of planner.cancelPending()) {
            this.#reportTask(id, {
              status: "CANCELLED",
              attempt: 0,
              reason: this.#cancelReason(),
              message: this.#cancelMessage,
            });
          }
        } else {
          for (const id of planner.takeReady()) {
            running.set(
              id,
              this.#runTask(id).then((outcome) => ({ id, outcome })),
            );
          }
        }
        if (running.size === 0) {
          if (planner.isFinished()) break;
          throw new AgentStateError("TASK_PLAN_STUCK", "the task plan is stuck: nothing runs and nothing is ready", {
            context: { runId: this.runId, workflowId: this.workflowId },
          });
        }
        const { id, outcome } = await Promise.race(running.values());
        running.delete(id);
        let skipped: string[] = [];
        if (outcome.ok) planner.complete(id);
        else if (outcome.cancelled) skipped = planner.cancel(id);
        else skipped = planner.fail(id);
        for (const s of skipped) {
          if (this.cancelled) {
            this.#reportTask(s, {
              status: "CANCELLED",
              attempt: 0,
              reason: this.#cancelReason(),
              message: this.#cancelMessage,
            });
          } else {
            this.#reportTask(s, {
              status: "SKIPPED",
              attempt: 0,
              reason: "dependency_failed",
              message: `skipped: dependency \`${id}\` did not complete`,
            });
          }
        }
      }
      const summary = planner.summary();
      if (this.cancelled) {
        status = "CANCELLED";
        reason = this.#cancelReason();
        message = this.#cancelMessage;
      } else if (summary.succeeded) {
        status = "COMPLETED";
      } else {
        status = "FAILED";
        const failed = planner.taskIds.filter((t) => this.#final.get(t) === "FAILED");
        const skippedIds = planner.taskIds.filter((t) => this.#final.get(t) === "SKIPPED");
        message =
          `failed tasks: ${failed.join(", ") || "none"}` +
          (skippedIds.length > 0 ? `; skipped: ${skippedIds.join(", ")}` : "");
      }
    } catch (e: unknown) {
      // An error inside the agent: stop what runs and report honestly.
      const text = errorMessage(e);
      this.#logger.error("run aborted by an agent error", { error: text });
      if (!this.cancelled) this.#abort.abort("cancelled");
      await Promise.allSettled(running.values());
      for (const id of Object.keys(workflow.tasks)) {
        if (!this.#final.has(id)) {
          this.#reportTask(id, {
            status: "FAILED",
            attempt: 0,
            reason: "agent_error",
            message: `agent error: ${text}`,
          });
        }
      }
      status = "FAILED";
      reason = "agent_error";
      message = `agent error: ${text}`;
    } finally {
      this.#logger.info("run finished", { status });
      this.#o.outbox.push(
        {
          verb: "runStatus",
          body: {
            agentId: this.#o.agentId,
            runId: this.runId,
            token: this.#o.assignment.token,
            status,
            time: this.#now().toISOString(),
            ...(reason === undefined ? {} : { reason }),
            ...(message === undefined ? {} : { message: clip(message) }),
          },
        },
        // The run is reported final only after all its log lines reached the principal.
        {
          afterLogMark: this.#o.shipper.mark(),
          ...(this.#o.onReported === undefined ? {} : { onDone: this.#o.onReported }),
        },
      );
    }
    return status;
  }

  #cancelReason(): CancelReason {
    return this.#abort.signal.reason === "agent_shutdown" ? "agent_shutdown" : "cancelled";
  }

  async #runTask(taskId: string): Promise<TaskOutcome> {
    const task = this.#o.assignment.workflow.tasks[taskId] as TaskDefinition;
    const run = this.#o.assignment.run;
    const ctx: TaskRunContext = {
      runId: run.runId,
      workflowId: this.workflowId,
      source: run.source,
      params: run.params,
      paramDefs: this.#o.assignment.workflow.params,
      scheduledFor: run.scheduledFor,
      upstream: run.upstream ?? null,
    };
    const attempts = task.retries.count + 1;
    // While the status outbox cannot be written (full disk), the task's output readers pause too.
    const outbox = this.#o.outbox;
    const flow = allFlows(this.#o.shipper.flowFor(run.runId, taskId), {
      shouldPause: () => !outbox.writable,
      whenWritable: () => outbox.whenWritable(),
    });
    for (let attempt = 1; ; attempt++) {
      // No attempt starts while its RUNNING could not be journaled: wait for the outbox.
      if (!(await this.#untilOutboxWritable(taskId))) {
        this.#reportTask(taskId, {
          status: "CANCELLED",
          attempt: attempt - 1,
          reason: this.#cancelReason(),
          message: this.#cancelMessage,
        });
        return { ok: false, cancelled: true };
      }
      this.#reportTask(taskId, { status: "RUNNING", attempt });
      let result: AttemptResult;
      try {
        const command = buildTaskCommand(task, ctx, this.#o.taskEnv);
        this.#system(
          taskId,
          "info",
          `attempt ${attempt}/${attempts}: starting ${[command.cmd, ...command.args].map((a) => JSON.stringify(a)).join(" ")}`,
        );
        result = await runTaskProcess({
          command,
          timeoutMs: task.timeoutMs,
          killGraceMs: this.#o.killGraceMs,
          onLine: (stream, line) => this.#line(taskId, stream, stream === "stdout" ? "info" : "error", line),
          flow,
          groups: this.#o.groups.recorderFor(run.runId, taskId),
          signal: this.#abort.signal,
          ...(this.#o.containment === undefined ? {} : { containment: this.#o.containment.forTask() }),
          ...spawnerOption(this.#o.spawner?.() ?? null),
        });
      } catch (e: unknown) {
        const message = e instanceof TaskCommandError ? e.message : `cannot prepare the command: ${errorMessage(e)}`;
        result = { ok: false, reason: "spawn_error", exitCode: null, signal: null, message, pid: null };
      }
      if (result.ok) {
        this.#system(taskId, "info", "completed (exit code 0)");
        this.#reportTask(taskId, { status: "COMPLETED", attempt, exitCode: 0 });
        return { ok: true };
      }
      this.#system(taskId, "error", `attempt ${attempt}/${attempts} failed: ${result.message}`);
      const extra = {
        ...(result.exitCode === null ? {} : { exitCode: result.exitCode }),
        ...(result.signal === null ? {} : { signal: result.signal }),
      };
      if (result.reason === "cancelled" || result.reason === "agent_shutdown") {
        this.#reportTask(taskId, {
          status: "CANCELLED",
          attempt,
          reason: result.reason,
          message: this.#cancelMessage || result.message,
          ...extra,
        });
        return { ok: false, cancelled: true };
      }
      if (attempt >= attempts) {
        this.#reportTask(taskId, {
          status: "FAILED",
          attempt,
          reason: result.reason,
          message: `task \`${taskId}\`: ${result.message}`,
          ...extra,
        });
        return { ok: false, cancelled: false };
      }
      const delay = Math.round(task.retries.backoffMs * task.retries.factor ** (attempt - 1));
      this.#system(taskId, "warn", `retrying in ${delay} ms (attempt ${attempt + 1}/${attempts})`);
      await this.#sleep(delay);
      if (this.cancelled) {
        this.#reportTask(taskId, {
          status: "CANCELLED",
          attempt,
          reason: this.#cancelReason(),
          message: this.#cancelMessage,
        });
        return { ok: false, cancelled: true };
      }
    }
  }

  /**
   * Resolves true once the status outbox can be written (at once when it can), false when the run
   * was cancelled first.
   */
  async #untilOutboxWritable(taskId: string): Promise<boolean> {
    const outbox = this.#o.outbox;
    if (!outbox.writable && !this.cancelled) {
      this.#logger.info("the status outbox cannot be written: the task starts once it can", { taskId });
      const signal = this.#abort.signal;
      let onAbort = (): void => undefined;
      const aborted = new Promise<void>((resolve) => {
        onAbort = resolve;
        signal.addEventListener("abort", onAbort, { once: true });
      });
      await Promise.race([outbox.whenWritable(), aborted]);
      signal.removeEventListener("abort", onAbort);
    }
    return !this.cancelled;
  }

  #line(taskId: string, stream: LogStream, level: LogLevel, line: string): void {
    const seq = (this.#seq.get(taskId) ?? 0) + 1;
    this.#seq.set(taskId, seq);
    this.#o.shipper.append(
      {
        time: this.#now().toISOString(),
        runId: this.runId,
        workflowId: this.workflowId,
        taskId,
        stream,
        level,
        seq,
        line,
      },
      this.#o.assignment.token,
    );
  }

  #system(taskId: string, level: LogLevel, line: string): void {
    this.#line(taskId, "system", level, line);
  }

  #reportTask(
    taskId: string,
    update: {
      status: TaskStatus;
      attempt: number;
      exitCode?: number;
      signal?: string;
      reason?: Reason;
      message?: string;
    },
  ): void {
    if (update.status !== "RUNNING") this.#final.set(taskId, update.status);
    const { message, ...rest } = update;
    // A task's end is reported (and journaled) only once its log lines are safe: a task never
    // shows COMPLETED over lines a crash of the agent lost.
    const afterLogs = update.status === "RUNNING" ? {} : { afterLogMark: this.#o.shipper.mark() };
    this.#o.outbox.push(
      {
        verb: "taskStatus",
        body: {
          agentId: this.#o.agentId,
          runId: this.runId,
          token: this.#o.assignment.token,
          taskId,
          time: this.#now().toISOString(),
          ...rest,
          ...(message === undefined ? {} : { message: clip(message) }),
        },
      },
      afterLogs,
    );
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#abort.signal;
    if (signal.aborted || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

/** The `spawner` option of `runTaskProcess`: absent when tasks are spawned inline. */
function spawnerOption(spawner: Spawner | null): { spawner?: Spawner } {
  return spawner === null ? {} : { spawner };
}

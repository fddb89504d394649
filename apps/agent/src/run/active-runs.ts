/**
 * The runs of one agent process: those executing, and those finished whose final status is not
 * delivered yet (the agent still reports them as running, so that the principal does not take
 * them for lost).
 */
import { errorMessage, type Assignment, type RunStatus } from "@cdktr/protocol";
import { RunExecution, type CancelReason, type RunExecutionOptions } from "./run-execution.js";

/** Options of {@link ActiveRuns}: what every {@link RunExecution} of this agent shares. */
export interface ActiveRunsOptions extends Omit<RunExecutionOptions, "assignment" | "onReported" | "now"> {
  /** Clock of reported transition times. */
  now: () => Date;
  /** Called each time a run's execution ended (a slot is free again). */
  onFinished: () => void;
  /** Called with the final status of each run executed to its end. */
  onRunEnded?: (workflowId: string, status: RunStatus) => void;
}

/** Starts assigned runs and keeps track of them until their final status is delivered. */
export class ActiveRuns {
  readonly #o: ActiveRunsOptions;
  readonly #executions = new Map<string, RunExecution>();
  /** Runs whose final status is queued but not delivered yet. */
  readonly #reporting = new Set<string>();

  constructor(options: ActiveRunsOptions) {
    this.#o = options;
  }

  /** Runs executing now (each holds one slot). */
  get size(): number {
    return this.#executions.size;
  }

  /** Ids of the runs executing now. */
  executingIds(): string[] {
    return [...this.#executions.keys()];
  }

  /**
   * Ids of runs executing, or finished but whose final status is not delivered yet (including
   * those a previous agent process left in the outbox): what registration and heartbeats report.
   */
  runningRuns(): string[] {
    return [...new Set([...this.#executions.keys(), ...this.#reporting, ...this.#o.outbox.pendingRunIds()])];
  }

  /**
   * Start an assignment now and confirm it to the principal afterwards. The confirmation goes
   * first into the status outbox, whose journal line is on disk (the page cache) before anything
   * is spawned: a later agent process on this data directory can tell the principal which runs
   * this one started (the registration's `predecessor`). Nothing starts, and false is returned,
   * when that line cannot be written (a full disk: the agent takes no new work then anyway). A
   * refused confirmation (the run was cancelled meanwhile) stops the run at once; its later
   * reports are refused too.
   */
  start(assignment: Assignment): boolean {
    const runId = assignment.run.runId;
    const outbox = this.#o.outbox;
    if (!outbox.writable) return false;
    const confirm = outbox.push(
      {
        verb: "confirmAssignment",
        body: { agentId: this.#o.agentId, runId, token: assignment.token, time: this.#o.now().toISOString() },
      },
      {
        onRefused: (err) => {
          const exec = this.#executions.get(runId);
          if (exec === undefined) return;
          this.#o.logger.warn("the principal refused this run's start; stopping it", { runId, error: err.message });
          exec.cancel("cancelled");
        },
      },
    );
    if (!outbox.writable) {
      outbox.retract(confirm);
      return false;
    }
    const exec = new RunExecution({
      agentId: this.#o.agentId,
      assignment,
      taskEnv: this.#o.taskEnv,
      outbox: this.#o.outbox,
      shipper: this.#o.shipper,
      groups: this.#o.groups,
      ...(this.#o.containment === undefined ? {} : { containment: this.#o.containment }),
      ...(this.#o.spawner === undefined ? {} : { spawner: this.#o.spawner }),
      killGraceMs: this.#o.killGraceMs,
      logger: this.#o.logger,
      now: this.#o.now,
      onReported: () => {
        this.#reporting.delete(runId);
      },
    });
    this.#executions.set(runId, exec);
    this.#reporting.add(runId);
    void exec
      .execute()
      .then((status) => this.#o.onRunEnded?.(exec.workflowId, status))
      .catch((e: unknown) =>
        this.#o.logger.error("run execution failed unexpectedly", { runId, error: errorMessage(e) }),
      )
      .finally(() => {
        this.#executions.delete(runId);
        this.#o.onFinished();
      });
    return true;
  }

  /** Cancel the runs of `ids` executing here (others are ignored); `from` names the verb that asked. */
  cancel(ids: readonly string[], from: string): void {
    for (const id of ids) {
      const exec = this.#executions.get(id);
      if (exec !== undefined) {
        this.#o.logger.info("the principal asked to cancel a run", { runId: id, from });
        exec.cancel("cancelled");
      }
    }
  }

  /** Cancel every run executing now, for `reason`. */
  cancelAll(reason: CancelReason): void {
    for (const exec of this.#executions.values()) exec.cancel(reason);
  }
}

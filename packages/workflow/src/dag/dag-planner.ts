/**
 * Execution planner for one run of a workflow's task DAG, used by the agent.
 *
 * The original started fan-in tasks as soon as ONE parent finished (and again for the next
 * parent), and a failure in a diamond left the run waiting forever. This planner keeps an
 * in-degree count per task: a task becomes ready only when every dependency COMPLETED, is
 * handed out by {@link DagPlanner.takeReady} exactly once, and a failure marks every
 * transitive dependent SKIPPED so the run always terminates.
 */
import { DagError } from "../errors.js";
import { findCycle } from "./graph.js";

/** State of one task inside a {@link DagPlanner}. */
export type PlannedTaskState = "PENDING" | "READY" | "RUNNING" | "COMPLETED" | "FAILED" | "SKIPPED" | "CANCELLED";

/** Input of {@link DagPlanner}: each task id with the ids it depends on. */
export type DagInput = Readonly<Record<string, { readonly depends: readonly string[] }>>;

/** Counts per state, plus the overall outcome, from {@link DagPlanner.summary}. */
export interface DagSummary {
  total: number;
  pending: number;
  ready: number;
  running: number;
  completed: number;
  failed: number;
  skipped: number;
  cancelled: number;
  /** True when no task can change state any more. */
  finished: boolean;
  /** True when finished and every task COMPLETED. */
  succeeded: boolean;
}

/**
 * Plans the execution of a task DAG: which tasks may start now, and what a completion or a
 * failure unblocks or skips. Pure and synchronous; the caller runs the tasks.
 *
 * @example
 * const plan = new DagPlanner({ a: { depends: [] }, b: { depends: ["a"] } });
 * plan.takeReady(); // ["a"]
 * plan.complete("a");
 * plan.takeReady(); // ["b"]
 */
export class DagPlanner {
  readonly #order: readonly string[];
  readonly #dependents = new Map<string, string[]>();
  readonly #waitingOn = new Map<string, number>();
  readonly #state = new Map<string, PlannedTaskState>();
  readonly #index = new Map<string, number>();
  /** READY tasks not yet handed out by takeReady. */
  #ready: string[] = [];
  /** Tasks PENDING, READY or RUNNING. */
  #open = 0;

  /**
   * @param tasks every task with its dependencies. Ids are handed out in the order of this
   *   record when several become ready together.
   * @param options.done tasks already done before the run starts (a retry's reused tasks): they
   *   are COMPLETED from the start, never handed out by {@link takeReady}, and count as completed
   *   dependencies of their dependents.
   * @throws {DagError} when a dependency names an unknown task, the graph has a cycle, or `done`
   *   names an unknown task.
   */
  constructor(tasks: DagInput, options: { readonly done?: Iterable<string> } = {}) {
    this.#order = Object.keys(tasks);
    this.#order.forEach((id, i) => {
      this.#index.set(id, i);
    });
    this.#open = this.#order.length;
    for (const id of this.#order) this.#dependents.set(id, []);
    for (const id of this.#order) {
      const deps = [...new Set(tasks[id]?.depends ?? [])];
      for (const dep of deps) {
        const list = this.#dependents.get(dep);
        if (list === undefined) throw new DagError(`task \`${id}\` depends on unknown task \`${dep}\``);
        list.push(id);
      }
      this.#waitingOn.set(id, deps.length);
      this.#state.set(id, deps.length === 0 ? "READY" : "PENDING");
      if (deps.length === 0) this.#ready.push(id);
    }
    const cycle = findCycle(tasks);
    if (cycle !== null) throw new DagError(`dependency cycle: ${cycle.join(" -> ")}`);
    for (const id of new Set(options.done ?? [])) {
      const s = this.stateOf(id);
      if (s === "COMPLETED") continue;
      this.#state.set(id, "RUNNING");
      this.complete(id);
    }
  }

  /** Every task id, in input order. */
  get taskIds(): readonly string[] {
    return this.#order;
  }

  /**
   * Tasks that may start now: all their dependencies COMPLETED. Each id is returned by exactly
   * one call over the planner's life; returned tasks are RUNNING from then on.
   */
  takeReady(): string[] {
    const out = this.#ready.filter((id) => this.#state.get(id) === "READY");
    this.#ready = [];
    out.sort((a, b) => (this.#index.get(a) ?? 0) - (this.#index.get(b) ?? 0));
    for (const id of out) this.#state.set(id, "RUNNING");
    return out;
  }

  /**
   * Records a successful task; dependents whose dependencies are now all complete become ready.
   * @returns ids that became ready (also returned by the next {@link takeReady}).
   * @throws {DagError} when the task is not RUNNING.
   */
  complete(taskId: string): string[] {
    this.#finish(taskId, "COMPLETED");
    const ready: string[] = [];
    for (const child of this.#dependents.get(taskId) ?? []) {
      const left = (this.#waitingOn.get(child) ?? 0) - 1;
      this.#waitingOn.set(child, left);
      if (left === 0 && this.#state.get(child) === "PENDING") {
        this.#state.set(child, "READY");
        this.#ready.push(child);
        ready.push(child);
      }
    }
    return ready;
  }

  /**
   * Records a failed task and marks every transitive dependent still waiting as SKIPPED.
   * Independent branches are not affected.
   * @returns the ids newly marked SKIPPED, in input order.
   * @throws {DagError} when the task is not RUNNING.
   */
  fail(taskId: string): string[] {
    this.#finish(taskId, "FAILED");
    return this.#skipDependents(taskId);
  }

  /**
   * Records a task that was cancelled while running (e.g. the run was cancelled); its
   * dependents are SKIPPED like after a failure.
   * @returns the ids newly marked SKIPPED.
   */
  cancel(taskId: string): string[] {
    this.#finish(taskId, "CANCELLED");
    return this.#skipDependents(taskId);
  }

  /**
   * Cancels every task not started yet (PENDING or READY). RUNNING tasks are left to the caller,
   * who reports them with {@link complete}, {@link fail} or {@link cancel}.
   * @returns the ids newly CANCELLED.
   */
  cancelPending(): string[] {
    const out: string[] = [];
    for (const id of this.#order) {
      const s = this.#state.get(id);
      if (s === "PENDING" || s === "READY") {
        this.#state.set(id, "CANCELLED");
        this.#open--;
        out.push(id);
      }
    }
    return out;
  }

  /** True when no task is pending, ready or running. */
  isFinished(): boolean {
    return this.#open === 0;
  }

  /**
   * The state of one task.
   * @throws {DagError} for an unknown id.
   */
  stateOf(taskId: string): PlannedTaskState {
    const s = this.#state.get(taskId);
    if (s === undefined) throw new DagError(`unknown task \`${taskId}\``, "DAG_UNKNOWN_TASK");
    return s;
  }

  /** Counts per state and the overall outcome. */
  summary(): DagSummary {
    const sum: DagSummary = {
      total: this.#order.length,
      pending: 0,
      ready: 0,
      running: 0,
      completed: 0,
      failed: 0,
      skipped: 0,
      cancelled: 0,
      finished: false,
      succeeded: false,
    };
    for (const s of this.#state.values()) {
      switch (s) {
        case "PENDING":
          sum.pending++;
          break;
        case "READY":
          sum.ready++;
          break;
        case "RUNNING":
          sum.running++;
          break;
        case "COMPLETED":
          sum.completed++;
          break;
        case "FAILED":
          sum.failed++;
          break;
        case "SKIPPED":
          sum.skipped++;
          break;
        case "CANCELLED":
          sum.cancelled++;
          break;
      }
    }
    sum.finished = sum.pending + sum.ready + sum.running === 0;
    sum.succeeded = sum.finished && sum.completed === sum.total;
    return sum;
  }

  #finish(taskId: string, to: "COMPLETED" | "FAILED" | "CANCELLED"): void {
    const s = this.stateOf(taskId);
    if (s !== "RUNNING") {
      throw new DagError(
        `task \`${taskId}\` cannot become ${to}: it is ${s}, not RUNNING (take it with takeReady() first)`,
        "DAG_BAD_TRANSITION",
      );
    }
    this.#state.set(taskId, to);
    this.#open--;
  }

  #skipDependents(taskId: string): string[] {
    const skipped = new Set<string>();
    const stack = [...(this.#dependents.get(taskId) ?? [])];
    while (stack.length > 0) {
      const id = stack.pop() as string;
      const s = this.#state.get(id);
      if (s !== "PENDING" && s !== "READY") continue;
      this.#state.set(id, "SKIPPED");
      this.#open--;
      skipped.add(id);
      stack.push(...(this.#dependents.get(id) ?? []));
    }
    return [...skipped].sort((a, b) => (this.#index.get(a) ?? 0) - (this.#index.get(b) ?? 0));
  }
}

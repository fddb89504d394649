/**
 * Which tasks a retry takes as done: "re-run from the failed tasks" (`runWorkflow` with
 * `retryFrom`, see docs/workflows.md).
 */
import type { DagInput } from "./dag-planner.js";
import { topoOrder } from "./graph.js";

/** What {@link reusableTasks} needs of a task of the source run. */
export interface SourceTaskState {
  taskId: string;
  /** The task's final state in the source run (`COMPLETED`, `FAILED`, `SKIPPED`, ...). */
  status: string;
}

/**
 * The tasks of the current definition that a retry of a run takes as done: those that COMPLETED
 * in the source run and all of whose ancestors (transitively, through `depends`) are taken as done
 * too. A COMPLETED task downstream of a task that runs again runs again (its input may change);
 * a task added since the source run runs, and so does everything downstream of it; a task of the
 * source run that the definition no longer has is ignored. Pure.
 * @param workflow the current definition's tasks and their dependencies.
 * @param sourceTasks the task records of the source run.
 * @returns the ids taken as done, in a topological order (dependencies first).
 * @throws {DagError} when the definition has a cycle or an unknown dependency.
 */
export function reusableTasks(
  workflow: { readonly tasks: DagInput },
  sourceTasks: readonly SourceTaskState[],
): string[] {
  const completed = new Set(sourceTasks.filter((t) => t.status === "COMPLETED").map((t) => t.taskId));
  const reused = new Set<string>();
  for (const id of topoOrder(workflow.tasks)) {
    const deps = workflow.tasks[id]?.depends ?? [];
    if (completed.has(id) && deps.every((d) => reused.has(d))) reused.add(id);
  }
  return [...reused];
}

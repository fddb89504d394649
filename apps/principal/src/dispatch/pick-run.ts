import type { RunRecord, WorkflowDefinition } from "@cdktr/protocol";
import { HELD_RUN_STATUSES } from "../runs/state-machine.js";

/**
 * The run to hand to an agent carrying `labels`: the first of `queued` (ascending run ids, so
 * FIFO by creation) whose workflow has fewer than `maxActiveRuns` runs ASSIGNED/RUNNING and whose
 * `agentLabels` the agent all carries. FIFO within a workflow: when its oldest queued run is
 * blocked by `maxActiveRuns`, its later runs wait too. Undefined when none is eligible.
 */
export function pickRun<E extends { run: RunRecord; workflow: WorkflowDefinition }>(
  queued: readonly string[],
  entries: ReadonlyMap<string, E>,
  labels: readonly string[],
): E | undefined {
  if (queued.length === 0) return undefined;
  // Active counts are only needed for workflows with max_active_runs: computed on first use.
  let active: Map<string, number> | null = null;
  const activeOf = (wf: string): number => {
    if (active === null) {
      const counts = new Map<string, number>();
      for (const e of entries.values()) {
        if (HELD_RUN_STATUSES.includes(e.run.status))
          counts.set(e.run.workflowId, (counts.get(e.run.workflowId) ?? 0) + 1);
      }
      active = counts;
    }
    return active.get(wf) ?? 0;
  };
  const blocked = new Set<string>();
  for (const id of queued) {
    const e = entries.get(id);
    if (e === undefined) continue;
    const wf = e.run.workflowId;
    if (blocked.has(wf)) continue;
    const max = e.workflow.maxActiveRuns;
    if (max !== null && activeOf(wf) >= max) {
      // FIFO within a workflow: later runs of it wait behind this one.
      blocked.add(wf);
      continue;
    }
    if (!e.workflow.agentLabels.every((l) => labels.includes(l))) continue;
    return e;
  }
  return undefined;
}

import type { RunRecord, WorkflowDefinition } from "@cdktr/protocol";
import { HELD_RUN_STATUSES } from "../runs/state-machine.js";
import type { ActiveRun } from "../store/store.js";
import { HeldRuns } from "./held-runs.js";
import { pickRun } from "./pick-run.js";
import { insertSorted, removeSorted } from "./sorted-ids.js";

/** A non-terminal run as the dispatcher tracks it in memory. */
export interface ActiveEntry {
  run: RunRecord;
  workflow: WorkflowDefinition;
  token: string | null;
  /** The key that fetched the current assignment (null: unassigned, or authentication off). */
  leaseKey: string | null;
  leaseExpiresAt: number | null;
  cancelRequested: boolean;
  /** A retry's tasks taken as done (sent with the assignment); empty for other runs. */
  reusedTasks: readonly string[];
}

/**
 * The dispatcher's memory of the non-terminal runs: every entry by run id, the ids of the QUEUED
 * ones in ascending order (ULIDs: creation order), and which agent holds which runs. It only
 * keeps these in step; when to change them (after which commit) is the `Dispatcher`'s business.
 */
export class ActiveRuns {
  private readonly entries = new Map<string, ActiveEntry>();
  /** Ids of QUEUED runs, sorted ascending. */
  private queued: string[] = [];
  /** The runs each agent holds (ASSIGNED or RUNNING). */
  private readonly held = new HeldRuns();

  /**
   * Rebuild from the store's active runs. Leases of ASSIGNED runs restart from `now + leaseMs`:
   * an agent that got the assignment just before a restart may still confirm it.
   */
  load(active: readonly ActiveRun[], now: number, leaseMs: number): void {
    for (const a of active) {
      const entry: ActiveEntry = { ...a };
      if (entry.run.status === "ASSIGNED") entry.leaseExpiresAt = Math.max(entry.leaseExpiresAt ?? 0, now + leaseMs);
      this.entries.set(a.run.runId, entry);
      this.reindex(entry);
      if (a.run.status === "QUEUED") this.queued.push(a.run.runId);
    }
    this.queued.sort();
  }

  /** The tracked entry of a non-terminal run. */
  get(runId: string): ActiveEntry | undefined {
    return this.entries.get(runId);
  }

  /** Whether `e` is still the tracked entry of its run. */
  isCurrent(e: ActiveEntry): boolean {
    return this.entries.get(e.run.runId) === e;
  }

  /** Every tracked entry. */
  all(): IterableIterator<ActiveEntry> {
    return this.entries.values();
  }

  /** Runs an agent holds (ASSIGNED or RUNNING). */
  byAgent(agentId: string): ActiveEntry[] {
    const ids = this.held.ids(agentId);
    if (ids === undefined) return [];
    const held: ActiveEntry[] = [];
    for (const id of ids) {
      const e = this.entries.get(id);
      if (e !== undefined) held.push(e);
    }
    return held;
  }

  /** Number of runs `agentId` holds. */
  heldCount(agentId: string): number {
    return this.held.count(agentId);
  }

  /** Number of QUEUED runs. */
  queuedCount(): number {
    return this.queued.length;
  }

  /** Track a QUEUED run (with a retry's reused tasks); false when it is not QUEUED or tracked already. */
  add(run: RunRecord, workflow: WorkflowDefinition, reusedTasks: readonly string[] = []): boolean {
    if (run.status !== "QUEUED" || this.entries.has(run.runId)) return false;
    this.entries.set(run.runId, {
      run,
      workflow,
      reusedTasks,
      token: null,
      leaseKey: null,
      leaseExpiresAt: null,
      cancelRequested: false,
    });
    insertSorted(this.queued, run.runId);
    return true;
  }

  /** Stop tracking a run; its entry, or undefined when it was not tracked. */
  delete(runId: string): ActiveEntry | undefined {
    const e = this.entries.get(runId);
    if (e === undefined) return undefined;
    this.entries.delete(runId);
    this.reindex(e);
    if (e.run.status === "QUEUED") removeSorted(this.queued, runId);
    return e;
  }

  /** Set an entry's run and keep the per-agent index of held runs in step. */
  setRun(e: ActiveEntry, run: RunRecord): void {
    e.run = run;
    this.reindex(e);
  }

  /** Back in the queue (its QUEUED state `run` is committed): token, lease and agent cleared. */
  requeue(e: ActiveEntry, run: RunRecord): void {
    e.token = null;
    e.leaseKey = null;
    e.leaseExpiresAt = null;
    this.setRun(e, { ...run, status: "QUEUED", agentId: null });
    insertSorted(this.queued, run.runId);
  }

  /** Take a QUEUED run out of the queue as ASSIGNED to `agentId` with `token` and its lease. */
  assign(e: ActiveEntry, agentId: string, token: string, leaseKey: string | null, leaseExpiresAt: number): void {
    removeSorted(this.queued, e.run.runId);
    e.token = token;
    e.leaseKey = leaseKey;
    e.leaseExpiresAt = leaseExpiresAt;
    this.setRun(e, { ...e.run, status: "ASSIGNED", agentId });
  }

  /** The oldest QUEUED run eligible for an agent carrying `labels` ({@link pickRun}). */
  pick(labels: readonly string[]): ActiveEntry | undefined {
    return pickRun(this.queued, this.entries, labels);
  }

  /** Index the entry under the agent holding it (ASSIGNED/RUNNING and tracked), or under none. */
  private reindex(e: ActiveEntry): void {
    const holder =
      this.entries.get(e.run.runId) === e && e.run.agentId !== null && HELD_RUN_STATUSES.includes(e.run.status)
        ? e.run.agentId
        : null;
    this.held.set(e.run.runId, holder);
  }
}

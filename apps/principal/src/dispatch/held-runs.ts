/**
 * Which agent holds which runs (ASSIGNED or RUNNING), indexed both ways, so that an agent's runs
 * and free slots are found without scanning every active run.
 */
export class HeldRuns {
  /** Ids of the runs each agent holds. */
  private readonly byAgent = new Map<string, Set<string>>();
  /** The agent holding each held run. */
  private readonly holderOf = new Map<string, string>();

  /** Ids of the runs `agentId` holds (live view: copy before changing the index). */
  ids(agentId: string): ReadonlySet<string> | undefined {
    return this.byAgent.get(agentId);
  }

  /** Number of runs `agentId` holds. */
  count(agentId: string): number {
    return this.byAgent.get(agentId)?.size ?? 0;
  }

  /** Record that `holder` holds run `runId` now (null: nobody). */
  set(runId: string, holder: string | null): void {
    const had = this.holderOf.get(runId) ?? null;
    if (had === holder) return;
    if (had !== null) {
      const ids = this.byAgent.get(had);
      ids?.delete(runId);
      if (ids?.size === 0) this.byAgent.delete(had);
      this.holderOf.delete(runId);
    }
    if (holder !== null) {
      let ids = this.byAgent.get(holder);
      if (ids === undefined) {
        ids = new Set();
        this.byAgent.set(holder, ids);
      }
      ids.add(runId);
      this.holderOf.set(runId, holder);
    }
  }
}

// How live `run` events update lists of runs already shown.

import type { RunRecord } from "./types";

/** The filters of a runs list (as in the URL; since/until as ISO instants). */
export interface RunFilter {
  workflow?: string | undefined;
  status?: string | undefined;
  source?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
}

/** Whether a run belongs in a list with these filters. */
export function runMatches(run: RunRecord, f: RunFilter): boolean {
  if (f.workflow !== undefined && f.workflow !== "" && run.workflowId !== f.workflow) return false;
  if (f.status !== undefined && f.status !== "" && !f.status.split(",").includes(run.status)) return false;
  if (f.source !== undefined && f.source !== "" && run.source !== f.source) return false;
  const created = Date.parse(run.createdAt);
  if (f.since !== undefined && created < Date.parse(f.since)) return false;
  if (f.until !== undefined && created > Date.parse(f.until)) return false;
  return true;
}

/**
 * A list (newest first) after a live event: a run shown is updated in place; with `insert`, a new
 * matching run is inserted by creation time (the list stays at most `cap` long). Returns the same
 * array when nothing changes.
 */
export function applyRunEvent(
  runs: readonly RunRecord[],
  run: RunRecord,
  opts: { insert: boolean; filter: RunFilter; cap: number },
): readonly RunRecord[] {
  const i = runs.findIndex((r) => r.runId === run.runId);
  if (i !== -1) {
    const next = [...runs];
    next[i] = run;
    return next;
  }
  if (!opts.insert || !runMatches(run, opts.filter)) return runs;
  const created = Date.parse(run.createdAt);
  let at = runs.findIndex((r) => Date.parse(r.createdAt) < created);
  if (at === -1) at = runs.length;
  if (at >= opts.cap) return runs;
  const next = [...runs];
  next.splice(at, 0, run);
  return next.slice(0, opts.cap);
}

/** Whether a value looks like a run record (live events are data from the network). */
export function isRunRecord(v: unknown): v is RunRecord {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.runId === "string" && typeof r.workflowId === "string" && typeof r.status === "string";
}

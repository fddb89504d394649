/**
 * The shape of a benchmark result: one row per figure, always next to the baseline of the
 * same run, so the ratio (not the absolute number, which depends on the machine) is what is read.
 */

/** Whether bigger or smaller is better for a figure. */
export type Better = "higher" | "lower";

/** One figure of a scenario. */
export interface Row {
  scenario: string;
  metric: string;
  unit: string;
  /** Our figure; null when it could not be measured (see `note`). */
  ours: number | null;
  /** The baseline's figure measured in the same run; null when there is none. */
  baseline: number | null;
  /** What the baseline is. */
  baselineName: string;
  /**
   * ours / baseline. For throughputs that is the fraction of the baseline we reach; for latencies
   * how many times slower we are.
   */
  ratio: number | null;
  better: Better;
  /** Human-readable target, e.g. `ratio >= 0.60`. Empty when the row is informative only. */
  target: string;
  /** Target met? null when there is no target or no figure. */
  pass: boolean | null;
  note: string;
}

/** A scenario's output: its rows plus free-form details kept in the JSON file. */
export interface ScenarioResult {
  id: string;
  title: string;
  rows: Row[];
  details: Record<string, unknown>;
  /** Set when the scenario could not run at all. */
  skipped?: string;
  durationMs: number;
}

/** Build a row, computing the ratio. */
export function row(
  r: Omit<Row, "ratio" | "pass" | "target" | "note" | "baseline" | "baselineName"> & {
    baseline?: number | null;
    baselineName?: string;
    target?: string;
    pass?: boolean | null;
    note?: string;
  },
): Row {
  const baseline = r.baseline ?? null;
  const ratio =
    r.ours !== null && baseline !== null && Number.isFinite(r.ours) && Number.isFinite(baseline) && baseline !== 0
      ? r.ours / baseline
      : null;
  return {
    scenario: r.scenario,
    metric: r.metric,
    unit: r.unit,
    ours: r.ours,
    baseline,
    baselineName: r.baselineName ?? "",
    ratio,
    better: r.better,
    target: r.target ?? "",
    pass: r.pass ?? null,
    note: r.note ?? "",
  };
}

/** A row saying the figure could not be measured, and why. */
export function naRow(scenario: string, metric: string, reason: string): Row {
  return row({ scenario, metric, unit: "", ours: null, better: "higher", note: `n/a: ${reason}` });
}

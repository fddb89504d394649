/**
 * Formatting of the result table (Markdown, so the same text reads in a terminal and in the README).
 */
import type { Row } from "./result.js";

/** A number with a precision suited to its size. */
export function fmt(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return "n/a";
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** A relative change as `+4.2 %` (the cost of security is shown this way). */
export function percent(x: number): string {
  if (!Number.isFinite(x)) return "n/a";
  return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)} %`;
}

function ratioText(r: Row): string {
  if (r.ratio === null) return "";
  return `${r.ratio.toFixed(r.ratio >= 10 ? 1 : 2)}x`;
}

/** The Markdown table of `rows`. */
export function renderTable(rows: readonly Row[]): string {
  const head = ["Scenario", "Metric", "Ours", "Baseline", "Ratio", "Target", "Met", "Baseline is / notes"];
  const body = rows.map((r) => [
    r.scenario,
    r.metric + (r.unit !== "" ? ` (${r.unit})` : ""),
    r.note.startsWith("n/a") ? "n/a" : fmt(r.ours),
    r.baseline === null ? "" : fmt(r.baseline),
    ratioText(r),
    r.target,
    r.pass === null ? "" : r.pass ? "yes" : "**NO**",
    [r.baselineName, r.note].filter((s) => s !== "").join("; "),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? "").length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

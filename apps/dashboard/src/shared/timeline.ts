/**
 * Time helpers of the dashboard: the Gantt chart's scaling and human durations.
 *
 * Pure: no DOM, no Node imports (shared by the dashboard UI bundle and the server's unit tests).
 */

/** The fields of a task run the Gantt chart uses. */
export interface GanttTask {
  taskId: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  reusedFrom?: string | null;
}

/** One bar: offsets and widths are percentages of the chart's span. */
export interface GanttBar {
  taskId: string;
  status: string;
  leftPct: number;
  widthPct: number;
  durationMs: number;
  /** The task has started and not finished: its bar ends at `now`. */
  running: boolean;
}

/** The Gantt chart of a run. */
export interface GanttLayout {
  /** Span start (epoch ms) and length (ms, at least 1). */
  startMs: number;
  spanMs: number;
  bars: GanttBar[];
  /** Tasks taken as done from an earlier run (no bar). */
  reused: { taskId: string; reusedFrom: string }[];
  /** Tasks that never started (no bar). */
  notStarted: { taskId: string; status: string }[];
}

/** Narrowest bar drawn, in percent, so a 1 ms task stays visible. */
export const MIN_BAR_PCT = 0.5;

function ms(iso: string | null | undefined): number | undefined {
  if (iso === null || iso === undefined) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Lays out a run's tasks on one time axis: from the run's (or earliest task's) start to its finish,
 * or to `now` while anything runs. Bars are clamped into [0, 100] percent.
 */
export function ganttLayout(
  tasks: readonly GanttTask[],
  run: { startedAt: string | null; finishedAt: string | null },
  now: number,
): GanttLayout {
  const reused: GanttLayout["reused"] = [];
  const notStarted: GanttLayout["notStarted"] = [];
  const timed: { task: GanttTask; start: number; end: number; running: boolean }[] = [];
  for (const task of tasks) {
    if (task.reusedFrom !== null && task.reusedFrom !== undefined && task.reusedFrom !== "") {
      reused.push({ taskId: task.taskId, reusedFrom: task.reusedFrom });
      continue;
    }
    const start = ms(task.startedAt);
    if (start === undefined) {
      notStarted.push({ taskId: task.taskId, status: task.status });
      continue;
    }
    const finish = ms(task.finishedAt);
    const end = Math.max(start, finish ?? now);
    timed.push({ task, start, end, running: finish === undefined });
  }
  const runStart = ms(run.startedAt);
  const runEnd = ms(run.finishedAt);
  let startMs = runStart ?? Number.POSITIVE_INFINITY;
  let endMs = runEnd ?? (runStart !== undefined ? now : Number.NEGATIVE_INFINITY);
  for (const t of timed) {
    startMs = Math.min(startMs, t.start);
    endMs = Math.max(endMs, t.end);
  }
  if (!Number.isFinite(startMs)) startMs = now;
  if (!Number.isFinite(endMs) || endMs < startMs) endMs = startMs;
  const spanMs = Math.max(1, endMs - startMs);
  const clamp = (v: number): number => Math.min(100, Math.max(0, v));
  const bars = timed.map(({ task, start, end, running }): GanttBar => {
    // A bar at the very end is moved left by its minimum width so it stays visible.
    const leftPct = Math.min(100 - MIN_BAR_PCT, clamp(((start - startMs) / spanMs) * 100));
    const widthPct = Math.min(100 - leftPct, Math.max(MIN_BAR_PCT, ((end - start) / spanMs) * 100));
    return { taskId: task.taskId, status: task.status, leftPct, widthPct, durationMs: end - start, running };
  });
  return { startMs, spanMs, bars, reused, notStarted };
}

/** A short human duration: `850ms`, `4.2s`, `3m 07s`, `2h 05m`, `3d 04h`. Negative is treated as 0. */
export function formatDuration(durationMs: number): string {
  const d = Number.isFinite(durationMs) ? Math.max(0, durationMs) : 0;
  if (d < 1000) return `${Math.round(d)}ms`;
  if (d < 10_000) return `${(Math.floor(d / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(d / 1000);
  if (s < 60) return `${s}s`;
  const pad = (n: number): string => String(n).padStart(2, "0");
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${pad(h % 24)}h`;
}

/** `5s ago`, `3m ago`, `in 2h` relative to `now` (both epoch ms). */
export function formatRelative(thenMs: number, now: number): string {
  const diff = now - thenMs;
  const text = formatDuration(Math.abs(diff)).split(" ")[0] ?? "";
  const rounded = Math.abs(diff) < 1000 ? "now" : text.replace(/\.\d+s$/, "s");
  if (rounded === "now") return "just now";
  return diff >= 0 ? `${rounded} ago` : `in ${rounded}`;
}

import { Link } from "react-router";
import { formatDuration, ganttLayout } from "../../../src/shared/timeline";
import { shortId } from "../format";
import { useNow } from "../hooks";
import type { RunRecord, TaskRunRecord } from "../types";

/** One bar per task from its start to its finish (running: to now, redrawn every second). */
export function Gantt({ run, tasks }: { run: RunRecord; tasks: readonly TaskRunRecord[] }) {
  const running = tasks.some((t) => t.startedAt !== null && t.finishedAt === null);
  const now = useNow(1000, running || (run.startedAt !== null && run.finishedAt === null));
  const g = ganttLayout(tasks, run, now);
  return (
    <div className="gantt" data-testid="gantt">
      {g.bars.length === 0 && g.reused.length === 0 && g.notStarted.length === 0 && (
        <p className="empty">No task has started yet.</p>
      )}
      {g.bars.length > 0 && (
        <ul className="gantt-rows" aria-label={`Task timeline over ${formatDuration(g.spanMs)}`}>
          {g.bars.map((b) => (
            <li key={b.taskId} className="gantt-row">
              <span className="gantt-label" title={b.taskId}>
                {b.taskId}
              </span>
              <span className="gantt-track">
                <span
                  className={`gantt-bar status-${b.status}${b.running ? " running" : ""}`}
                  data-testid="gantt-bar"
                  data-task-id={b.taskId}
                  data-status={b.status}
                  style={{ left: `${b.leftPct}%`, width: `${b.widthPct}%` }}
                  title={`${b.taskId}: ${b.status}, ${formatDuration(b.durationMs)}`}
                />
              </span>
              <span className="gantt-duration">
                {formatDuration(b.durationMs)}
                {b.running ? " (running)" : ""}
                <span className="visually-hidden">, {b.status}</span>
              </span>
            </li>
          ))}
        </ul>
      )}
      {(g.reused.length > 0 || g.notStarted.length > 0) && (
        <ul className="gantt-notes">
          {g.reused.map((r) => (
            <li key={r.taskId} data-task-id={r.taskId}>
              <span className="mono">{r.taskId}</span>: reused from{" "}
              <Link to={`/runs/${encodeURIComponent(r.reusedFrom)}`} className="mono" title={r.reusedFrom}>
                {shortId(r.reusedFrom)}
              </Link>
            </li>
          ))}
          {g.notStarted.map((r) => (
            <li key={r.taskId} data-task-id={r.taskId}>
              <span className="mono">{r.taskId}</span>: not started ({r.status})
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

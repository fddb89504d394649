import { Link } from "react-router";
import { localTime, runDuration, shortId } from "../format";
import { useNow } from "../hooks";
import { TERMINAL_RUN_STATUSES, type RunRecord } from "../types";
import { StatusBadge } from "./status-badge";

/** A table of runs (`run-row` rows), as on the runs page and a workflow's last runs. */
export function RunsTable({
  runs,
  testId,
  caption,
  showWorkflow = true,
}: {
  runs: readonly RunRecord[];
  testId: string;
  caption: string;
  showWorkflow?: boolean;
}) {
  const anyRunning = runs.some((r) => r.startedAt !== null && !TERMINAL_RUN_STATUSES.includes(r.status));
  const now = useNow(1000, anyRunning);
  return (
    <div className="table-wrap">
      <table data-testid={testId}>
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            {showWorkflow && <th scope="col">Workflow</th>}
            <th scope="col">Status</th>
            <th scope="col">Source</th>
            <th scope="col">Triggered by</th>
            <th scope="col">Created</th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.runId} data-testid="run-row" data-run-id={r.runId} data-status={r.status}>
              <td>
                <Link to={`/runs/${encodeURIComponent(r.runId)}`} className="mono" title={r.runId}>
                  {shortId(r.runId)}
                </Link>
              </td>
              {showWorkflow && (
                <td>
                  <Link to={`/workflows/${encodeURIComponent(r.workflowId)}`}>{r.workflowId}</Link>
                </td>
              )}
              <td>
                <StatusBadge status={r.status} />
              </td>
              <td>{r.source}</td>
              <td>{r.triggeredBy ?? ""}</td>
              <td>
                <time dateTime={r.createdAt}>{localTime(r.createdAt)}</time>
              </td>
              <td>{runDuration(r.startedAt, r.finishedAt, now)}</td>
            </tr>
          ))}
          {runs.length === 0 && (
            <tr>
              <td colSpan={showWorkflow ? 7 : 6} className="empty">
                No runs.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

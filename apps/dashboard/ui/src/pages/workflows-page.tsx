import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router";
import { apiGet, errorText } from "../api";
import { localTime, shortId } from "../format";
import { useEventStream, useTitle } from "../hooks";
import { isRunRecord } from "../live-runs";
import type { WorkflowsList } from "../types";

/** `/workflows`: every loaded workflow with its schedule and last runs (updated live). */
export function WorkflowsPage() {
  useTitle("Workflows");
  const queryClient = useQueryClient();
  const q = useQuery({ queryKey: ["workflows"], queryFn: () => apiGet<WorkflowsList>("/api/workflows") });
  useEventStream("/api/events", {
    run: (data) => {
      if (!isRunRecord(data)) return;
      queryClient.setQueryData<WorkflowsList>(["workflows"], (old) => {
        if (old === undefined) return old;
        return {
          ...old,
          workflows: old.workflows.map((w) => {
            if (w.id !== data.workflowId) return w;
            const entry = { runId: data.runId, status: data.status, createdAt: data.createdAt };
            const i = w.lastRuns.findIndex((r) => r.runId === data.runId);
            if (i !== -1) return { ...w, lastRuns: w.lastRuns.map((r, j) => (j === i ? entry : r)) };
            return { ...w, lastRuns: [entry, ...w.lastRuns].slice(0, 10) };
          }),
        };
      });
    },
    reset: () => {
      void queryClient.invalidateQueries();
    },
  });
  const errors = q.data?.errors ?? [];
  return (
    <>
      <h1>Workflows</h1>
      {q.error !== null && (
        <p className="error" role="alert">
          {errorText(q.error)}
        </p>
      )}
      {errors.length > 0 && (
        <div className="warning" role="status" data-testid="workflow-errors">
          <h2>Some workflow files did not load</h2>
          <ul>
            {errors.map((e, i) => (
              <li key={i}>
                <span className="mono">
                  {e.file}
                  {e.line !== null && e.line !== undefined ? `:${e.line}` : ""}
                  {e.column !== null && e.column !== undefined ? `:${e.column}` : ""}
                </span>
                {e.path !== null && e.path !== undefined && e.path !== "" ? ` (${e.path})` : ""}: {e.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      {q.isLoading ? (
        <p>Loading workflows…</p>
      ) : (
        <div className="table-wrap">
          <table data-testid="workflows-table">
            <caption className="visually-hidden">Workflows</caption>
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">Schedule</th>
                <th scope="col">Next run</th>
                <th scope="col">Last runs</th>
                <th scope="col">Tasks</th>
              </tr>
            </thead>
            <tbody>
              {(q.data?.workflows ?? []).map((w) => (
                <tr key={w.id} data-testid="workflow-row" data-workflow-id={w.id}>
                  <th scope="row">
                    <Link to={`/workflows/${encodeURIComponent(w.id)}`}>{w.id}</Link>
                    {w.name !== "" && w.name !== w.id && <div className="sub">{w.name}</div>}
                  </th>
                  <td>
                    {w.cron !== null && w.cron !== "" ? (
                      <>
                        <code>{w.cron}</code>
                        <div className="sub">{w.timezone ?? "UTC"}</div>
                      </>
                    ) : (
                      <span className="sub">manual / events</span>
                    )}
                  </td>
                  <td>
                    <NextOccurrences times={w.nextOccurrences} />
                  </td>
                  <td>
                    <ul className="dots" data-testid="last-runs" aria-label={`Last runs of ${w.id}`}>
                      {w.lastRuns.map((r) => (
                        <li key={r.runId}>
                          <Link
                            to={`/runs/${encodeURIComponent(r.runId)}`}
                            className={`dot status-${r.status}`}
                            data-status={r.status}
                            title={`${r.status} ${localTime(r.createdAt)}`}
                          >
                            <span className="visually-hidden">
                              {r.status} {localTime(r.createdAt)} (run {shortId(r.runId)})
                            </span>
                          </Link>
                        </li>
                      ))}
                      {w.lastRuns.length === 0 && <li className="sub">none</li>}
                    </ul>
                  </td>
                  <td>{w.taskCount}</td>
                </tr>
              ))}
              {q.data?.workflows.length === 0 && (
                <tr>
                  <td colSpan={5} className="empty">
                    No workflows loaded.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

/** The next occurrence, with the next ten in a <details>. */
export function NextOccurrences({ times }: { times: readonly string[] }) {
  if (times.length === 0)
    return (
      <div data-testid="next-occurrences" className="sub">
        none
      </div>
    );
  return (
    <div data-testid="next-occurrences">
      <time dateTime={times[0]}>{localTime(times[0])}</time>
      <details>
        <summary>next {times.length}</summary>
        <ol>
          {times.map((t) => (
            <li key={t}>
              <time dateTime={t}>{localTime(t)}</time>
            </li>
          ))}
        </ol>
      </details>
    </div>
  );
}

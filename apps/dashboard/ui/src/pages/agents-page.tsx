import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { formatRelative } from "../../../src/shared/timeline";
import { apiGet, errorText } from "../api";
import { StatusBadge } from "../components/status-badge";
import { localTime, shortId } from "../format";
import { useNow, useTitle } from "../hooks";
import type { AgentRecord } from "../types";

function labelsOf(labels: AgentRecord["labels"]): string[] {
  if (Array.isArray(labels)) return labels.map(String);
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${String(v)}`);
}

/** `/agents`: the agents the principal knows, refreshed every 5 s. */
export function AgentsPage() {
  useTitle("Agents");
  const q = useQuery({
    queryKey: ["agents"],
    queryFn: () => apiGet<{ agents: AgentRecord[] }>("/api/agents"),
    refetchInterval: 5000,
  });
  const now = useNow(1000);
  const agents = q.data?.agents ?? [];
  return (
    <>
      <h1>Agents</h1>
      {q.error !== null && (
        <p className="error" role="alert">
          {errorText(q.error)}
        </p>
      )}
      {q.isLoading ? (
        <p>Loading agents…</p>
      ) : (
        <div className="table-wrap">
          <table data-testid="agents-table">
            <caption className="visually-hidden">Agents</caption>
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Host</th>
                <th scope="col">Status</th>
                <th scope="col">Capacity</th>
                <th scope="col">Running runs</th>
                <th scope="col">Labels</th>
                <th scope="col">Version</th>
                <th scope="col">Last heartbeat</th>
                <th scope="col">Problems</th>
              </tr>
            </thead>
            <tbody>
              {agents.map((a) => (
                <tr key={a.agentId} data-testid="agent-row" data-agent-id={a.agentId} data-status={a.status}>
                  <th scope="row" className="mono">
                    {a.agentId}
                  </th>
                  <td>{a.host}</td>
                  <td>
                    <StatusBadge status={a.status} />
                  </td>
                  <td>{a.capacity}</td>
                  <td>
                    {a.runningRuns.length}
                    {a.runningRuns.length > 0 && (
                      <ul className="inline-list">
                        {a.runningRuns.map((r) => (
                          <li key={r}>
                            <Link to={`/runs/${encodeURIComponent(r)}`} className="mono" title={r}>
                              {shortId(r)}
                            </Link>
                          </li>
                        ))}
                      </ul>
                    )}
                  </td>
                  <td>
                    <ul className="inline-list">
                      {labelsOf(a.labels).map((l) => (
                        <li key={l} className="label">
                          {l}
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td>{a.version}</td>
                  <td>
                    <time dateTime={a.lastHeartbeatAt} title={localTime(a.lastHeartbeatAt)}>
                      {formatRelative(Date.parse(a.lastHeartbeatAt), now)}
                    </time>
                    <div className="sub">{localTime(a.lastHeartbeatAt)}</div>
                  </td>
                  <td>
                    {(a.problems ?? []).length > 0 ? (
                      <ul className="problems">
                        {(a.problems ?? []).map((p) => (
                          <li key={p}>{p}</li>
                        ))}
                      </ul>
                    ) : (
                      <span className="sub">none</span>
                    )}
                  </td>
                </tr>
              ))}
              {agents.length === 0 && (
                <tr>
                  <td colSpan={9} className="empty">
                    No agents.
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

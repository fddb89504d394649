import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { apiGet, apiPost, errorText, newIdempotencyKey } from "../api";
import { Dag } from "../components/dag";
import { Gantt } from "../components/gantt";
import { LogTail, useLogFeed } from "../components/log-tail";
import { StatusBadge } from "../components/status-badge";
import { LIVE_SAFETY_NET_MS, localTime, runDuration, shortId } from "../format";
import { useEventStream, useNow, useSession, useTitle } from "../hooks";
import {
  type CancelResult,
  type LogLine,
  RETRYABLE_RUN_STATUSES,
  type RunDetail,
  type RunRecord,
  TERMINAL_RUN_STATUSES,
  type TaskRunRecord,
  type TriggerResult,
} from "../types";

/** The newest record (highest attempt) of each task. */
export function latestTaskRecords(tasks: readonly TaskRunRecord[]): Map<string, TaskRunRecord> {
  const out = new Map<string, TaskRunRecord>();
  for (const t of tasks) {
    const prev = out.get(t.taskId);
    if (prev === undefined || t.attempt >= prev.attempt) out.set(t.taskId, t);
  }
  return out;
}

/** Merges a task record from a live event into a run's task list. */
export function mergeTask(tasks: readonly TaskRunRecord[], task: TaskRunRecord): TaskRunRecord[] {
  const i = tasks.findIndex((t) => t.taskId === task.taskId && t.attempt === task.attempt);
  if (i === -1) return [...tasks, task];
  const next = [...tasks];
  next[i] = task;
  return next;
}

/** The task record in a `task` event: `{ workflowId, task }` or the record itself. */
export function taskOfEvent(data: unknown): TaskRunRecord | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const d = data as { task?: unknown; taskId?: unknown };
  const t = (typeof d.task === "object" && d.task !== null ? d.task : d) as Partial<TaskRunRecord>;
  return typeof t.taskId === "string" && typeof t.runId === "string" ? (t as TaskRunRecord) : undefined;
}

function Field({ label, children, testId }: { label: string; children: React.ReactNode; testId?: string }) {
  return (
    <>
      <dt>{label}</dt>
      <dd data-testid={testId}>{children}</dd>
    </>
  );
}

function RunLink({ runId, testId }: { runId: string; testId?: string }) {
  return (
    <Link to={`/runs/${encodeURIComponent(runId)}`} className="mono" data-testid={testId} title={runId}>
      {runId}
    </Link>
  );
}

function RunActions({ run }: { run: RunRecord }) {
  const { session } = useSession();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [note, setNote] = useState<string | null>(null);
  const invalidate = (): void => {
    void queryClient.invalidateQueries({ queryKey: ["run", run.runId] });
    void queryClient.invalidateQueries({ queryKey: ["runs"] });
  };
  const cancel = useMutation({
    mutationFn: () => apiPost<CancelResult>(`/api/runs/${encodeURIComponent(run.runId)}/cancel`, {}),
    onSuccess: (r) => {
      setNote(r.cancelled ? "Cancellation requested." : `Not cancelled (status ${r.status}).`);
      invalidate();
    },
  });
  const rerun = useMutation({
    mutationFn: (fromFailed: boolean) =>
      apiPost<TriggerResult>(`/api/runs/${encodeURIComponent(run.runId)}/rerun`, {
        fromFailed,
        idempotencyKey: newIdempotencyKey(),
      }),
    onSuccess: (r) => {
      invalidate();
      if (r.skipped || r.runId === "") setNote(`The re-run was skipped (status ${r.status}).`);
      else void navigate(`/runs/${encodeURIComponent(r.runId)}`);
    },
  });
  if (session?.canWrite !== true) return null;
  const busy = cancel.isPending || rerun.isPending;
  const error = cancel.error ?? rerun.error;
  return (
    <div className="actions">
      {!TERMINAL_RUN_STATUSES.includes(run.status) && (
        <button type="button" data-testid="cancel-button" disabled={busy} onClick={() => cancel.mutate()}>
          Cancel
        </button>
      )}
      <button type="button" data-testid="rerun-button" disabled={busy} onClick={() => rerun.mutate(false)}>
        Re-run
      </button>
      {RETRYABLE_RUN_STATUSES.includes(run.status) && (
        <button type="button" data-testid="retry-failed-button" disabled={busy} onClick={() => rerun.mutate(true)}>
          Re-run from failed tasks
        </button>
      )}
      {note !== null && <span className="note">{note}</span>}
      {error !== null && (
        <p className="error" role="alert">
          {errorText(error)}
        </p>
      )}
    </div>
  );
}

/** `/runs/:runId`: header, actions, DAG, Gantt and the live log tail. */
export function RunPage() {
  const { runId = "" } = useParams();
  useTitle(`Run ${shortId(runId)}`);
  const queryClient = useQueryClient();
  const key = useMemo(() => ["run", runId] as const, [runId]);
  const q = useQuery({
    queryKey: key,
    queryFn: () => apiGet<RunDetail>(`/api/runs/${encodeURIComponent(runId)}`),
    // The live stream keeps the run current; an event lost between the page's read and the
    // stream's start (or in a reconnection) is caught up within LIVE_SAFETY_NET_MS until it ends.
    refetchInterval: (query) => {
      const status = query.state.data?.run.status;
      return status !== undefined && TERMINAL_RUN_STATUSES.includes(status) ? false : LIVE_SAFETY_NET_MS;
    },
  });
  const feed = useLogFeed(runId);
  const [logTask, setLogTask] = useState("");
  // The history is paged once the live stream is open (so no line falls between the two); if the
  // stream fails, or the server is slow to answer its headers, it is paged anyway.
  const historyStarted = useRef<string | null>(null);
  const startHistory = (): void => {
    if (historyStarted.current === runId) return;
    historyStarted.current = runId;
    feed.loadHistory();
  };
  useEffect(() => {
    const t = setTimeout(() => {
      if (historyStarted.current !== runId) {
        historyStarted.current = runId;
        feed.loadHistory();
      }
    }, 2000);
    return () => {
      clearTimeout(t);
      historyStarted.current = null;
    };
  }, [runId, feed.loadHistory]);

  useEventStream(runId === "" ? null : `/api/runs/${encodeURIComponent(runId)}/events`, {
    open: (reconnected) => {
      // Read the run again once the stream is open: what changed before it opened is in that read.
      void queryClient.invalidateQueries({ queryKey: key });
      if (!reconnected) startHistory();
    },
    error: startHistory,
    run: (data) => {
      const run = data as RunRecord;
      if (run?.runId !== runId) return;
      queryClient.setQueryData<RunDetail>(key, (old) => (old === undefined ? old : { ...old, run }));
    },
    task: (data) => {
      const task = taskOfEvent(data);
      if (task === undefined || task.runId !== runId) return;
      queryClient.setQueryData<RunDetail>(key, (old) =>
        old === undefined ? old : { ...old, tasks: mergeTask(old.tasks, task) },
      );
    },
    log: (data) => feed.push(data as LogLine),
    reset: () => {
      void queryClient.invalidateQueries({ queryKey: key });
      feed.loadHistory();
    },
  });

  const records = useMemo(() => latestTaskRecords(q.data?.tasks ?? []), [q.data?.tasks]);
  const run = q.data?.run;
  const running = run !== undefined && run.startedAt !== null && run.finishedAt === null;
  const now = useNow(1000, running);

  if (q.isLoading) return <p>Loading run…</p>;
  if (q.error !== null || run === undefined)
    return (
      <>
        <h1>Run {runId}</h1>
        <p className="error" role="alert">
          {q.error !== null ? errorText(q.error) : "Run not found."}
        </p>
      </>
    );
  const workflow = q.data?.workflow ?? null;
  const taskIds = workflow !== null ? Object.keys(workflow.tasks) : [...records.keys()];
  const params = Object.entries(run.params ?? {});
  return (
    <>
      <header className="page-header">
        <h1>
          Run <span className="mono">{run.runId}</span>{" "}
          <span className="badge-wrap">
            <StatusBadge status={run.status} testId="run-status" />
          </span>
        </h1>
        <RunActions run={run} />
      </header>
      <dl className="facts">
        <Field label="Workflow">
          <Link to={`/workflows/${encodeURIComponent(run.workflowId)}`}>{run.workflowId}</Link>
          {workflow === null && " (no longer loaded)"}
        </Field>
        <Field label="Created">{localTime(run.createdAt)}</Field>
        <Field label="Started">{localTime(run.startedAt) || "not yet"}</Field>
        <Field label="Finished">{localTime(run.finishedAt) || "not yet"}</Field>
        <Field label="Duration">{runDuration(run.startedAt, run.finishedAt, now) || "–"}</Field>
        <Field label="Source" testId="run-source">
          {run.source}
        </Field>
        <Field label="Triggered by" testId="run-triggered-by">
          {run.triggeredBy ?? "–"}
        </Field>
        <Field label="Idempotency key">
          <span className="mono">{run.idempotencyKey ?? "–"}</span>
        </Field>
        {run.scheduledFor !== null && <Field label="Scheduled for">{localTime(run.scheduledFor)}</Field>}
        {run.upstream !== null && run.upstream !== undefined && (
          <Field label="Upstream">
            <RunLink runId={run.upstream.runId} /> ({run.upstream.workflowId}, {run.upstream.status})
          </Field>
        )}
        {run.retryOf !== null && run.retryOf !== undefined && run.retryOf !== "" && (
          <Field label="Retry of">
            <RunLink runId={run.retryOf} testId="run-retry-of" />
          </Field>
        )}
        {run.agentId !== null && <Field label="Agent">{run.agentId}</Field>}
        {run.reason !== null && run.reason !== "" && <Field label="Reason">{run.reason}</Field>}
        {run.message !== null && run.message !== "" && <Field label="Message">{run.message}</Field>}
      </dl>
      <section aria-labelledby="params-heading">
        <h2 id="params-heading">Parameters</h2>
        <div className="table-wrap">
          <table data-testid="run-params" className="compact">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {params.map(([k, v]) => (
                <tr key={k}>
                  <th scope="row" className="mono">
                    {k}
                  </th>
                  <td className="mono">{JSON.stringify(v)}</td>
                </tr>
              ))}
              {params.length === 0 && (
                <tr>
                  <td colSpan={2} className="empty">
                    No parameters.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>
      <section aria-labelledby="dag-heading">
        <h2 id="dag-heading">Tasks</h2>
        <Dag tasks={workflow?.tasks ?? null} records={records} onTaskClick={setLogTask} />
      </section>
      <section aria-labelledby="gantt-heading">
        <h2 id="gantt-heading">Timeline</h2>
        <Gantt run={run} tasks={[...records.values()]} />
      </section>
      <LogTail feed={feed} taskIds={taskIds} task={logTask} onTaskChange={setLogTask} />
    </>
  );
}

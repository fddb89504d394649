import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useMemo, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import { apiGet, apiPost, errorText, newIdempotencyKey } from "../api";
import { Dag } from "../components/dag";
import { RunsTable } from "../components/runs-table";
import { LIVE_SAFETY_NET_MS } from "../format";
import { useEventStream, useSession, useTitle } from "../hooks";
import { applyRunEvent, isRunRecord } from "../live-runs";
import {
  TERMINAL_RUN_STATUSES,
  type ParamSpec,
  type ParamValue,
  type TaskRunRecord,
  type TriggerResult,
  type WorkflowDefinition,
  type WorkflowDetail,
} from "../types";
import { NextOccurrences } from "./workflows-page";

const NO_RECORDS: ReadonlyMap<string, TaskRunRecord> = new Map();

type FormValues = Record<string, string | boolean>;

function initialValues(params: Record<string, ParamSpec>): FormValues {
  const out: FormValues = {};
  for (const [name, spec] of Object.entries(params)) {
    if (spec.type === "boolean") out[name] = spec.default === true;
    else if (spec.default !== undefined) out[name] = String(spec.default);
    else if (spec.type === "enum" && spec.required) out[name] = String(spec.values?.[0] ?? "");
    else out[name] = "";
  }
  return out;
}

/** The params to send: numbers as numbers, enum values with their declared type, empty optional ones left out. */
function paramsToSend(specs: Record<string, ParamSpec>, values: FormValues): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const v = values[name];
    if (typeof v === "boolean") {
      out[name] = v;
      continue;
    }
    if (v === undefined || v === "") continue;
    if (spec.type === "number") out[name] = Number(v);
    else if (spec.type === "enum") out[name] = spec.values?.find((x) => String(x) === v) ?? v;
    else out[name] = v;
  }
  return out;
}

function TriggerForm({ workflow }: { workflow: WorkflowDefinition }) {
  const queryClient = useQueryClient();
  const specs = workflow.params ?? {};
  const [values, setValues] = useState<FormValues>(() => initialValues(specs));
  // One key per submission attempt: a double click (or a retry after a network error) reuses it,
  // so the server starts one run; it is renewed once a trigger succeeded or the values change.
  const attemptKey = useRef<string | null>(null);
  const trigger = useMutation({
    mutationFn: (body: { params: Record<string, ParamValue>; idempotencyKey: string }) =>
      apiPost<TriggerResult>(`/api/workflows/${encodeURIComponent(workflow.id)}/run`, body),
    onSuccess: () => {
      attemptKey.current = null;
      void queryClient.invalidateQueries({ queryKey: ["runs"] });
      void queryClient.invalidateQueries({ queryKey: ["workflow", workflow.id] });
      void queryClient.invalidateQueries({ queryKey: ["workflows"] });
    },
  });
  const set = (name: string, value: string | boolean): void => {
    attemptKey.current = null;
    setValues((old) => ({ ...old, [name]: value }));
  };
  const onSubmit = (e: FormEvent): void => {
    e.preventDefault();
    if (trigger.isPending) return;
    attemptKey.current ??= newIdempotencyKey();
    trigger.mutate({ params: paramsToSend(specs, values), idempotencyKey: attemptKey.current });
  };
  const entries = Object.entries(specs);
  return (
    <form className="trigger-form" data-testid="trigger-form" onSubmit={onSubmit} aria-labelledby="trigger-heading">
      <h2 id="trigger-heading">Trigger a run</h2>
      {entries.length === 0 && <p className="sub">This workflow takes no parameters.</p>}
      {entries.map(([name, spec]) => {
        const id = `param-${name}`;
        const help = spec.description !== undefined && spec.description !== "" ? `${id}-help` : undefined;
        const v = values[name];
        const label = (
          <label htmlFor={id}>
            {name}
            {spec.required && (
              <span className="required" title="required">
                {" "}
                * <span className="visually-hidden">(required)</span>
              </span>
            )}{" "}
            <span className="sub">({spec.type})</span>
          </label>
        );
        let input: React.ReactNode;
        if (spec.type === "boolean")
          input = (
            <input
              id={id}
              name={id}
              data-testid={id}
              type="checkbox"
              checked={v === true}
              aria-describedby={help}
              onChange={(e) => set(name, e.currentTarget.checked)}
            />
          );
        else if (spec.type === "enum")
          input = (
            <select
              id={id}
              name={id}
              data-testid={id}
              value={typeof v === "string" ? v : ""}
              required={spec.required}
              aria-describedby={help}
              onChange={(e) => set(name, e.currentTarget.value)}
            >
              {!spec.required && <option value="">(none)</option>}
              {(spec.values ?? []).map((x) => (
                <option key={String(x)} value={String(x)}>
                  {String(x)}
                </option>
              ))}
            </select>
          );
        else
          input = (
            <input
              id={id}
              name={id}
              data-testid={id}
              type={spec.type === "number" ? "number" : "text"}
              step={spec.type === "number" ? "any" : undefined}
              value={typeof v === "string" ? v : ""}
              required={spec.required}
              aria-describedby={help}
              onChange={(e) => set(name, e.currentTarget.value)}
            />
          );
        return (
          <div key={name} className={`field field-${spec.type}`}>
            {label}
            {input}
            {help !== undefined && (
              <p id={help} className="help">
                {spec.description}
              </p>
            )}
          </div>
        );
      })}
      <div className="actions">
        <button type="submit" data-testid="trigger-submit" disabled={trigger.isPending}>
          {trigger.isPending ? "Triggering…" : "Trigger"}
        </button>
      </div>
      {trigger.error !== null && (
        <p className="error" role="alert" data-testid="trigger-error">
          {errorText(trigger.error)}
        </p>
      )}
      {trigger.data !== undefined && (
        <p className="success" role="status" data-testid="trigger-result">
          {trigger.data.skipped ? "Skipped" : trigger.data.duplicate ? "Already started" : "Started"}: run{" "}
          <Link to={`/runs/${encodeURIComponent(trigger.data.runId)}`} className="mono">
            {trigger.data.runId}
          </Link>{" "}
          ({trigger.data.status})
        </p>
      )}
    </form>
  );
}

/** `/workflows/:id`: description, schedule, DAG, definition, trigger form and live last runs. */
export function WorkflowPage() {
  const { id = "" } = useParams();
  useTitle(`Workflow ${id}`);
  const queryClient = useQueryClient();
  const { session } = useSession();
  const key = useMemo(() => ["workflow", id] as const, [id]);
  const q = useQuery({
    queryKey: key,
    queryFn: () => apiGet<WorkflowDetail>(`/api/workflows/${encodeURIComponent(id)}`),
    refetchInterval: (query) =>
      query.state.data?.lastRuns.some((r) => !TERMINAL_RUN_STATUSES.includes(r.status)) === true
        ? LIVE_SAFETY_NET_MS
        : false,
  });
  useEventStream("/api/events", {
    run: (data) => {
      if (!isRunRecord(data) || data.workflowId !== id) return;
      queryClient.setQueryData<WorkflowDetail>(key, (old) => {
        if (old === undefined) return old;
        const next = applyRunEvent(old.lastRuns, data, { insert: true, filter: {}, cap: 20 });
        return next === old.lastRuns ? old : { ...old, lastRuns: [...next] };
      });
    },
    reset: () => {
      void queryClient.invalidateQueries();
    },
  });
  const definition = useMemo(() => (q.data === undefined ? "" : JSON.stringify(q.data.workflow, null, 2)), [q.data]);
  if (q.isLoading) return <p>Loading workflow…</p>;
  if (q.error !== null || q.data === undefined)
    return (
      <>
        <h1>Workflow {id}</h1>
        <p className="error" role="alert">
          {q.error !== null ? errorText(q.error) : "Workflow not found."}
        </p>
      </>
    );
  const { workflow, nextOccurrences, lastRuns } = q.data;
  return (
    <>
      <h1>
        Workflow <span className="mono">{workflow.id}</span>
      </h1>
      {workflow.name !== "" && workflow.name !== workflow.id && <p className="lead">{workflow.name}</p>}
      {workflow.description !== undefined && workflow.description !== "" && <p>{workflow.description}</p>}
      <dl className="facts">
        <dt>Schedule</dt>
        <dd>
          {workflow.cron !== null && workflow.cron !== undefined && workflow.cron !== "" ? (
            <code>{workflow.cron}</code>
          ) : (
            "none (manual or event-triggered)"
          )}
        </dd>
        <dt>Time zone</dt>
        <dd>{workflow.timezone ?? "UTC"}</dd>
        <dt>Next runs</dt>
        <dd>
          <NextOccurrences times={nextOccurrences} />
        </dd>
        {workflow.path !== undefined && (
          <>
            <dt>File</dt>
            <dd className="mono">{workflow.path}</dd>
          </>
        )}
      </dl>
      <section aria-labelledby="dag-heading">
        <h2 id="dag-heading">Tasks</h2>
        <Dag tasks={workflow.tasks} records={NO_RECORDS} />
      </section>
      <section aria-labelledby="trigger-section">
        <span id="trigger-section" className="visually-hidden">
          Trigger
        </span>
        {session?.canWrite === true ? (
          <TriggerForm key={workflow.id} workflow={workflow} />
        ) : (
          <p className="note">
            <Link to={`/signin?next=${encodeURIComponent(`/workflows/${workflow.id}`)}`}>Sign in</Link> as an operator
            to trigger this workflow.
          </p>
        )}
      </section>
      <section aria-labelledby="last-runs-heading">
        <h2 id="last-runs-heading">Last runs</h2>
        <RunsTable runs={lastRuns} testId="workflow-last-runs" caption="Last runs" showWorkflow={false} />
      </section>
      <section aria-labelledby="definition-heading">
        <h2 id="definition-heading">Definition</h2>
        {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable to scroll it by keyboard */}
        <pre className="definition" data-testid="workflow-definition" tabIndex={0}>
          {definition}
        </pre>
      </section>
    </>
  );
}

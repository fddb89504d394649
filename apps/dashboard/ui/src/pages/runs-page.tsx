import { keepPreviousData, type QueryClient, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useEffect, useMemo, useRef, useState } from "react";
import { useLocation, useNavigate, useSearchParams } from "react-router";
import { apiGet, errorText, withQuery } from "../api";
import { RunsTable } from "../components/runs-table";
import { LIVE_SAFETY_NET_MS, localInputToIso } from "../format";
import { useEventStream, useTitle } from "../hooks";
import { applyRunEvent, isRunRecord, type RunFilter } from "../live-runs";
import { RUN_STATUSES, TERMINAL_RUN_STATUSES, type RunsPage as RunsPageData, type WorkflowsList } from "../types";

const PAGE_SIZE = 50;
const FILTER_KEYS = ["workflow", "status", "source", "since", "until"] as const;

/** The source filter: typed freely, put in the URL (and fetched) 300 ms after the last key. */
function SourceFilter({ value, onChange }: { value: string; onChange: (value: string) => void }) {
  const [text, setText] = useState(value);
  const latest = useRef(onChange);
  latest.current = onChange;
  useEffect(() => setText(value), [value]);
  useEffect(() => {
    if (text === value) return;
    const t = setTimeout(() => latest.current(text), 300);
    return () => clearTimeout(t);
  }, [text, value]);
  return (
    <label>
      Source
      <input
        data-testid="filter-source"
        value={text}
        placeholder="any"
        onChange={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") latest.current(text);
        }}
      />
    </label>
  );
}

/** `/`: the runs, filtered (in the URL), paged by cursor and updated live. */
/** The runs page's filter as its URL says it (`?workflow=&status=&source=&since=&until=`). */
function filterOf(values: Record<keyof RunFilter, string>): RunFilter {
  return {
    workflow: values.workflow,
    status: values.status,
    source: values.source,
    since: localInputToIso(values.since),
    until: localInputToIso(values.until),
  };
}

/** The query of one page of runs (`cursor` null: the first). */
function runsQuery(filter: RunFilter, cursor: string | null) {
  return {
    queryKey: ["runs", filter, cursor] as const,
    queryFn: () => apiGet<RunsPageData>(withQuery("/api/runs", { ...filter, cursor, limit: PAGE_SIZE })),
  };
}

/**
 * Start reading the runs page's first page now (before React renders), when the browser opens on
 * it: the request overlaps the first render instead of following it.
 */
export function prefetchRunsPage(queryClient: QueryClient, pathname: string, search: string): void {
  if (pathname !== "/") return;
  const params = new URLSearchParams(search);
  const get = (name: string): string => params.get(name) ?? "";
  const filter = filterOf({
    workflow: get("workflow"),
    status: get("status"),
    source: get("source"),
    since: get("since"),
    until: get("until"),
  });
  void queryClient.prefetchQuery(runsQuery(filter, params.get("cursor")));
}

export function RunsPage() {
  useTitle("Runs");
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const location = useLocation();
  const queryClient = useQueryClient();
  const prevStack = ((location.state as { prev?: unknown } | null)?.prev ?? []) as (string | null)[];
  const values = {
    workflow: params.get("workflow") ?? "",
    status: params.get("status") ?? "",
    source: params.get("source") ?? "",
    since: params.get("since") ?? "",
    until: params.get("until") ?? "",
  };
  const cursor = params.get("cursor");
  const filter: RunFilter = useMemo(
    () =>
      filterOf({
        workflow: values.workflow,
        status: values.status,
        source: values.source,
        since: values.since,
        until: values.until,
      }),
    [values.workflow, values.status, values.source, values.since, values.until],
  );
  const query = useMemo(() => runsQuery(filter, cursor), [filter, cursor]);
  const key = query.queryKey;
  const runs = useQuery({
    ...query,
    placeholderData: keepPreviousData,
    refetchInterval: (query) =>
      query.state.data?.runs.some((r) => !TERMINAL_RUN_STATUSES.includes(r.status)) === true
        ? LIVE_SAFETY_NET_MS
        : false,
  });
  const workflows = useQuery({ queryKey: ["workflows"], queryFn: () => apiGet<WorkflowsList>("/api/workflows") });

  useEventStream("/api/events", {
    run: (data) => {
      if (!isRunRecord(data)) return;
      queryClient.setQueryData<RunsPageData>(key, (old) => {
        if (old === undefined) return old;
        const next = applyRunEvent(old.runs, data, { insert: cursor === null, filter, cap: PAGE_SIZE });
        return next === old.runs ? old : { ...old, runs: [...next] };
      });
    },
    reset: () => {
      void queryClient.invalidateQueries();
    },
  });

  const setFilter = (name: (typeof FILTER_KEYS)[number], value: string): void => {
    const next = new URLSearchParams(params);
    if (value === "") next.delete(name);
    else next.set(name, value);
    next.delete("cursor");
    void navigate({ search: next.toString() }, { replace: name === "source" });
  };
  const goto = (nextCursor: string | null, prev: (string | null)[]): void => {
    const next = new URLSearchParams(params);
    if (nextCursor === null) next.delete("cursor");
    else next.set("cursor", nextCursor);
    void navigate({ search: next.toString() }, { state: { prev } });
  };
  const onSubmit = (e: FormEvent): void => e.preventDefault();
  const workflowIds = (workflows.data?.workflows ?? []).map((w) => w.id);
  if (values.workflow !== "" && !workflowIds.includes(values.workflow)) workflowIds.push(values.workflow);

  return (
    <>
      <h1>Runs</h1>
      <form className="filters" onSubmit={onSubmit} aria-label="Filter runs">
        <label>
          Workflow
          <select
            data-testid="filter-workflow"
            value={values.workflow}
            onChange={(e) => setFilter("workflow", e.currentTarget.value)}
          >
            <option value="">all</option>
            {workflowIds.sort().map((id) => (
              <option key={id} value={id}>
                {id}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select
            data-testid="filter-status"
            value={values.status}
            onChange={(e) => setFilter("status", e.currentTarget.value)}
          >
            <option value="">all</option>
            {RUN_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <SourceFilter value={values.source} onChange={(v) => setFilter("source", v)} />
        <label>
          Since
          <input
            type="datetime-local"
            data-testid="filter-since"
            value={values.since}
            onChange={(e) => setFilter("since", e.currentTarget.value)}
          />
        </label>
        <label>
          Until
          <input
            type="datetime-local"
            data-testid="filter-until"
            value={values.until}
            onChange={(e) => setFilter("until", e.currentTarget.value)}
          />
        </label>
      </form>
      {runs.error !== null && (
        <p className="error" role="alert">
          {errorText(runs.error)}
        </p>
      )}
      {runs.isLoading ? (
        <p>Loading runs…</p>
      ) : (
        <RunsTable runs={runs.data?.runs ?? []} testId="runs-table" caption="Runs, newest first" />
      )}
      <nav className="pager" aria-label="Pages">
        <button
          type="button"
          data-testid="runs-prev-page"
          disabled={cursor === null}
          onClick={() => goto(prevStack[prevStack.length - 1] ?? null, prevStack.slice(0, -1))}
        >
          Previous page
        </button>
        <button
          type="button"
          data-testid="runs-next-page"
          disabled={runs.data?.nextCursor === null || runs.data?.nextCursor === undefined || runs.isPlaceholderData}
          onClick={() => {
            const next = runs.data?.nextCursor;
            if (typeof next === "string") goto(next, [...prevStack, cursor]);
          }}
        >
          Next page
        </button>
        {runs.isFetching && <span className="note">Refreshing…</span>}
      </nav>
    </>
  );
}

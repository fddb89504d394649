import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { filterLogLines, LOG_LEVELS, LogBuffer, type LogLevel } from "../../../src/shared/log-buffer";
import { apiGet, errorText, withQuery } from "../api";
import { clockTime } from "../format";
import type { LogLine, LogsPage } from "../types";
import { AnsiText, ansiVisibleText } from "./ansi-text";

/** Most lines kept in memory per run. */
const KEPT_LINES = 20_000;
/** Most lines rendered (the newest after filtering). */
const RENDERED_LINES = 2_000;
/** Longest line text rendered; the rest is cut with a note. */
const LINE_CHARS = 10_000;

/** The log lines of a run: live lines pushed by the caller's event stream plus the paged history. */
export interface LogFeed {
  lines: readonly LogLine[];
  /** Lines ever accepted (for the "buffered while paused" count). */
  added: number;
  loading: boolean;
  error: string | null;
  /** Adds a live `log` event. */
  push: (line: LogLine) => void;
  /** Pages GET /api/runs/:runId/logs from the start (again), merging into what is kept. */
  loadHistory: () => void;
}

/** Visible text per line (parsed once per line however often the filter runs). */
const visibleText = new WeakMap<LogLine, string>();
function visibleTextOf(line: LogLine): string {
  let text = visibleText.get(line);
  if (text === undefined) {
    text = ansiVisibleText(line.line);
    visibleText.set(line, text);
  }
  return text;
}

function isLogLine(v: unknown): v is LogLine {
  if (typeof v !== "object" || v === null) return false;
  const l = v as Record<string, unknown>;
  return (
    typeof l.time === "string" &&
    typeof l.taskId === "string" &&
    typeof l.seq === "number" &&
    typeof l.line === "string"
  );
}

/** Holds a run's log buffer; renders at most every 200 ms however fast lines arrive. */
export function useLogFeed(runId: string): LogFeed {
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new run gets a new, empty buffer
  const buffer = useMemo(() => new LogBuffer<LogLine>(KEPT_LINES), [runId]);
  const [snapshot, setSnapshot] = useState<{ lines: readonly LogLine[]; added: number }>({ lines: [], added: 0 });
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const generation = useRef(0);

  const schedule = useCallback(() => {
    if (timer.current !== null) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      setSnapshot({ lines: buffer.lines(), added: buffer.added });
    }, 200);
  }, [buffer]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: runs again for each new buffer (a new run)
  useEffect(() => {
    setSnapshot({ lines: [], added: 0 });
    setError(null);
    return () => {
      generation.current++;
      if (timer.current !== null) clearTimeout(timer.current);
      timer.current = null;
    };
  }, [buffer]);

  const push = useCallback(
    (line: LogLine) => {
      if (!isLogLine(line) || (line.runId !== undefined && line.runId !== runId)) return;
      if (buffer.add([line]) > 0) schedule();
    },
    [buffer, runId, schedule],
  );

  const loadHistory = useCallback(() => {
    const gen = ++generation.current;
    setLoading(true);
    setError(null);
    const run = async (): Promise<void> => {
      let cursor: string | null = null;
      do {
        const page: LogsPage = await apiGet<LogsPage>(
          withQuery(`/api/runs/${encodeURIComponent(runId)}/logs`, { cursor, limit: 1000 }),
        );
        if (gen !== generation.current) return;
        if (buffer.add(page.lines.filter(isLogLine)) > 0) schedule();
        cursor = page.nextCursor;
      } while (cursor !== null);
    };
    run().then(
      () => {
        if (gen === generation.current) setLoading(false);
      },
      (e: unknown) => {
        if (gen !== generation.current) return;
        setLoading(false);
        setError(errorText(e));
      },
    );
  }, [buffer, runId, schedule]);

  return { lines: snapshot.lines, added: snapshot.added, loading, error, push, loadHistory };
}

/** The log tail of a run: follow, pause/resume, search, level and task filters. */
export function LogTail({
  feed,
  taskIds,
  task,
  onTaskChange,
}: {
  feed: LogFeed;
  taskIds: readonly string[];
  task: string;
  onTaskChange: (taskId: string) => void;
}) {
  const [follow, setFollow] = useState(true);
  const [paused, setPaused] = useState<{ lines: readonly LogLine[]; added: number } | null>(null);
  const [search, setSearch] = useState("");
  const [level, setLevel] = useState<LogLevel | "">("");
  // Filtering waits for a pause in typing (a deferred value could starve under a flood of lines).
  const [deferredSearch, setDeferredSearch] = useState("");
  useEffect(() => {
    const t = setTimeout(() => setDeferredSearch(search), 150);
    return () => clearTimeout(t);
  }, [search]);
  const lines = paused?.lines ?? feed.lines;
  const buffered = paused === null ? 0 : feed.added - paused.added;
  const { shown, matched } = useMemo(
    () =>
      filterLogLines(lines, { minLevel: level, taskId: task, search: deferredSearch }, visibleTextOf, RENDERED_LINES),
    [lines, level, task, deferredSearch],
  );
  const scroller = useRef<HTMLElement>(null);
  useLayoutEffect(() => {
    const el = scroller.current;
    if (follow && el !== null) el.scrollTop = el.scrollHeight;
  });
  const allTasks = useMemo(() => {
    const set = new Set(taskIds);
    for (const l of feed.lines) set.add(l.taskId);
    return [...set].sort();
  }, [taskIds, feed.lines]);

  return (
    <section className="log-section" aria-labelledby="logs-heading">
      <h2 id="logs-heading">Logs</h2>
      <div className="log-controls">
        <label className="inline">
          <input
            type="checkbox"
            data-testid="log-follow"
            checked={follow}
            onChange={(e) => setFollow(e.currentTarget.checked)}
          />
          Follow
        </label>
        <button
          type="button"
          data-testid="log-pause"
          aria-pressed={paused !== null}
          onClick={() => setPaused(paused === null ? { lines: feed.lines, added: feed.added } : null)}
        >
          {paused === null ? "Pause" : "Resume"}
        </button>
        {paused !== null && (
          <span className="log-buffered" data-testid="log-buffered">
            {buffered} new {buffered === 1 ? "line" : "lines"} buffered
          </span>
        )}
        <label>
          Search
          <input
            type="search"
            data-testid="log-search"
            value={search}
            onChange={(e) => setSearch(e.currentTarget.value)}
          />
        </label>
        <label>
          Level
          <select
            data-testid="log-level"
            value={level}
            onChange={(e) => setLevel(e.currentTarget.value as LogLevel | "")}
          >
            <option value="">all</option>
            {LOG_LEVELS.map((l) => (
              <option key={l} value={l}>
                {l}+
              </option>
            ))}
          </select>
        </label>
        <label>
          Task
          <select data-testid="log-task" value={task} onChange={(e) => onTaskChange(e.currentTarget.value)}>
            <option value="">all tasks</option>
            {allTasks.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p className="log-status">
        {feed.loading ? "Loading history… " : ""}
        {feed.error !== null ? `Could not load the log history: ${feed.error}. ` : ""}
        {matched > shown.length
          ? `Showing the last ${shown.length} of ${matched} matching lines.`
          : `${shown.length} ${shown.length === 1 ? "line" : "lines"}.`}
      </p>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable to scroll it by keyboard */}
      <section className="log-tail" data-testid="log-tail" ref={scroller} tabIndex={0} aria-label="Log lines">
        <ol className="log-lines">
          {shown.map((l) => (
            <LogRow key={`${l.taskId}\u0000${l.seq}`} line={l} search={deferredSearch} />
          ))}
        </ol>
      </section>
    </section>
  );
}

/** One line; memoised so that new lines do not re-render the ones already shown. */
const LogRow = memo(function LogRow({ line: l, search }: { line: LogLine; search: string }) {
  return (
    <li
      className={`log-line level-${l.level} stream-${l.stream}`}
      data-testid="log-line"
      data-task-id={l.taskId}
      data-level={l.level}
      data-stream={l.stream}
    >
      <time className="log-time" dateTime={l.time}>
        {clockTime(l.time)}
      </time>
      <span className="log-task">{l.taskId}</span>
      <span className="log-level">{l.level}</span>
      <span className="log-text">
        <AnsiText text={l.line.length > LINE_CHARS ? l.line.slice(0, LINE_CHARS) : l.line} search={search} />
        {l.line.length > LINE_CHARS && (
          <span className="log-cut"> … ({l.line.length - LINE_CHARS} more characters)</span>
        )}
      </span>
    </li>
  );
});

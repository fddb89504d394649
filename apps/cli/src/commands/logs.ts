import { LOG_LEVELS, topics, type LogLevel, type LogLine, type QueryLogsRequestSchema } from "@cdktr/protocol";
import type { z } from "zod";
import type { CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { parseInstant } from "../format/duration.js";
import { formatLogLine } from "../format/log-line.js";
import { LiveFeed } from "../watch/live-feed.js";
import { LogSequencer } from "../watch/log-sequencer.js";
import { parseCount } from "./runs.js";

type QueryLogs = z.input<typeof QueryLogsRequestSchema>;

/** Options of `cdktr logs`. */
export interface LogsOptions {
  run?: string;
  workflow?: string;
  task?: string;
  since?: string;
  until?: string;
  level?: string;
  limit?: string;
  follow?: boolean;
  json?: boolean;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

function parseLevel(text: string): LogLevel {
  const l = text.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(l))
    throw new CliError(`unknown level ${JSON.stringify(text)}: use one of ${LOG_LEVELS.join(", ")}`, 2);
  return l as LogLevel;
}

/** `cdktr logs`: stored lines (the latest `--limit`), then with `--follow` new lines live. */
export async function logsCommand(ctx: CommandContext, opts: LogsOptions): Promise<number> {
  if (opts.run !== undefined && opts.workflow !== undefined)
    throw new CliError("use either --run or --workflow, not both", 2);
  const now = Date.now();
  const level = opts.level === undefined ? undefined : parseLevel(opts.level);
  const limit = opts.limit === undefined ? 1000 : parseCount(opts.limit, "--limit");
  // Without a run, default to the last 24 hours (as the original's API did).
  const sinceText = opts.since ?? (opts.run === undefined ? "24h" : undefined);
  const since = sinceText === undefined ? undefined : parseInstant(sinceText, "--since", now);
  const until = opts.until === undefined ? undefined : parseInstant(opts.until, "--until", now);
  if (opts.follow === true && opts.json === true)
    throw new CliError("--json prints one array and cannot be combined with --follow", 2);
  if (opts.follow === true && until !== undefined) throw new CliError("--until cannot be combined with --follow", 2);

  const client = ctx.client();
  let workflowId = opts.workflow;
  if (opts.run !== undefined) workflowId = (await client.getRun(opts.run)).run.workflowId;

  const filter: QueryLogs = {
    ...(opts.run === undefined ? {} : { runId: opts.run }),
    ...(workflowId === undefined ? {} : { workflowId }),
    ...(opts.task === undefined ? {} : { taskId: opts.task }),
  };
  const showRun = opts.run === undefined;
  const print = (l: LogLine): void => {
    if (level !== undefined && LEVEL_RANK[l.level] < LEVEL_RANK[level]) return;
    ctx.out(formatLogLine(l, ctx.style, { showRun }));
  };

  // Live feed first, so nothing published while we read the history is lost.
  const seq = new LogSequencer();
  let feed: LiveFeed | undefined;
  const live: LogLine[] = [];
  let historyDone = false;
  if (opts.follow === true) {
    const topic =
      workflowId === undefined
        ? topics.logs()
        : opts.run === undefined
          ? topics.logs(workflowId)
          : topics.logs(workflowId, opts.run, opts.task);
    feed = new LiveFeed({
      endpoint: await ctx.publishEndpoint(),
      key: ctx.key(),
      leaderWatch: ctx.client().leaderWatch,
      topics: [topic],
      onEvent: (e) => {
        if (e.kind !== "log" || !matches(e.line, filter)) return;
        if (!historyDone) live.push(e.line);
        else onLine(e.line);
      },
    });
  }

  const onLine = (l: LogLine): void => {
    // A task first seen live with seq > 1 shows as a gap; the poll below fills it or skips ahead.
    seq.add(l);
    for (const x of seq.drain()) print(x);
  };

  try {
    // History: the latest `limit` lines, printed oldest first.
    const history: LogLine[] = [];
    let cursor: string | undefined;
    while (history.length < limit) {
      const page = await client.queryLogs({
        ...filter,
        ...(since === undefined ? {} : { since }),
        ...(until === undefined ? {} : { until }),
        ...(level === undefined || opts.follow === true ? {} : { level }),
        order: "desc",
        limit: Math.min(1000, limit - history.length),
        ...(cursor === undefined ? {} : { cursor }),
      });
      history.push(...page.lines);
      if (page.nextCursor === null || page.lines.length === 0) break;
      cursor = page.nextCursor;
    }
    history.reverse();
    if (opts.json === true) {
      ctx.out(JSON.stringify(history, null, 2));
      return 0;
    }
    if (history.length === limit && opts.follow !== true)
      ctx.err(ctx.style.dim(`(showing the latest ${limit} lines; --limit N shows more)`));
    if (opts.follow !== true) {
      for (const l of history) print(l);
      return 0;
    }
    // Follow: seed each task after its last printed line, then merge the live lines.
    const firstSeq = new Map<string, number>();
    for (const l of history) {
      const k = `${l.runId}\u0000${l.taskId}`;
      if (!firstSeq.has(k)) {
        firstSeq.set(k, l.seq);
        seq.seed(l.runId, l.taskId, l.seq);
      }
      seq.add(l);
    }
    for (const x of seq.drain()) print(x);
    historyDone = true;
    for (const l of live.splice(0)) onLine(l);
    const windowStart = since ?? new Date(now).toISOString();
    let watermark = history.length > 0 ? Date.parse(history[history.length - 1]?.time ?? "") : now;
    const stop = ctx.io.interrupted.then(() => "stop" as const);
    for (;;) {
      const r = await Promise.race([stop, new Promise<"tick">((res) => setTimeout(() => res("tick"), 1000).unref())]);
      if (r === "stop") break;
      // Reconcile: lines missed by the feed, and holes in a task's sequence.
      const page = await client.queryLogs({
        ...filter,
        since: new Date(watermark - 2000).toISOString(),
        order: "asc",
        limit: 1000,
      });
      for (const l of page.lines) {
        watermark = Math.max(watermark, Date.parse(l.time));
        if (!seq.started(l.runId, l.taskId)) seq.seed(l.runId, l.taskId, 1);
        seq.add(l);
      }
      for (const gap of seq.gaps()) {
        if (gap.ageMs < 500) continue;
        const fill = await client.queryLogs({
          runId: gap.runId,
          taskId: gap.taskId,
          since: gap.since ?? windowStart,
          order: "asc",
          limit: 1000,
        });
        for (const l of fill.lines) seq.add(l);
        // Still no earlier line: the task's first lines are older than the window shown.
        if (gap.since === null) seq.skipToHeld(gap.runId, gap.taskId);
      }
      for (const x of seq.drain()) print(x);
    }
    return 0;
  } finally {
    await feed?.close();
  }
}

function matches(l: LogLine, f: QueryLogs): boolean {
  if (f.runId !== undefined && l.runId !== f.runId) return false;
  if (f.workflowId !== undefined && l.workflowId !== f.workflowId) return false;
  if (f.taskId !== undefined && l.taskId !== f.taskId) return false;
  return true;
}

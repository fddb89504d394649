/**
 * The invariants of the soak, computed from what the principal stored, the load generator's
 * acknowledgements and the tasks' side-effect file. Pure functions (tested on their own in
 * checks.test.ts, so a check that cannot fail would be noticed).
 */
import { isTerminalRunStatus, type LogLine, type RunRecord, type TaskRunRecord } from "@cdktr/protocol";
import { expectedLines } from "./workflows.js";

/** Everything the checks read. */
export interface SoakObservations {
  seed: number;
  /** Triggers the principal (directly or through the webhook) acknowledged: idempotency key -> run id. */
  acked: ReadonlyMap<string, string>;
  /** Every run the principal holds. */
  runs: readonly RunRecord[];
  /** Tasks of every run, by run id. */
  tasks: ReadonlyMap<string, readonly TaskRunRecord[]>;
  /** Stored log lines of every run, by run id. */
  logs: ReadonlyMap<string, readonly LogLine[]>;
  /** Lines of the side-effect file (`<runId> <taskId>`). */
  effects: readonly string[];
  /** Lines printed by each task that completes: workflow -> task -> count. */
  lineCounts: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** The cron workflow checked for occurrences. */
  cronWorkflow: string;
  /** Last occurrence (epoch ms) that must have been triggered: the scheduler ran well past it. */
  occurrencesUntilMs: number;
  /** Time from each principal restart to its first answered ping (ms). */
  recoveriesMs: readonly number[];
  /** Processes that exited without being told to (name and how). */
  unexpectedExits: readonly string[];
}

/** What `soak/results/latest.json` holds. */
export interface SoakResult {
  acked: number;
  terminal: number;
  executedTwice: number;
  requeuedAfterCrash: number;
  logLinesLost: number;
  logLinesDuplicated: number;
  occurrencesDuplicated: number;
  occurrencesMissed: number;
  principalRestarts: number;
  recoveryMsP50: number | null;
  recoveryMsMax: number | null;
  seed: number;
  invariantsHeld: boolean;
  /** The broken invariants, one sentence each (empty when `invariantsHeld`). */
  violations: string[];
  /** Supporting figures: runs by status, occurrences expected, completed tasks checked, examples. */
  details: Record<string, unknown>;
}

/** Percentile `p` (0-100, nearest rank) of `values`; null when empty. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? null;
}

const SECOND = 1000;

/** Run every check; `invariantsHeld` is false and `violations` says why when one breaks. */
export function checkSoak(o: SoakObservations): SoakResult {
  const violations: string[] = [];
  const byId = new Map(o.runs.map((r) => [r.runId, r]));

  // 1. Every acknowledged trigger ended in a terminal state.
  let terminal = 0;
  const notTerminal: string[] = [];
  for (const [key, runId] of o.acked) {
    const run = byId.get(runId);
    if (run !== undefined && isTerminalRunStatus(run.status)) terminal++;
    else notTerminal.push(`${key} -> ${runId} (${run?.status ?? "missing"})`);
  }
  if (notTerminal.length > 0)
    violations.push(
      `${notTerminal.length} acknowledged trigger(s) not terminal: ${notTerminal.slice(0, 5).join(", ")}`,
    );
  const stuck = o.runs.filter((r) => !isTerminalRunStatus(r.status));
  if (stuck.length > 0)
    violations.push(
      `${stuck.length} run(s) not terminal after quiescence: ${stuck
        .slice(0, 5)
        .map((r) => `${r.runId} ${r.workflowId} ${r.status}`)
        .join(", ")}`,
    );

  // 2. No task executed twice within one run (a requeued run is a new run, counted apart).
  const executions = new Map<string, number>();
  for (const line of o.effects) {
    if (line.trim() === "") continue;
    executions.set(line.trim(), (executions.get(line.trim()) ?? 0) + 1);
  }
  const twice = [...executions].filter(([, n]) => n > 1);
  const executedTwice = twice.reduce((sum, [, n]) => sum + n - 1, 0);
  if (executedTwice > 0)
    violations.push(
      `${executedTwice} extra execution(s): ${twice
        .slice(0, 5)
        .map(([k, n]) => `${k} x${n}`)
        .join(", ")}`,
    );
  const requeued = o.runs.filter((r) => r.source === "requeue");
  const crashed = o.runs.filter((r) => r.status === "CRASHED");

  // 3. Log lines of COMPLETED tasks: each expected line stored exactly once, nothing else.
  let logLinesLost = 0;
  let logLinesDuplicated = 0;
  let logLinesUnexpected = 0;
  let completedTasks = 0;
  const logProblems: string[] = [];
  /** Lost lines by the status of their run (a CRASHED run's agent was lost while it ran). */
  const lostByRunStatus: Record<string, number> = {};
  for (const run of o.runs) {
    const counts = o.lineCounts[run.workflowId];
    if (counts === undefined) continue;
    const lines = o.logs.get(run.runId) ?? [];
    for (const t of o.tasks.get(run.runId) ?? []) {
      if (t.status !== "COMPLETED") continue;
      completedTasks++;
      const want = expectedLines(t.taskId, counts[t.taskId] ?? 0);
      const got = new Map<string, number>();
      for (const l of lines)
        if (l.taskId === t.taskId && l.stream === "stdout") got.set(l.line, (got.get(l.line) ?? 0) + 1);
      let lost = 0;
      let dup = 0;
      for (const w of want) {
        const n = got.get(w) ?? 0;
        if (n === 0) lost++;
        if (n > 1) dup += n - 1;
        got.delete(w);
      }
      const unexpected = [...got.values()].reduce((a, b) => a + b, 0);
      if (lost + dup + unexpected > 0)
        logProblems.push(
          `${run.runId}/${t.taskId} (${run.workflowId} run ${run.status} on ${run.agentId ?? "no agent"}, task finished ${t.finishedAt ?? "?"}): ${lost} lost, ${dup} duplicated, ${unexpected} unexpected`,
        );
      lostByRunStatus[run.status] = (lostByRunStatus[run.status] ?? 0) + lost;
      logLinesLost += lost;
      logLinesDuplicated += dup;
      logLinesUnexpected += unexpected;
    }
  }
  if (logLinesLost > 0)
    violations.push(`${logLinesLost} log line(s) of COMPLETED tasks lost: ${logProblems.slice(0, 5).join("; ")}`);
  if (logLinesDuplicated > 0)
    violations.push(
      `${logLinesDuplicated} log line(s) of COMPLETED tasks duplicated: ${logProblems.slice(0, 5).join("; ")}`,
    );
  if (logLinesUnexpected > 0)
    violations.push(
      `${logLinesUnexpected} unexpected stdout line(s) in COMPLETED tasks: ${logProblems.slice(0, 5).join("; ")}`,
    );

  // 4. Scheduled occurrences: each second from the first recorded one to `occurrencesUntilMs`
  // exactly once (catch_up: all covers every outage of the soak; nothing is excluded).
  const occurrences = new Map<number, number>();
  for (const r of o.runs) {
    if (r.workflowId !== o.cronWorkflow || r.source !== "scheduler" || r.scheduledFor === null) continue;
    const at = Date.parse(r.scheduledFor);
    occurrences.set(at, (occurrences.get(at) ?? 0) + 1);
  }
  const dups = [...occurrences].filter(([, n]) => n > 1);
  const occurrencesDuplicated = dups.reduce((sum, [, n]) => sum + n - 1, 0);
  if (occurrencesDuplicated > 0)
    violations.push(
      `${occurrencesDuplicated} duplicated occurrence(s): ${dups
        .slice(0, 5)
        .map(([at, n]) => `${new Date(at).toISOString()} x${n}`)
        .join(", ")}`,
    );
  const first = occurrences.size === 0 ? null : Math.min(...occurrences.keys());
  const missed: number[] = [];
  let expectedOccurrences = 0;
  if (first === null) violations.push(`no occurrence of ${o.cronWorkflow} was recorded at all`);
  else
    for (let at = first; at <= o.occurrencesUntilMs; at += SECOND) {
      expectedOccurrences++;
      if (!occurrences.has(at)) missed.push(at);
    }
  if (missed.length > 0)
    violations.push(
      `${missed.length} missed occurrence(s): ${missed
        .slice(0, 10)
        .map((at) => new Date(at).toISOString())
        .join(", ")}`,
    );

  if (o.unexpectedExits.length > 0)
    violations.push(
      `${o.unexpectedExits.length} unexpected process exit(s): ${o.unexpectedExits.slice(0, 5).join("; ")}`,
    );

  const byStatus: Record<string, number> = {};
  for (const r of o.runs) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  return {
    acked: o.acked.size,
    terminal,
    executedTwice,
    requeuedAfterCrash: requeued.length,
    logLinesLost,
    logLinesDuplicated,
    occurrencesDuplicated,
    occurrencesMissed: missed.length,
    principalRestarts: o.recoveriesMs.length,
    recoveryMsP50: percentile(o.recoveriesMs, 50),
    recoveryMsMax: o.recoveriesMs.length === 0 ? null : Math.max(...o.recoveriesMs),
    seed: o.seed,
    invariantsHeld: violations.length === 0,
    violations,
    details: {
      runs: o.runs.length,
      runsByStatus: byStatus,
      crashedRuns: crashed.length,
      // Why each CRASHED run crashed (a failover must crash none: the HA soak asserts it), for
      // the report of a failure: run, agent, reason, message, and when it started and ended.
      crashedRunsWhy: crashed.slice(0, 20).map((r) => ({
        runId: r.runId,
        agentId: r.agentId,
        reason: r.reason,
        message: r.message,
        startedAt: r.startedAt,
        finishedAt: r.finishedAt,
      })),
      stuckRuns: stuck.length,
      completedTasksChecked: completedTasks,
      logLinesUnexpected,
      logLinesLostByRunStatus: lostByRunStatus,
      logProblems: logProblems.slice(0, 100),
      expectedOccurrences,
      occurrencesFrom: first === null ? null : new Date(first).toISOString(),
      occurrencesUntil: new Date(o.occurrencesUntilMs).toISOString(),
      executions: o.effects.filter((l) => l.trim() !== "").length,
      unexpectedExits: [...o.unexpectedExits],
    },
  };
}

/**
 * The principal's Prometheus metrics (`/metrics` on `CDKTR_METRICS_PORT`): what it stores and
 * dispatches, counted as the events it publishes pass by, and gauges read from the leader's term
 * at each scrape. Names follow the Prometheus conventions: the `cdktr_` prefix, base units
 * (seconds), `_total` for counters; statuses as the API spells them.
 */
import { isTerminalRunStatus, isTerminalTaskStatus, type RunRecord, type TaskRunRecord } from "@cdktr/protocol";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { AgentRegistry } from "../agents/agent-registry.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";

/** Seconds: from a few milliseconds (a trigger's commit) to hours (a long run). */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400];
/** Seconds: a trigger's acknowledgement and a dispatch are milliseconds when all is well. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Run ids counted as finished, remembered to count each once (events may repeat a state). */
const REMEMBERED_FINISHED = 10_000;

/** What the gauges read at scrape time: the leader's term (null on a standby). */
export interface MetricsSources {
  term(): { dispatcher: Dispatcher; agents: AgentRegistry } | null;
  /** The principal's clock (heartbeat ages). */
  now(): number;
  /** What is wrong with the storage now (`Store.problems`). */
  storageProblems(): readonly string[];
}

/** The storage problems the principal reports, each a series of `cdktr_storage_problem`. */
const STORAGE_PROBLEMS = ["disk full", "database unreachable"] as const;

/**
 * Seconds from `from` to `to`. The two times may come from two clocks (a run's creation and a
 * crash are the principal's, its start and finish the agent's), so a skew between machines can
 * make the difference negative: it counts as 0, so that a histogram's count still matches its runs.
 */
function seconds(from: string | null, to: string | null): number | null {
  if (from === null || to === null) return null;
  const s = (Date.parse(to) - Date.parse(from)) / 1000;
  if (!Number.isFinite(s)) return null;
  return Math.max(0, s);
}

/** A set of the last `cap` keys added. */
class RecentSet {
  readonly #keys = new Set<string>();
  constructor(private readonly cap: number) {}
  /** Add `key`; false when it was there already. */
  add(key: string): boolean {
    if (this.#keys.has(key)) return false;
    this.#keys.add(key);
    if (this.#keys.size > this.cap) {
      const oldest = this.#keys.values().next().value;
      if (oldest !== undefined) this.#keys.delete(oldest);
    }
    return true;
  }
}

/** The principal's metrics, in a registry of their own (several principals may share a process in tests). */
export class PrincipalMetrics {
  /** What `/metrics` serves (`HealthServer`). */
  readonly registry = new Registry();
  readonly #runs: Counter<"workflow" | "status">;
  readonly #runDuration: Histogram<"workflow" | "status">;
  readonly #tasks: Counter<"workflow" | "status">;
  readonly #taskDuration: Histogram<"workflow" | "status">;
  readonly #dispatch: Histogram<"workflow">;
  readonly #triggers: Counter<"outcome">;
  readonly #triggerAck: Histogram;
  readonly #logLines: Counter;
  /** The log-ingest backlog (set once the log server exists). */
  #logBacklog: () => number = () => 0;
  readonly #finishedRuns = new RecentSet(REMEMBERED_FINISHED);
  readonly #startedRuns = new RecentSet(REMEMBERED_FINISHED);
  readonly #finishedTasks = new RecentSet(REMEMBERED_FINISHED);

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#runs = new Counter({
      name: "cdktr_runs_total",
      help: "Runs that finished, by workflow and final status (COMPLETED, FAILED, CRASHED, CANCELLED, SKIPPED).",
      labelNames: ["workflow", "status"],
      registers,
    });
    this.#runDuration = new Histogram({
      name: "cdktr_run_duration_seconds",
      help: "Time from a run's start on an agent to its end, by workflow and final status.",
      labelNames: ["workflow", "status"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#tasks = new Counter({
      name: "cdktr_tasks_total",
      help: "Tasks that finished, by workflow and final status.",
      labelNames: ["workflow", "status"],
      registers,
    });
    this.#taskDuration = new Histogram({
      name: "cdktr_task_duration_seconds",
      help: "Time from a task's start to its end (all attempts), by workflow and final status.",
      labelNames: ["workflow", "status"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#dispatch = new Histogram({
      name: "cdktr_dispatch_latency_seconds",
      help: "Time from a run's trigger (committed) to its start on an agent (the agent's clock).",
      labelNames: ["workflow"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#triggers = new Counter({
      name: "cdktr_triggers_total",
      help: "Triggers answered (runWorkflow and each item of runWorkflows): accepted (a new or known run) or refused.",
      labelNames: ["outcome"],
      registers,
    });
    this.#triggerAck = new Histogram({
      name: "cdktr_trigger_ack_seconds",
      help: "Time from a trigger's arrival to its answer (after its commit).",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#logLines = new Counter({
      name: "cdktr_log_lines_ingested_total",
      help: "Log lines stored (duplicates of lines already stored are not counted).",
      registers,
    });
    new Gauge({
      name: "cdktr_storage_problem",
      help: "1 while the store reports this problem (writes are refused with a retryable error), else 0.",
      labelNames: ["problem"],
      registers,
      collect() {
        const now = sources.storageProblems();
        for (const problem of STORAGE_PROBLEMS) this.set({ problem }, now.includes(problem) ? 1 : 0);
      },
    });
    const backlog = (): number => this.#logBacklog();
    new Gauge({
      name: "cdktr_log_lines_pending",
      help: "Log lines received from agents and not yet stored (the ingest backlog; bounded per agent by CDKTR_LOG_INGEST_MAX_PENDING_LINES).",
      registers,
      collect() {
        this.set(backlog());
      },
    });
    new Gauge({
      name: "cdktr_queue_depth",
      help: "Runs QUEUED, waiting for an agent (0 on a standby principal).",
      registers,
      collect() {
        this.set(sources.term()?.dispatcher.queuedCount() ?? 0);
      },
    });
    new Gauge({
      name: "cdktr_active_runs",
      help: "Runs an agent holds, by status (ASSIGNED or RUNNING; 0 on a standby principal).",
      labelNames: ["status"],
      registers,
      collect() {
        const counts = sources.term()?.dispatcher.heldCounts() ?? { ASSIGNED: 0, RUNNING: 0 };
        this.set({ status: "ASSIGNED" }, counts.ASSIGNED);
        this.set({ status: "RUNNING" }, counts.RUNNING);
      },
    });
    new Gauge({
      name: "cdktr_agents",
      help: "Agents known to the leader, by status (ACTIVE or LOST).",
      labelNames: ["status"],
      registers,
      collect() {
        const agents = sources.term()?.agents.list() ?? [];
        this.set({ status: "ACTIVE" }, agents.filter((a) => a.status === "ACTIVE").length);
        this.set({ status: "LOST" }, agents.filter((a) => a.status === "LOST").length);
      },
    });
    new Gauge({
      name: "cdktr_agent_heartbeat_age_seconds",
      help: "Time since each active agent was last heard from (a heartbeat, a report or a log batch).",
      labelNames: ["agent"],
      registers,
      collect() {
        this.reset();
        const now = sources.now();
        for (const a of sources.term()?.agents.list() ?? []) {
          if (a.status !== "ACTIVE") continue;
          this.set({ agent: a.agentId }, Math.max(0, (now - Date.parse(a.lastHeartbeatAt)) / 1000));
        }
      },
    });
  }

  /** A run's committed state change (what the principal publishes). */
  run(run: RunRecord): void {
    if (run.status === "RUNNING" && this.#startedRuns.add(run.runId)) {
      const s = seconds(run.createdAt, run.startedAt);
      if (s !== null) this.#dispatch.observe({ workflow: run.workflowId }, s);
    }
    if (!isTerminalRunStatus(run.status) || !this.#finishedRuns.add(run.runId)) return;
    const labels = { workflow: run.workflowId, status: run.status };
    this.#runs.inc(labels);
    const s = seconds(run.startedAt, run.finishedAt);
    if (s !== null) this.#runDuration.observe(labels, s);
  }

  /** Task rows that changed (what the principal publishes). */
  tasks(workflowId: string, tasks: readonly TaskRunRecord[]): void {
    for (const t of tasks) {
      if (!isTerminalTaskStatus(t.status) || !this.#finishedTasks.add(`${t.runId}/${t.taskId}`)) continue;
      const labels = { workflow: workflowId, status: t.status };
      this.#tasks.inc(labels);
      const s = seconds(t.startedAt, t.finishedAt);
      if (s !== null) this.#taskDuration.observe(labels, s);
    }
  }

  /** A trigger answered after `ms`; `accepted` false when it was refused. */
  trigger(ms: number, accepted: boolean): void {
    this.#triggers.inc({ outcome: accepted ? "accepted" : "refused" });
    this.#triggerAck.observe(ms / 1000);
  }

  /** Where {@link PrincipalMetrics} reads the log-ingest backlog from. */
  logBacklogFrom(read: () => number): void {
    this.#logBacklog = read;
  }

  /** `n` log lines newly stored. */
  logLines(n: number): void {
    if (n > 0) this.#logLines.inc(n);
  }
}

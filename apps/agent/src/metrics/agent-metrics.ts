/**
 * The agent's Prometheus metrics (`/metrics` on `CDKTR_METRICS_PORT`): the runs it finished, its
 * slots, and how far its log lines and status reports got. Gauges are read at each scrape.
 */
import type { RunStatus } from "@cdktr/protocol";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/** What the gauges read at scrape time. */
export interface AgentMetricsSources {
  /** Runs executing now. */
  executing(): number;
  /** `CDKTR_AGENT_MAX_CONCURRENCY`. */
  capacity: number;
  /** Whether the principal knows this agent now. */
  registered(): boolean;
  /** Bytes of log lines held in memory and in the spool, not yet acknowledged. */
  logMemoryBytes(): number;
  logSpoolBytes(): number;
  /** Status reports journaled and not yet acknowledged. */
  statusPending(): number;
}

/** The agent's metrics, in a registry of their own. */
export class AgentMetrics {
  /** What `/metrics` serves (`HealthServer`). */
  readonly registry = new Registry();
  readonly #runs: Counter<"workflow" | "status">;
  readonly #logLines: Counter;

  constructor(sources: AgentMetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#runs = new Counter({
      name: "cdktr_agent_runs_total",
      help: "Runs this agent process executed to the end, by workflow and final status.",
      labelNames: ["workflow", "status"],
      registers,
    });
    this.#logLines = new Counter({
      name: "cdktr_agent_log_lines_delivered_total",
      help: "Task output lines the principal acknowledged (sent from memory or from the spool).",
      registers,
    });
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    };
    gauge("cdktr_agent_runs_executing", "Runs executing now (each holds a slot).", sources.executing);
    gauge(
      "cdktr_agent_capacity",
      "Runs this agent executes at once at most (CDKTR_AGENT_MAX_CONCURRENCY).",
      () => sources.capacity,
    );
    gauge("cdktr_agent_registered", "1 while the principal knows this agent, 0 while it registers again.", () =>
      sources.registered() ? 1 : 0,
    );
    gauge("cdktr_agent_log_memory_bytes", "Task output held in memory, not yet acknowledged.", sources.logMemoryBytes);
    gauge(
      "cdktr_agent_log_spool_bytes",
      "Task output in the spool files, not yet acknowledged.",
      sources.logSpoolBytes,
    );
    gauge(
      "cdktr_agent_status_reports_pending",
      "Status reports journaled in the outbox and not yet acknowledged by the principal.",
      sources.statusPending,
    );
  }

  /** A run's execution ended with `status`. */
  runEnded(workflowId: string, status: RunStatus): void {
    this.#runs.inc({ workflow: workflowId, status });
  }

  /** `n` log lines were acknowledged. */
  logLinesDelivered(n: number): void {
    if (n > 0) this.#logLines.inc(n);
  }
}

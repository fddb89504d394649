/**
 * The scheduler's Prometheus metrics (`/metrics` on `CDKTR_METRICS_PORT`): what became of the
 * cron occurrences, and how late their triggers were stored.
 */
import type { CronScheduler, TriggerResult } from "@cdktr/events";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Seconds: an occurrence on time is stored within milliseconds of its instant. */
const LATENESS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** The prefix of the idempotency key of a cron occurrence (`cron:<workflowId>:<ISO instant>`). */
const CRON_KEY = "cron:";

/** The scheduler's metrics, in a registry of their own. */
export class SchedulerMetrics {
  /** What `/metrics` serves (`HealthServer`). */
  readonly registry = new Registry();
  readonly #lateness: Histogram<"workflow">;

  constructor(scheduler: CronScheduler) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#lateness = new Histogram({
      name: "cdktr_scheduler_trigger_lateness_seconds",
      help: "Time from an occurrence's instant to the principal's answer that it stored its run (new runs only).",
      labelNames: ["workflow"],
      buckets: LATENESS_BUCKETS,
      registers,
    });
    // Counted by the scheduler itself: exposed as they are at each scrape.
    new Counter({
      name: "cdktr_scheduler_occurrences_total",
      help: "Cron occurrences by outcome: triggered (a new run), duplicate (already triggered), skipped (overlap policy), missed (not triggered within the grace window, or not caught up), refused (the principal refused the trigger for good).",
      labelNames: ["outcome"],
      registers,
      collect() {
        const s = scheduler.stats;
        this.reset();
        this.inc({ outcome: "triggered" }, s.triggered);
        this.inc({ outcome: "duplicate" }, s.duplicates);
        this.inc({ outcome: "skipped" }, s.skipped);
        this.inc({ outcome: "missed" }, s.missed);
        this.inc({ outcome: "refused" }, s.refused);
      },
    });
    new Counter({
      name: "cdktr_scheduler_trigger_retries_total",
      help: "Triggers sent again after a failure (within the grace window).",
      registers,
      collect() {
        this.reset();
        this.inc(scheduler.stats.retries);
      },
    });
    new Gauge({
      name: "cdktr_scheduler_definitions_loaded",
      help: "1 once the workflow definitions were loaded from the principal, else 0.",
      registers,
      collect() {
        this.set(scheduler.stats.version === null ? 0 : 1);
      },
    });
    scheduler.on("triggered", (r) => this.#triggered(r));
  }

  #triggered(r: TriggerResult): void {
    if (!r.success || r.duplicate || r.skipped || r.idempotencyKey === undefined) return;
    const prefix = `${CRON_KEY}${r.workflowId}:`;
    if (!r.idempotencyKey.startsWith(prefix)) return;
    const instant = Date.parse(r.idempotencyKey.slice(prefix.length));
    if (Number.isFinite(instant))
      this.#lateness.observe({ workflow: r.workflowId }, Math.max(0, (Date.now() - instant) / 1000));
  }
}

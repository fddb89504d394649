/**
 * The listeners runner's Prometheus metrics (`/metrics` on `CDKTR_METRICS_PORT`): what became of
 * the triggers each listener sent, the events it turned away before any trigger, and its errors.
 */
import type { EventListener, TriggerResult } from "@cdktr/events";
import { Counter, Registry, collectDefaultMetrics } from "prom-client";

/** The runner's metrics, in a registry of their own. */
export class ListenersMetrics {
  /** What `/metrics` serves (`HealthServer`). */
  readonly registry = new Registry();
  readonly #triggers: Counter<"listener" | "type" | "outcome">;
  readonly #errors: Counter<"listener" | "type">;
  readonly #rejected: Counter<"listener" | "type" | "reason">;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#triggers = new Counter({
      name: "cdktr_listener_triggers_total",
      help: "Triggers a listener sent for the events it received, by outcome: accepted (a new run), duplicate (the event's run exists: a redelivery), skipped (overlap policy), refused (the principal refused it for good: unknown workflow, bad params, not allowed), failed (the principal could not be reached or answered a retryable error).",
      labelNames: ["listener", "type", "outcome"],
      registers,
    });
    this.#rejected = new Counter({
      name: "cdktr_listener_events_rejected_total",
      help: "Events a listener received and turned away before any trigger, by reason: signature (missing, bad or stale), replayed, malformed (not JSON, bad params, bad Idempotency-Key), too_large, not_found (no such route or workflow), method, not_allowed (workflow not in the listener's list), no_key, unrecordable (the webhook's replay cache cannot record), filtered (a mapping's `when` is false: a webhook route answers 202 ignored; not every listener reports it here, see its stats), unmapped (a mapped param found nothing, or an object or a list: a webhook route answers 422, a message is refused as poison). Events received = these + the triggers (one per event for the webhook and the message listeners; GitHub pings, answered 200, are neither).",
      labelNames: ["listener", "type", "reason"],
      registers,
    });
    this.#errors = new Counter({
      name: "cdktr_listener_errors_total",
      help: "Problems a listener reported (a lost connection to its source, a failed start...).",
      labelNames: ["listener", "type"],
      registers,
    });
  }

  /** Count the triggers and errors of `listener` from now on. */
  follow(name: string, type: string, listener: EventListener): void {
    for (const outcome of ["accepted", "duplicate", "skipped", "refused", "failed"]) {
      this.#triggers.inc({ listener: name, type, outcome }, 0);
    }
    this.#errors.inc({ listener: name, type }, 0);
    listener.on("triggered", (r) => this.#triggers.inc({ listener: name, type, outcome: outcomeOf(r) }));
    listener.on("rejected", (r) => this.#rejected.inc({ listener: name, type, reason: r.reason }));
    listener.on("error", () => this.#errors.inc({ listener: name, type }));
  }
}

function outcomeOf(r: TriggerResult): string {
  if (r.success) return r.skipped ? "skipped" : r.duplicate ? "duplicate" : "accepted";
  return r.error?.retryable === false ? "refused" : "failed";
}

/**
 * The dashboard's Prometheus metrics (`/metrics` on `CDKTR_METRICS_PORT`): live streams, sessions,
 * (re)connections of its event subscription, and HTTP answers by status class.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { SessionStore } from "./auth/session-store.js";
import type { LiveHub } from "./live/live-hub.js";

/** The dashboard's metrics, in a registry of their own. */
export class DashboardMetrics {
  /** What `/metrics` serves (`HealthServer`). */
  readonly registry = new Registry();
  readonly #responses: Counter<"class">;

  constructor(hub: LiveHub, sessions: SessionStore) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: "cdktr_dashboard_streams",
      help: "Live event streams open (/api/events and /api/runs/:id/events).",
      registers,
      collect() {
        this.set(hub.streams);
      },
    });
    new Gauge({
      name: "cdktr_dashboard_sessions",
      help: "Sign-in sessions kept.",
      registers,
      collect() {
        this.set(sessions.size);
      },
    });
    new Counter({
      name: "cdktr_dashboard_subscriber_connections_total",
      help: "Connections of the dashboard's subscription to the principal's publish channel (each one sends reset to the live streams).",
      registers,
      collect() {
        this.reset();
        this.inc(hub.connections);
      },
    });
    this.#responses = new Counter({
      name: "cdktr_dashboard_http_responses_total",
      help: "HTTP answers by status class (2xx, 3xx, 4xx, 5xx).",
      labelNames: ["class"],
      registers,
    });
  }

  /** Count one answer. */
  response(status: number): void {
    this.#responses.inc({ class: `${Math.floor(status / 100)}xx` });
  }
}

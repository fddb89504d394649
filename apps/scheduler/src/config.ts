/**
 * Configuration of the scheduler process, from `CDKTR_*` environment variables (and `.env`).
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import {
  ClientEnvSchema,
  LogLevelSchema,
  endpointFor,
  envInt,
  envLogFormat,
  envMetricsHost,
  envMetricsPort,
  parseEnv,
} from "@cdktr/protocol";

/** Every setting of the scheduler, by environment variable. */
export const SchedulerEnvSchema = ClientEnvSchema.extend({
  // CDKTR_PRINCIPAL_HOST (127.0.0.1), CDKTR_PRINCIPAL_PORT (5561), CDKTR_PRINCIPAL_ENDPOINTS
  // (several principals) and CDKTR_LOGS_PUBLISHING_PORT (5563: `workflows|` announcements) come
  // from ClientEnvSchema.
  /** Seconds between fallback refreshes of workflow definitions. */
  CDKTR_SCHEDULER_REFRESH_S: envInt({ min: 1, max: 86_400, default: 60 }).optional(),
  /** Used when CDKTR_SCHEDULER_REFRESH_S is unset (the principal's directory rescan period). */
  CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: envInt({ min: 1, max: 86_400, default: 60 }).optional(),
  /** Seconds a failing trigger is retried before its occurrence counts as missed. */
  CDKTR_SCHEDULER_MISS_GRACE_S: envInt({ min: 1, max: 86_400, default: 60 }),
  /** Seconds one trigger request may take. */
  CDKTR_SCHEDULER_TRIGGER_TIMEOUT_S: envInt({ min: 1, max: 600, default: 5 }),
  /**
   * Directory of the scheduler's state: how far the finished runs have been handled for workflow
   * chaining (`chaining.json`). Default `~/.cdktr/scheduler`.
   */
  CDKTR_SCHEDULER_STATE_DIR: z.string().min(1).optional(),
  /** Seconds between sweeps of the finished runs for workflow chaining (the catch-up). */
  CDKTR_SCHEDULER_CHAIN_SWEEP_S: envInt({ min: 1, max: 3600, default: 10 }),
  /**
   * Seconds each chaining sweep looks back before its handled mark, for runs whose end is recorded
   * late (an agent reconnecting, clocks apart).
   */
  CDKTR_SCHEDULER_CHAIN_MARGIN_S: envInt({ min: 0, max: 86_400, default: 300 }),
  /** debug, info, warn or error. */
  CDKTR_LOG_LEVEL: LogLevelSchema.default("info"),
  /** `json` or `pretty` log lines; unset = pretty on a terminal, JSON otherwise. */
  CDKTR_LOG_FORMAT: envLogFormat(),
  /** HTTP port of `/metrics`, `/healthz` and `/readyz`; unset = not served. 0 = OS-assigned. */
  CDKTR_METRICS_PORT: envMetricsPort(),
  /** Interface the metrics port binds to. */
  CDKTR_METRICS_HOST: envMetricsHost(),
});

/** The scheduler's resolved configuration. */
export interface SchedulerConfig {
  principalHost: string;
  principalPort: number;
  /** The principals' API endpoints: `CDKTR_PRINCIPAL_ENDPOINTS`, else the one of host and port. */
  principalEndpoints: string[];
  publishPort: number;
  refreshIntervalMs: number;
  missGraceMs: number;
  triggerTimeoutMs: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** Port of the metrics and health endpoints (`CDKTR_METRICS_PORT`), or null: not served. */
  metricsPort: number | null;
  /** Interface of the metrics port (`CDKTR_METRICS_HOST`). */
  metricsHost: string;
  /** Absolute path of the scheduler's state directory (`CDKTR_SCHEDULER_STATE_DIR`). */
  stateDir: string;
  /** Time between chaining sweeps (`CDKTR_SCHEDULER_CHAIN_SWEEP_S`). */
  chainSweepMs: number;
  /** How far each chaining sweep looks back before its mark (`CDKTR_SCHEDULER_CHAIN_MARGIN_S`). */
  chainMarginMs: number;
}

/**
 * Read the configuration from `env`.
 * @throws ConfigError listing one line per invalid variable
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): SchedulerConfig {
  // envInt gives a default even under .optional(): read the raw values to know what was set.
  const c = parseEnv(SchedulerEnvSchema, env);
  const set = (k: string): boolean => env[k] !== undefined && env[k] !== "";
  const refreshS = set("CDKTR_SCHEDULER_REFRESH_S")
    ? c.CDKTR_SCHEDULER_REFRESH_S
    : set("CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S")
      ? c.CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S
      : 60;
  return {
    principalHost: c.CDKTR_PRINCIPAL_HOST,
    principalPort: c.CDKTR_PRINCIPAL_PORT,
    principalEndpoints: c.CDKTR_PRINCIPAL_ENDPOINTS ?? [endpointFor(c.CDKTR_PRINCIPAL_HOST, c.CDKTR_PRINCIPAL_PORT)],
    publishPort: c.CDKTR_LOGS_PUBLISHING_PORT,
    refreshIntervalMs: (refreshS ?? 60) * 1000,
    missGraceMs: c.CDKTR_SCHEDULER_MISS_GRACE_S * 1000,
    triggerTimeoutMs: c.CDKTR_SCHEDULER_TRIGGER_TIMEOUT_S * 1000,
    logLevel: c.CDKTR_LOG_LEVEL,
    metricsPort: c.CDKTR_METRICS_PORT ?? null,
    metricsHost: c.CDKTR_METRICS_HOST,
    stateDir: resolve(c.CDKTR_SCHEDULER_STATE_DIR ?? join(env.HOME ?? homedir(), ".cdktr", "scheduler")),
    chainSweepMs: c.CDKTR_SCHEDULER_CHAIN_SWEEP_S * 1000,
    chainMarginMs: c.CDKTR_SCHEDULER_CHAIN_MARGIN_S * 1000,
  };
}

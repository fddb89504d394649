/**
 * Configuration of the dashboard process, from `CDKTR_*` environment variables (and `.env`).
 */
import { z } from "zod";
import {
  ClientEnvSchema,
  LogLevelSchema,
  endpointFor,
  envBool,
  envInt,
  envLogFormat,
  envMetricsHost,
  envMetricsPort,
  parseEnv,
} from "@cdktr/protocol";
import { defaultTokensFile } from "./tokens/token-file.js";

/** Default TCP port of the dashboard's HTTP server (`CDKTR_DASHBOARD_PORT`). */
export const DEFAULT_DASHBOARD_PORT = 5564;

/** Every setting of the dashboard, by environment variable. */
export const DashboardEnvSchema = ClientEnvSchema.extend({
  // CDKTR_PRINCIPAL_HOST (127.0.0.1), CDKTR_PRINCIPAL_PORT (5561), CDKTR_PRINCIPAL_ENDPOINTS
  // (several principals) and CDKTR_LOGS_PUBLISHING_PORT (5563: run, task and log events) come
  // from ClientEnvSchema; CDKTR_KEY_FILE, CDKTR_KEYS_DIR and CDKTR_AUTH are read by findClientKey.
  /**
   * Interface the HTTP server binds. On a loopback address (127.0.0.1, ::1, localhost) reads need
   * no sign-in unless CDKTR_DASHBOARD_REQUIRE_SIGNIN is set; on any other every API call does.
   */
  CDKTR_DASHBOARD_HOST: z.string().trim().min(1).default("127.0.0.1"),
  /** TCP port of the HTTP server; 0 = any free port (the `ready` line tells the URL). */
  CDKTR_DASHBOARD_PORT: envInt({ min: 0, max: 65_535, default: DEFAULT_DASHBOARD_PORT }),
  /** Every API call but `/api/session` needs a session, even on loopback. */
  CDKTR_DASHBOARD_REQUIRE_SIGNIN: envBool(false),
  /**
   * The sign-in tokens file (`cdktr dashboard token create`). Default
   * `<CDKTR_KEYS_DIR or ~/.cdktr/keys>/dashboard-tokens.json`.
   */
  CDKTR_DASHBOARD_TOKENS_FILE: z.string().trim().min(1).optional(),
  /** Most live streams (`/api/events`, `/api/runs/:id/events`) open at once; more get 503. */
  CDKTR_DASHBOARD_MAX_STREAMS: envInt({ min: 1, max: 10_000, default: 100 }),
  /** Most sign-in sessions kept; the least recently used one ends when a new one would exceed it. */
  CDKTR_DASHBOARD_MAX_SESSIONS: envInt({ min: 1, max: 1_000_000, default: 10_000 }),
  /** Hours a session lives without a request. */
  CDKTR_DASHBOARD_SESSION_IDLE_H: envInt({ min: 1, max: 24 * 30, default: 12 }),
  /** Sign-in attempts allowed per remote address and minute; more get 429. */
  CDKTR_DASHBOARD_SIGNIN_PER_MINUTE: envInt({ min: 1, max: 100_000, default: 10 }),
  /** Seconds one request to the principal may take. */
  CDKTR_DASHBOARD_PRINCIPAL_TIMEOUT_S: envInt({ min: 1, max: 600, default: 10 }),
  /** debug, info, warn or error. */
  CDKTR_LOG_LEVEL: LogLevelSchema.default("info"),
  /** `json` or `pretty` log lines; unset = pretty on a terminal, JSON otherwise. */
  CDKTR_LOG_FORMAT: envLogFormat(),
  /** HTTP port of `/metrics`, `/healthz` and `/readyz`; unset = not served. 0 = OS-assigned. */
  CDKTR_METRICS_PORT: envMetricsPort(),
  /** Interface the metrics port binds to. */
  CDKTR_METRICS_HOST: envMetricsHost(),
});

/** The dashboard's resolved configuration. */
export interface DashboardConfig {
  /** Interface of the HTTP server (`CDKTR_DASHBOARD_HOST`). */
  host: string;
  /** Port of the HTTP server (`CDKTR_DASHBOARD_PORT`; 0 = any free port). */
  port: number;
  /** `CDKTR_DASHBOARD_REQUIRE_SIGNIN`. */
  requireSignin: boolean;
  /** Absolute path of the tokens file (`CDKTR_DASHBOARD_TOKENS_FILE`). */
  tokensFile: string;
  /** `CDKTR_DASHBOARD_MAX_STREAMS`. */
  maxStreams: number;
  /** `CDKTR_DASHBOARD_MAX_SESSIONS`. */
  maxSessions: number;
  /** Idle lifetime of a session (`CDKTR_DASHBOARD_SESSION_IDLE_H`). */
  sessionIdleMs: number;
  /** `CDKTR_DASHBOARD_SIGNIN_PER_MINUTE`. */
  signInPerMinute: number;
  /** The principals' API endpoints: `CDKTR_PRINCIPAL_ENDPOINTS`, else the one of host and port. */
  principalEndpoints: string[];
  /** `CDKTR_LOGS_PUBLISHING_PORT`, for a principal that does not advertise its publish endpoint. */
  publishPort: number;
  /** `CDKTR_DASHBOARD_PRINCIPAL_TIMEOUT_S`. */
  principalTimeoutMs: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** Port of the metrics and health endpoints (`CDKTR_METRICS_PORT`), or null: not served. */
  metricsPort: number | null;
  /** Interface of the metrics port (`CDKTR_METRICS_HOST`). */
  metricsHost: string;
}

/**
 * Read the configuration from `env`.
 * @throws ConfigError listing one line per invalid variable
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): DashboardConfig {
  const c = parseEnv(DashboardEnvSchema, env);
  return {
    host: c.CDKTR_DASHBOARD_HOST,
    port: c.CDKTR_DASHBOARD_PORT,
    requireSignin: c.CDKTR_DASHBOARD_REQUIRE_SIGNIN,
    tokensFile: defaultTokensFile(env),
    maxStreams: c.CDKTR_DASHBOARD_MAX_STREAMS,
    maxSessions: c.CDKTR_DASHBOARD_MAX_SESSIONS,
    sessionIdleMs: c.CDKTR_DASHBOARD_SESSION_IDLE_H * 3_600_000,
    signInPerMinute: c.CDKTR_DASHBOARD_SIGNIN_PER_MINUTE,
    principalEndpoints: c.CDKTR_PRINCIPAL_ENDPOINTS ?? [endpointFor(c.CDKTR_PRINCIPAL_HOST, c.CDKTR_PRINCIPAL_PORT)],
    publishPort: c.CDKTR_LOGS_PUBLISHING_PORT,
    principalTimeoutMs: c.CDKTR_DASHBOARD_PRINCIPAL_TIMEOUT_S * 1000,
    logLevel: c.CDKTR_LOG_LEVEL,
    metricsPort: c.CDKTR_METRICS_PORT ?? null,
    metricsHost: c.CDKTR_METRICS_HOST,
  };
}

/** Whether `host` is a loopback address or name (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || h === "::ffff:127.0.0.1" || /^127(?:\.\d{1,3}){3}$/.test(h);
}

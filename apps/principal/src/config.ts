/**
 * Configuration of the principal: every `CDKTR_*` variable it reads, with defaults. Values come
 * from the environment, then from a `.env` file in the working directory (never overriding).
 */
import { homedir, hostname } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import {
  ConfigError,
  envInt,
  envLogFormat,
  envMetricsHost,
  envMetricsPort,
  loadDotEnv,
  parseEnv,
} from "@cdktr/protocol";

const portError = "expected an integer from 0 to 65535 (0 = any free port)";
const port = (d: number) =>
  z.coerce
    .number({ error: portError })
    .int({ error: portError })
    .min(0, { error: portError })
    .max(65535, { error: portError })
    .default(d);

/** The zod schema of the principal's environment, keyed by variable name. */
export const PrincipalEnvSchema = z.object({
  /** Interface the three sockets bind to. Keep 127.0.0.1 unless agents run on other hosts. */
  CDKTR_PRINCIPAL_HOST: z.string().min(1).default("127.0.0.1"),
  /** API port (request/reply, every verb of `API_VERBS`). 0 = OS-assigned. */
  CDKTR_PRINCIPAL_PORT: port(5561),
  /** Log ingest port (`logBatch` from agents). 0 = OS-assigned. */
  CDKTR_LOGS_LISTENING_PORT: port(5562),
  /** Publish port (log lines, run/task events, workflow changes). 0 = OS-assigned. */
  CDKTR_LOGS_PUBLISHING_PORT: port(5563),
  /** Workflow directory, relative to the working directory. */
  CDKTR_WORKFLOW_DIR: z.string().min(1).default("workflows"),
  /** Periodic full stat scan of the workflow directory (fallback for missed watch events), seconds. */
  CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: envInt({ min: 1, max: 86_400, default: 60 }),
  /**
   * The workflow scan index (what each file looked like and parsed to: a restart parses only
   * changed files); unset = `cdktr.workflow-index.json` beside `CDKTR_DB_PATH`; `off` = none.
   */
  CDKTR_WORKFLOW_INDEX_PATH: z.string().min(1).optional(),
  /** SQLite database file; `~` and `$HOME` are expanded; the directory is created. */
  CDKTR_DB_PATH: z.string().min(1).default("~/.cdktr/cdktr.db"),
  /**
   * PostgreSQL instead of SQLite: `postgres://user:password@host:5432/database`; unset or empty =
   * the SQLite file of `CDKTR_DB_PATH`.
   */
  CDKTR_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, { error: "expected a postgres:// or postgresql:// URL" })
    .optional(),
  /** Connections of the PostgreSQL read pool (listings, log queries), besides the two write connections. */
  CDKTR_DATABASE_READ_CONNECTIONS: envInt({ min: 1, max: 100, default: 4 }),
  /**
   * Several principals on one PostgreSQL database: the leader's lease, renewed every third of it;
   * a standby takes over at most about this long after the leader is gone.
   */
  CDKTR_LEADER_TTL_MS: envInt({ min: 1000, max: 300_000, default: 5000 }),
  /**
   * Host name or address other machines reach this principal at, put in the endpoints it
   * advertises as leader; unset = `CDKTR_PRINCIPAL_HOST`, or the machine's host name when that is
   * a wildcard (0.0.0.0, ::, *).
   */
  CDKTR_ADVERTISE_HOST: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_.:[\]-]+$/, { error: "expected a host name or an IP address" })
    .optional(),
  /** An agent silent for longer than this loses its runs (CRASHED). */
  CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: envInt({ min: 100, max: 86_400_000, default: 30_000 }),
  /** A lost agent stays in `listAgents` (status LOST) this long, then is forgotten. */
  CDKTR_AGENT_GC_AFTER_MS: envInt({ min: 100, max: 2_592_000_000, default: 3_600_000 }),
  CDKTR_MAX_AGENTS_PER_KEY: envInt({ min: 1, max: 100_000, default: 256 }),
  /** Heartbeat interval told to agents at registration. */
  CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: envInt({ min: 50, max: 3_600_000, default: 5_000 }),
  /** An assignment not confirmed within this goes back to the queue. */
  CDKTR_ASSIGNMENT_LEASE_MS: envInt({ min: 50, max: 3_600_000, default: 10_000 }),
  /** Idempotency keys are remembered at least this many days. */
  CDKTR_IDEMPOTENCY_RETENTION_DAYS: envInt({ min: 1, max: 36_500, default: 7 }),
  /** Finished runs (with tasks, history, logs, keys) older than this are deleted; 0 = keep forever. */
  CDKTR_RUN_RETENTION_DAYS: envInt({ min: 0, max: 36_500, default: 30 }),
  /** Log lines older than this are deleted; 0 = keep forever. */
  CDKTR_LOG_RETENTION_DAYS: envInt({ min: 0, max: 36_500, default: 30 }),
  /** Largest request accepted on the API and log channels. */
  CDKTR_MAX_MESSAGE_BYTES: envInt({ min: 1024, max: 64 * 1024 * 1024, default: 1_048_576 }),
  CDKTR_MAX_REQUESTS_IN_FLIGHT: envInt({ min: 1, max: 1_000_000, default: 1000 }),
  /** Requests one key may have running at once over all its connections (per port); with authentication. */
  CDKTR_MAX_REQUESTS_IN_FLIGHT_PER_KEY: envInt({ min: 1, max: 1_000_000, default: 5000 }),
  /**
   * Log lines of one agent the principal holds received but not yet stored; a `logBatch` beyond
   * it gets the retryable `RESOURCE_EXHAUSTED` (a batch arriving when none is pending is always taken).
   */
  CDKTR_LOG_INGEST_MAX_PENDING_LINES: envInt({ min: 1, max: 10_000_000, default: 20_000 }),
  /** The same bound in bytes (approximate: the text of the lines plus 64 bytes each). */
  CDKTR_LOG_INGEST_MAX_PENDING_BYTES: envInt({ min: 1024, max: 4 * 1024 * 1024 * 1024, default: 16 * 1024 * 1024 }),
  /** Bound on a graceful shutdown before the process exits anyway. */
  CDKTR_SHUTDOWN_GRACE_MS: envInt({ min: 0, max: 600_000, default: 10_000 }),
  /** winston level of the principal's own log lines. */
  CDKTR_LOG_LEVEL: z.enum(["error", "warn", "info", "debug"]).default("info"),
  /** `json` or `pretty` log lines; unset = pretty on a terminal, JSON otherwise. */
  CDKTR_LOG_FORMAT: envLogFormat(),
  /**
   * Authentication: `on` (CURVE on all three sockets, enrolled keys only, roles) or `off`
   * (plaintext, anyone may do anything; allowed only on a loopback `CDKTR_PRINCIPAL_HOST`).
   */
  CDKTR_AUTH: z
    .preprocess((v) => (typeof v === "string" ? v.trim().toLowerCase() : v), z.enum(["on", "off"]))
    .default("on"),
  /** Directory of the key files (`principal.json` and the `local-*` client keys); `~` and `$HOME` are expanded. */
  CDKTR_KEYS_DIR: z.string().min(1).default("~/.cdktr/keys"),
  /** HTTP port of `/metrics`, `/healthz` and `/readyz`; unset = not served. 0 = OS-assigned. */
  CDKTR_METRICS_PORT: envMetricsPort(),
  /** Interface the metrics port binds to. */
  CDKTR_METRICS_HOST: envMetricsHost(),
});

/** The principal's configuration, resolved. */
export interface PrincipalConfig {
  host: string;
  apiPort: number;
  logsPort: number;
  publishPort: number;
  /** Absolute path. */
  workflowDir: string;
  workflowRefreshMs: number;
  /** Absolute path of the workflow scan index (`CDKTR_WORKFLOW_INDEX_PATH`), or null for none. */
  workflowIndexPath: string | null;
  /** Absolute path of the SQLite file (unused when `databaseUrl` is set). */
  dbPath: string;
  /** PostgreSQL URL (`CDKTR_DATABASE_URL`), or null for SQLite. */
  databaseUrl: string | null;
  /** `CDKTR_DATABASE_READ_CONNECTIONS`. */
  databaseReadConnections: number;
  /** The leader lease's duration (`CDKTR_LEADER_TTL_MS`); PostgreSQL only. */
  leaderTtlMs: number;
  /** Host put in the advertised endpoints (`CDKTR_ADVERTISE_HOST`, resolved). */
  advertiseHost: string;
  heartbeatTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** How long a lost agent is listed before it is forgotten (`CDKTR_AGENT_GC_AFTER_MS`). */
  agentGcAfterMs: number;
  /** Agent ids one key may hold in the registry (`CDKTR_MAX_AGENTS_PER_KEY`). */
  maxAgentsPerKey: number;
  leaseMs: number;
  idempotencyRetentionDays: number;
  runRetentionDays: number;
  logRetentionDays: number;
  maxMessageBytes: number;
  /** Requests one connection may have running at once (`CDKTR_MAX_REQUESTS_IN_FLIGHT`). */
  maxRequestsInFlight: number;
  /** Requests one key may have running at once over all its connections, per port (`CDKTR_MAX_REQUESTS_IN_FLIGHT_PER_KEY`). */
  maxRequestsInFlightPerKey: number;
  /** `CDKTR_LOG_INGEST_MAX_PENDING_LINES`. */
  logIngestMaxPendingLines: number;
  /** `CDKTR_LOG_INGEST_MAX_PENDING_BYTES`. */
  logIngestMaxPendingBytes: number;
  shutdownGraceMs: number;
  logLevel: "error" | "warn" | "info" | "debug";
  /** Whether the sockets require enrolled keys (`CDKTR_AUTH`). */
  auth: boolean;
  /** Absolute path of the keys directory (`CDKTR_KEYS_DIR`). */
  keysDir: string;
  /** Port of the metrics and health endpoints (`CDKTR_METRICS_PORT`), or null: not served. */
  metricsPort: number | null;
  /** Interface of the metrics port (`CDKTR_METRICS_HOST`). */
  metricsHost: string;
}

/** Whether `host` names a loopback interface: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m?.slice(1).every((n) => Number(n) <= 255) ?? false;
}

/** The host to advertise for a bind host: itself, or the machine's host name for a wildcard (0.0.0.0, ::, *). */
export function defaultAdvertiseHost(bindHost: string): string {
  const h = bindHost.trim().replace(/^\[(.*)\]$/, "$1");
  return h === "0.0.0.0" || h === "::" || h === "*" || h === "" ? hostname() : bindHost;
}

/** Expand a leading `~` and `$HOME`/`${HOME}` in a path. */
export function expandHome(path: string, home: string): string {
  let p = path.replace(/\$\{HOME\}|\$HOME/g, home);
  if (p === "~") p = home;
  else if (p.startsWith("~/")) p = join(home, p.slice(2));
  return p;
}

/**
 * Build the configuration from environment variables (after loading `.env` from `cwd` into
 * `env` without overriding what is set).
 * @throws ConfigError listing one line per invalid variable.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  options: { cwd?: string; dotEnv?: boolean } = {},
): PrincipalConfig {
  const cwd = options.cwd ?? process.cwd();
  const merged: Record<string, string | undefined> = { ...env };
  if (options.dotEnv !== false) loadDotEnv(join(cwd, ".env"), merged);
  const e = parseEnv(PrincipalEnvSchema, merged);
  const home = merged.HOME ?? homedir();
  const dbPath = expandHome(e.CDKTR_DB_PATH, home);
  const workflowDir = expandHome(e.CDKTR_WORKFLOW_DIR, home);
  const keysDir = expandHome(e.CDKTR_KEYS_DIR, home);
  const indexSetting = e.CDKTR_WORKFLOW_INDEX_PATH;
  const indexPath =
    indexSetting === "off"
      ? null
      : indexSetting === undefined
        ? join(dirname(dbPath), "cdktr.workflow-index.json")
        : expandHome(indexSetting, home);
  if (e.CDKTR_AUTH === "off" && !isLoopbackHost(e.CDKTR_PRINCIPAL_HOST)) {
    throw new ConfigError(
      [
        `CDKTR_AUTH: off is allowed only when the principal binds to a loopback address (127.0.0.1, ::1, localhost), but CDKTR_PRINCIPAL_HOST is ${JSON.stringify(e.CDKTR_PRINCIPAL_HOST)}: anyone who can reach it could run any command on every agent. Remove CDKTR_AUTH=off (authentication is on by default), or set CDKTR_PRINCIPAL_HOST=127.0.0.1`,
      ],
      "refusing to start without authentication on a non-loopback address",
    );
  }
  return {
    host: e.CDKTR_PRINCIPAL_HOST,
    apiPort: e.CDKTR_PRINCIPAL_PORT,
    logsPort: e.CDKTR_LOGS_LISTENING_PORT,
    publishPort: e.CDKTR_LOGS_PUBLISHING_PORT,
    workflowDir: isAbsolute(workflowDir) ? workflowDir : resolve(cwd, workflowDir),
    workflowRefreshMs: e.CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S * 1000,
    workflowIndexPath: indexPath === null ? null : isAbsolute(indexPath) ? indexPath : resolve(cwd, indexPath),
    dbPath: isAbsolute(dbPath) ? dbPath : resolve(cwd, dbPath),
    databaseUrl: e.CDKTR_DATABASE_URL ?? null,
    databaseReadConnections: e.CDKTR_DATABASE_READ_CONNECTIONS,
    leaderTtlMs: e.CDKTR_LEADER_TTL_MS,
    advertiseHost: e.CDKTR_ADVERTISE_HOST ?? defaultAdvertiseHost(e.CDKTR_PRINCIPAL_HOST),
    heartbeatTimeoutMs: e.CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS,
    heartbeatIntervalMs: e.CDKTR_AGENT_HEARTBEAT_INTERVAL_MS,
    agentGcAfterMs: e.CDKTR_AGENT_GC_AFTER_MS,
    maxAgentsPerKey: e.CDKTR_MAX_AGENTS_PER_KEY,
    leaseMs: e.CDKTR_ASSIGNMENT_LEASE_MS,
    idempotencyRetentionDays: e.CDKTR_IDEMPOTENCY_RETENTION_DAYS,
    runRetentionDays: e.CDKTR_RUN_RETENTION_DAYS,
    logRetentionDays: e.CDKTR_LOG_RETENTION_DAYS,
    maxMessageBytes: e.CDKTR_MAX_MESSAGE_BYTES,
    maxRequestsInFlight: e.CDKTR_MAX_REQUESTS_IN_FLIGHT,
    maxRequestsInFlightPerKey: e.CDKTR_MAX_REQUESTS_IN_FLIGHT_PER_KEY,
    logIngestMaxPendingLines: e.CDKTR_LOG_INGEST_MAX_PENDING_LINES,
    logIngestMaxPendingBytes: e.CDKTR_LOG_INGEST_MAX_PENDING_BYTES,
    shutdownGraceMs: e.CDKTR_SHUTDOWN_GRACE_MS,
    logLevel: e.CDKTR_LOG_LEVEL,
    auth: e.CDKTR_AUTH === "on",
    keysDir: isAbsolute(keysDir) ? keysDir : resolve(cwd, keysDir),
    metricsPort: e.CDKTR_METRICS_PORT ?? null,
    metricsHost: e.CDKTR_METRICS_HOST,
  };
}

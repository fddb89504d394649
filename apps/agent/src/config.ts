/**
 * Configuration of the agent: every `CDKTR_*` variable it reads, with defaults.
 */
import { randomBytes } from "node:crypto";
import { availableParallelism, homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import {
  InheritEnvEntrySchema,
  endpointFor,
  envBool,
  envEndpointList,
  envInt,
  envLogFormat,
  envMetricsHost,
  envMetricsPort,
  envPort,
  parseEnv,
} from "@cdktr/protocol";

const MIB = 1024 * 1024;

/** The entries of a comma-separated list, trimmed, without empty ones. */
function commaList(value: string): string[] {
  return value
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v !== "");
}

/**
 * The agent's environment variables, keyed by name. Parse with {@link loadConfig}.
 */
export const AgentEnvSchema = z.object({
  /** Host of the principal. */
  CDKTR_PRINCIPAL_HOST: z.string().min(1).default("127.0.0.1"),
  /** API port of the principal (register, heartbeat, fetchWork, status updates). */
  CDKTR_PRINCIPAL_PORT: envPort(5561),
  /** Port where the principal ingests log batches. */
  CDKTR_LOGS_LISTENING_PORT: envPort(5562),
  /**
   * API endpoints of several principals sharing one database (`host1:5561,host2:5561`): the agent
   * works with whichever leads. Overrides host and port.
   */
  CDKTR_PRINCIPAL_ENDPOINTS: envEndpointList(),
  /** Agent id; default `<hostname>-<random suffix>`, different on every start. */
  CDKTR_AGENT_ID: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9_.:-]+$/, "use letters, digits, '_', '.', ':' and '-'")
    .optional(),
  /** Labels this agent offers (comma-separated); workflows may require some. */
  CDKTR_AGENT_LABELS: z.string().default(""),
  /**
   * Variables of the agent's environment every task gets on top of the clean base
   * (comma-separated names, or prefixes ending in `*`: `AWS_*`); never a `CDKTR_*` setting.
   * See docs/workflows.md, "Task environment".
   */
  CDKTR_AGENT_INHERIT_ENV: z
    .string()
    .default("")
    .superRefine((value, ctx) => {
      for (const entry of commaList(value)) {
        const r = InheritEnvEntrySchema.safeParse(entry);
        if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: "custom", message: issue.message });
      }
    }),
  /** How many runs this agent executes at once. */
  CDKTR_AGENT_MAX_CONCURRENCY: envInt({ min: 1, max: 1000, default: 5 }),
  /** Data directory (spool, process-group records, lock). Default `~/.cdktr/agent/<id or default>`. */
  CDKTR_AGENT_DATA_DIR: z.string().min(1).optional(),
  /** Heartbeat period in ms (the principal's registration reply may shorten it). */
  CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: envInt({ min: 50, max: 600_000, default: 5000 }),
  /** How long `fetchWork` long-polls, in ms. */
  CDKTR_AGENT_FETCH_WAIT_MS: envInt({ min: 0, max: 60_000, default: 20_000 }),
  /** On SIGTERM, how long running tasks may go on before they are cancelled, in ms. */
  CDKTR_AGENT_SHUTDOWN_GRACE_MS: envInt({ min: 0, max: 86_400_000, default: 30_000 }),
  /** Between SIGTERM and SIGKILL to a task's process group (timeout, cancel), in ms. */
  CDKTR_TASK_KILL_GRACE_MS: envInt({ min: 0, max: 3_600_000, default: 5000 }),
  /**
   * How a task's processes that left its process group (`setsid`) are found and killed on
   * timeout, cancel and exit: `cgroup` (a cgroup v2 subtree per task; the agent refuses to start
   * without one), `proc` (a marker in the environment, found in `/proc/<pid>/environ`), `auto`
   * (cgroup when usable, else proc).
   */
  CDKTR_AGENT_CONTAINMENT: z.enum(["auto", "cgroup", "proc"]).default("auto"),
  /**
   * Where task processes are forked: `process` (a small spawner process the agent starts, so that
   * forks and cgroup moves run on another core instead of the agent's thread), `inline` (the
   * agent's own thread; one process less), `auto` (`process` on machines with 4 or more cores:
   * on 2 cores the extra process competes with the agent and the principal for them, see
   * bench/README.md).
   */
  CDKTR_AGENT_SPAWNER: z.enum(["auto", "process", "inline"]).default("auto"),
  /**
   * A cgroup v2 directory where the agent creates its subtree `cdktr-agent-<hash>/task-<id>`;
   * default: the agent's own cgroup.
   */
  CDKTR_AGENT_CGROUP_BASE: z
    .string()
    .min(1)
    .refine((v) => v.startsWith("/"), "use an absolute path (for instance /sys/fs/cgroup/cdktr)")
    .optional(),
  /** Cap of the on-disk log spool used while the principal is unreachable, in bytes. */
  CDKTR_AGENT_LOG_SPOOL_MAX_BYTES: envInt({ min: 1024, default: 256 * MIB }),
  /**
   * fsync the status outbox, the log spool and the process-group records (batched: once per turn
   * of the event loop). `false` trades durability against a power cut for speed (the bench
   * measures the difference); a crash of the agent process alone loses nothing either way.
   */
  CDKTR_AGENT_FSYNC: envBool(true),
  /** Log level of the agent's own logs. */
  CDKTR_LOG_LEVEL: z.enum(["error", "warn", "info", "debug"]).default("info"),
  /** `json` or `pretty` log lines; unset = pretty on a terminal, JSON otherwise. */
  CDKTR_LOG_FORMAT: envLogFormat(),
  /** HTTP port of `/metrics`, `/healthz` and `/readyz`; unset = not served. 0 = OS-assigned. */
  CDKTR_METRICS_PORT: envMetricsPort(),
  /** Interface the metrics port binds to. */
  CDKTR_METRICS_HOST: envMetricsHost(),
});

/** The agent's resolved configuration. */
export interface AgentConfig {
  principalHost: string;
  principalPort: number;
  logsPort: number;
  /**
   * The principals' API endpoints (`tcp://host:port`): `CDKTR_PRINCIPAL_ENDPOINTS`, else the one
   * of host and port.
   */
  principalEndpoints: string[];
  agentId: string;
  /** Whether `agentId` was set explicitly (`CDKTR_AGENT_ID`). */
  agentIdExplicit: boolean;
  host: string;
  labels: string[];
  /** Allow-list of the agent's variables every task inherits (`CDKTR_AGENT_INHERIT_ENV`). */
  inheritEnv: string[];
  maxConcurrency: number;
  dataDir: string;
  heartbeatIntervalMs: number;
  fetchWaitMs: number;
  shutdownGraceMs: number;
  taskKillGraceMs: number;
  logSpoolMaxBytes: number;
  /** fsync the agent's records (`CDKTR_AGENT_FSYNC`). */
  fsync: boolean;
  /** `CDKTR_AGENT_CONTAINMENT`. */
  containment: "auto" | "cgroup" | "proc";
  /** `CDKTR_AGENT_CGROUP_BASE`, or null for the agent's own cgroup. */
  cgroupBase: string | null;
  /** `CDKTR_AGENT_SPAWNER`, with `auto` resolved for this machine. */
  spawner: "process" | "inline";
  logLevel: "error" | "warn" | "info" | "debug";
  /** Port of the metrics and health endpoints (`CDKTR_METRICS_PORT`), or null: not served. */
  metricsPort: number | null;
  /** Interface of the metrics port (`CDKTR_METRICS_HOST`). */
  metricsHost: string;
}

/**
 * Read the agent's configuration from environment variables.
 * @param env usually `process.env`
 * @param deps host name and home directory (injectable for tests)
 * @throws ConfigError (from `@cdktr/protocol`) with one line per bad variable
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  deps: { hostname?: string; homedir?: string } = {},
): AgentConfig {
  const e = parseEnv(AgentEnvSchema, env);
  const host = deps.hostname ?? hostname();
  const agentId = e.CDKTR_AGENT_ID ?? `${host.replace(/[^A-Za-z0-9_.:-]/g, "_")}-${randomBytes(4).toString("hex")}`;
  const home = deps.homedir ?? env.HOME ?? homedir();
  const dataDir = resolve(e.CDKTR_AGENT_DATA_DIR ?? join(home, ".cdktr", "agent", e.CDKTR_AGENT_ID ?? "default"));
  const labels = commaList(e.CDKTR_AGENT_LABELS);
  return {
    principalHost: e.CDKTR_PRINCIPAL_HOST,
    principalPort: e.CDKTR_PRINCIPAL_PORT,
    logsPort: e.CDKTR_LOGS_LISTENING_PORT,
    principalEndpoints: e.CDKTR_PRINCIPAL_ENDPOINTS ?? [endpointFor(e.CDKTR_PRINCIPAL_HOST, e.CDKTR_PRINCIPAL_PORT)],
    agentId,
    agentIdExplicit: e.CDKTR_AGENT_ID !== undefined,
    host,
    labels: [...new Set(labels)],
    inheritEnv: [...new Set(commaList(e.CDKTR_AGENT_INHERIT_ENV))],
    maxConcurrency: e.CDKTR_AGENT_MAX_CONCURRENCY,
    dataDir,
    heartbeatIntervalMs: e.CDKTR_AGENT_HEARTBEAT_INTERVAL_MS,
    fetchWaitMs: e.CDKTR_AGENT_FETCH_WAIT_MS,
    shutdownGraceMs: e.CDKTR_AGENT_SHUTDOWN_GRACE_MS,
    taskKillGraceMs: e.CDKTR_TASK_KILL_GRACE_MS,
    logSpoolMaxBytes: e.CDKTR_AGENT_LOG_SPOOL_MAX_BYTES,
    fsync: e.CDKTR_AGENT_FSYNC,
    containment: e.CDKTR_AGENT_CONTAINMENT,
    cgroupBase: e.CDKTR_AGENT_CGROUP_BASE ?? null,
    spawner: e.CDKTR_AGENT_SPAWNER === "auto" ? autoSpawner() : e.CDKTR_AGENT_SPAWNER,
    logLevel: e.CDKTR_LOG_LEVEL,
    metricsPort: e.CDKTR_METRICS_PORT ?? null,
    metricsHost: e.CDKTR_METRICS_HOST,
  };
}

/** `CDKTR_AGENT_SPAWNER=auto`: a spawner process when the machine has 4 cores or more. */
function autoSpawner(): "process" | "inline" {
  return availableParallelism() >= 4 ? "process" : "inline";
}

/**
 * Every `CDKTR_*` setting of every app, for `cdktr init`'s commented `.env`. A test checks this
 * list against the apps' config schemas (names and defaults); the reference is
 * docs/operations.md.
 */

/** One setting as `cdktr init` documents it. */
export interface SettingDoc {
  readonly name: string;
  /** The default, as it would be written in `.env` (empty = unset). */
  readonly default: string;
  readonly description: string;
}

/** Settings grouped by the process that reads them. */
export const SETTINGS: ReadonlyArray<{ readonly group: string; readonly settings: readonly SettingDoc[] }> = [
  {
    group: "Every process (where the principal is)",
    settings: [
      {
        name: "CDKTR_PRINCIPAL_HOST",
        default: "127.0.0.1",
        description: "Principal address: the interface the principal binds, the host clients connect to",
      },
      { name: "CDKTR_PRINCIPAL_PORT", default: "5561", description: "API port (request/reply)" },
      {
        name: "CDKTR_PRINCIPAL_ENDPOINTS",
        default: "",
        description:
          "Clients of several principals on one PostgreSQL database: their API endpoints (host1:5561,host2:5561); clients follow whichever leads",
      },
      {
        name: "CDKTR_LOGS_LISTENING_PORT",
        default: "5562",
        description: "Log-ingest port (agents send task output here)",
      },
      {
        name: "CDKTR_LOGS_PUBLISHING_PORT",
        default: "5563",
        description: "Publish port (live run/task events and log lines)",
      },
      { name: "CDKTR_LOG_LEVEL", default: "info", description: "debug, info, warn or error" },
      {
        name: "CDKTR_LOG_FORMAT",
        default: "",
        description: "json or pretty log lines (default: pretty with colours on a terminal, JSON otherwise)",
      },
      {
        name: "CDKTR_METRICS_PORT",
        default: "",
        description:
          "HTTP port of the process's /metrics (Prometheus), /healthz and /readyz; unset = not served (cdktr start all: consecutive ports from it)",
      },
      {
        name: "CDKTR_METRICS_HOST",
        default: "127.0.0.1",
        description: "Interface the metrics port binds (the endpoints carry no authentication)",
      },
    ],
  },
  {
    group: "Principal",
    settings: [
      {
        name: "CDKTR_WORKFLOW_DIR",
        default: "workflows",
        description: "Directory of workflow YAML files (relative to the working directory)",
      },
      {
        name: "CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S",
        default: "60",
        description: "Periodic rescan of the workflow directory, a fallback to file watching",
      },
      {
        name: "CDKTR_WORKFLOW_INDEX_PATH",
        default: "",
        description:
          "The workflow scan index, so a restart parses only changed files (default: cdktr.workflow-index.json beside CDKTR_DB_PATH; off = none)",
      },
      { name: "CDKTR_DB_PATH", default: "~/.cdktr/cdktr.db", description: "SQLite database file" },
      {
        name: "CDKTR_DATABASE_URL",
        default: "",
        description: "PostgreSQL instead of SQLite: postgres://user:password@host:5432/database",
      },
      {
        name: "CDKTR_DATABASE_READ_CONNECTIONS",
        default: "4",
        description: "Connections of the PostgreSQL read pool, besides the two write connections",
      },
      {
        name: "CDKTR_LEADER_TTL_MS",
        default: "5000",
        description:
          "Several principals on one PostgreSQL database: the leader's lease; a standby takes over about this long after the leader is gone",
      },
      {
        name: "CDKTR_ADVERTISE_HOST",
        default: "",
        description:
          "Host other machines reach this principal at, in the endpoints it advertises as leader (default: CDKTR_PRINCIPAL_HOST, or the host name for 0.0.0.0/::)",
      },
      {
        name: "CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS",
        default: "30000",
        description: "An agent silent this long is lost; its runs become CRASHED",
      },
      {
        name: "CDKTR_AGENT_HEARTBEAT_INTERVAL_MS",
        default: "5000",
        description: "Heartbeat period told to agents (agents read it too)",
      },
      {
        name: "CDKTR_AGENT_GC_AFTER_MS",
        default: "3600000",
        description: "A lost agent stays in `cdktr agents` this long, then is forgotten",
      },
      {
        name: "CDKTR_MAX_AGENTS_PER_KEY",
        default: "256",
        description: "Agent ids one key may hold at once (a new one forgets the key's longest-lost agent)",
      },
      {
        name: "CDKTR_ASSIGNMENT_LEASE_MS",
        default: "10000",
        description:
          "An assignment to an agent that confirms before starting (older agents) not confirmed within this goes back to the queue",
      },
      {
        name: "CDKTR_IDEMPOTENCY_RETENTION_DAYS",
        default: "7",
        description: "Idempotency keys are remembered at least this long",
      },
      {
        name: "CDKTR_RUN_RETENTION_DAYS",
        default: "30",
        description: "Finished runs older than this are deleted (0 = keep forever)",
      },
      {
        name: "CDKTR_LOG_RETENTION_DAYS",
        default: "30",
        description: "Log lines older than this are deleted (0 = keep forever)",
      },
      {
        name: "CDKTR_MAX_MESSAGE_BYTES",
        default: "1048576",
        description: "Largest request accepted on the API and log channels",
      },
      {
        name: "CDKTR_MAX_REQUESTS_IN_FLIGHT",
        default: "1000",
        description: "Requests one connection may have running at once (one more: RESOURCE_EXHAUSTED)",
      },
      {
        name: "CDKTR_MAX_REQUESTS_IN_FLIGHT_PER_KEY",
        default: "5000",
        description:
          "Requests one key may have running at once over all its connections, per port (one more: RESOURCE_EXHAUSTED)",
      },
      {
        name: "CDKTR_LOG_INGEST_MAX_PENDING_LINES",
        default: "20000",
        description: "Log lines of one agent waiting to be stored; beyond it a batch is refused (retryable)",
      },
      {
        name: "CDKTR_LOG_INGEST_MAX_PENDING_BYTES",
        default: "16777216",
        description: "The same bound in bytes",
      },
      { name: "CDKTR_SHUTDOWN_GRACE_MS", default: "10000", description: "Bound on a graceful shutdown" },
      {
        name: "CDKTR_AUTH",
        default: "on",
        description: "on: enrolled CURVE keys and roles on every socket; off only on a loopback host",
      },
      {
        name: "CDKTR_KEYS_DIR",
        default: "~/.cdktr/keys",
        description: "Key files: the principal's pair and the local-* client keys made on first start",
      },
    ],
  },
  {
    group: "Agent",
    settings: [
      {
        name: "CDKTR_AGENT_ID",
        default: "",
        description: "Stable agent id (default: host name plus a random suffix, new on every start)",
      },
      { name: "CDKTR_AGENT_MAX_CONCURRENCY", default: "5", description: "Runs executed at once" },
      {
        name: "CDKTR_AGENT_LABELS",
        default: "",
        description: "Comma-separated labels; workflows with agent_labels only run on agents having them all",
      },
      {
        name: "CDKTR_AGENT_INHERIT_ENV",
        default: "",
        description:
          "Variables of the agent's environment every task gets besides PATH, HOME, locale, proxies and CA files (comma-separated names or prefixes: AWS_REGION,AWS_*)",
      },
      {
        name: "CDKTR_AGENT_DATA_DIR",
        default: "",
        description:
          "Agent state: log spool, process-group records, lock (default ~/.cdktr/agent/<CDKTR_AGENT_ID or default>)",
      },
      {
        name: "CDKTR_AGENT_FETCH_WAIT_MS",
        default: "20000",
        description: "How long one fetchWork long-poll waits for work",
      },
      {
        name: "CDKTR_AGENT_SHUTDOWN_GRACE_MS",
        default: "30000",
        description: "On SIGTERM, how long running tasks may finish before they are cancelled",
      },
      {
        name: "CDKTR_TASK_KILL_GRACE_MS",
        default: "5000",
        description: "Between SIGTERM and SIGKILL to a task's process group (timeout, cancel)",
      },
      {
        name: "CDKTR_AGENT_LOG_SPOOL_MAX_BYTES",
        default: "268435456",
        description: "Disk spool for task output while the principal is unreachable (256 MiB)",
      },
      {
        name: "CDKTR_AGENT_FSYNC",
        default: "true",
        description: "fsync the status outbox, log spool and process-group records (batched)",
      },
      {
        name: "CDKTR_AGENT_CONTAINMENT",
        default: "auto",
        description: "How escaped task processes are found and killed: auto, cgroup or proc",
      },
      {
        name: "CDKTR_AGENT_SPAWNER",
        default: "auto",
        description:
          "Where tasks are forked: process (a spawner process), inline (the agent's thread), auto (process from 4 cores)",
      },
      {
        name: "CDKTR_AGENT_CGROUP_BASE",
        default: "",
        description: "A cgroup v2 directory for the agent's task cgroups (unset: the agent's own cgroup)",
      },
    ],
  },
  {
    group: "Scheduler",
    settings: [
      {
        name: "CDKTR_SCHEDULER_REFRESH_S",
        default: "60",
        description: "Periodic full refresh of workflow definitions (changes are also pushed live)",
      },
      {
        name: "CDKTR_SCHEDULER_MISS_GRACE_S",
        default: "60",
        description: "A trigger still failing this long after its time is counted as missed",
      },
      { name: "CDKTR_SCHEDULER_TRIGGER_TIMEOUT_S", default: "5", description: "Timeout of one trigger request" },
      {
        name: "CDKTR_SCHEDULER_STATE_DIR",
        default: "",
        description: "Where workflow chaining keeps how far finished runs were handled (default ~/.cdktr/scheduler)",
      },
      {
        name: "CDKTR_SCHEDULER_CHAIN_SWEEP_S",
        default: "10",
        description: "Seconds between chaining sweeps of the finished runs (the catch-up)",
      },
      {
        name: "CDKTR_SCHEDULER_CHAIN_MARGIN_S",
        default: "300",
        description: "How far each chaining sweep looks back for runs whose end is recorded late",
      },
    ],
  },
  {
    group: "Listeners",
    settings: [
      {
        name: "CDKTR_LISTENERS_CONFIG",
        default: "listeners.yml",
        description: "The listeners YAML file (webhook, file watcher, RabbitMQ, PostgreSQL)",
      },
      {
        name: "CDKTR_LISTENERS_STATE_DIR",
        default: "",
        description: "State kept across restarts: the webhooks' replay caches (default ~/.cdktr/listeners)",
      },
    ],
  },
  {
    group: "Dashboard",
    settings: [
      {
        name: "CDKTR_DASHBOARD_HOST",
        default: "127.0.0.1",
        description:
          "Interface of the web dashboard; on loopback reads need no sign-in, on any other address every API call does",
      },
      { name: "CDKTR_DASHBOARD_PORT", default: "5564", description: "HTTP port of the dashboard (0 = any free port)" },
      {
        name: "CDKTR_DASHBOARD_REQUIRE_SIGNIN",
        default: "false",
        description: "Require a sign-in for reads too, even on loopback",
      },
      {
        name: "CDKTR_DASHBOARD_TOKENS_FILE",
        default: "",
        description: "Sign-in tokens file (cdktr dashboard token ...; default <keys dir>/dashboard-tokens.json)",
      },
      { name: "CDKTR_DASHBOARD_MAX_STREAMS", default: "100", description: "Most live event streams open at once" },
      { name: "CDKTR_DASHBOARD_MAX_SESSIONS", default: "10000", description: "Most sign-in sessions kept" },
      { name: "CDKTR_DASHBOARD_SESSION_IDLE_H", default: "12", description: "Hours a session lives without a request" },
      {
        name: "CDKTR_DASHBOARD_SIGNIN_PER_MINUTE",
        default: "10",
        description: "Sign-in attempts allowed per remote address and minute",
      },
      {
        name: "CDKTR_DASHBOARD_PRINCIPAL_TIMEOUT_S",
        default: "10",
        description: "Timeout of one dashboard request to the principal",
      },
    ],
  },
];

/** The `.env` text `cdktr init` writes: every setting commented out with its default. */
export function renderDotEnv(): string {
  const out: string[] = [
    "# cdktr settings. Every line is commented out: the value shown is the default.",
    "# Uncomment and edit to change one. Variables already set in the environment win.",
    "# Full reference: docs/operations.md",
  ];
  for (const g of SETTINGS) {
    out.push("", `# --- ${g.group}`);
    for (const s of g.settings) {
      out.push(`# ${s.description}`);
      out.push(`# ${s.name}=${s.default}`);
    }
  }
  return `${out.join("\n")}\n`;
}

/**
 * The principal's start-up steps that depend on the environment (database file, ports), with
 * errors that name the setting to fix, and the background retention job.
 */
import { errorMessage, type Clock, type Logger } from "@cdktr/protocol";
import type { PrincipalConfig } from "./config.js";
import { PrincipalStartError } from "./errors.js";
import { SoleLeader, type LeaderRole } from "./leader/leader-role.js";
import { redactUrl } from "./store/postgres/database-url.js";
import { SqliteStore } from "./store/sqlite/sqlite-store.js";
import type { Store } from "./store/store.js";

/** Where the configured data lives, for the `ready` line and errors: the SQLite file, or the PostgreSQL URL without its password. */
export function databaseOf(config: PrincipalConfig): string {
  return config.databaseUrl === null ? config.dbPath : redactUrl(config.databaseUrl);
}

/**
 * The injected store, or the store of the configuration: PostgreSQL at `CDKTR_DATABASE_URL`
 * when set (a promise: connected and migrated; `pg` is loaded only then), else the SQLite file
 * of `CDKTR_DB_PATH` (created and migrated, synchronously).
 * @throws PrincipalStartError DATABASE_UNAVAILABLE naming the setting to fix.
 */
export function openStore(
  config: PrincipalConfig,
  injected: Store | undefined,
  clock: Clock,
  logger: Logger,
  role: LeaderRole,
): Store | Promise<Store> {
  if (injected !== undefined) return injected;
  if (config.databaseUrl !== null) return openPostgres(config.databaseUrl, config, clock, logger, role);
  try {
    return SqliteStore.open({ path: config.dbPath, clock, logger: logger.child({ component: "store" }) });
  } catch (e) {
    throw new PrincipalStartError(
      "DATABASE_UNAVAILABLE",
      `cannot open the database ${config.dbPath}: ${errorMessage(e)} (set CDKTR_DB_PATH to a writable file)`,
      { cause: e, context: { dbPath: config.dbPath } },
    );
  }
}

/**
 * The PostgreSQL store at `url` (connected and migrated; `pg` is loaded only here).
 * @throws PrincipalStartError DATABASE_UNAVAILABLE naming `CDKTR_DATABASE_URL`.
 */
async function openPostgres(
  url: string,
  config: PrincipalConfig,
  clock: Clock,
  logger: Logger,
  role: LeaderRole,
): Promise<Store> {
  try {
    const { PostgresStore } = await import("./store/postgres/postgres-store.js");
    return await PostgresStore.open({
      url,
      clock,
      logger: logger.child({ component: "store" }),
      readConnections: config.databaseReadConnections,
      ...(role.fence === undefined
        ? {}
        : { fence: role.fence, idleInTransactionTimeoutMs: Math.max(config.leaderTtlMs, 1000) }),
    });
  } catch (e) {
    throw new PrincipalStartError(
      "DATABASE_UNAVAILABLE",
      `cannot open the PostgreSQL database ${redactUrl(url)}: ${errorMessage(e)} (check that it is reachable and CDKTR_DATABASE_URL is right)`,
      { cause: e, context: { database: redactUrl(url) } },
    );
  }
}

/**
 * The leader role of the configuration: several principals may share a PostgreSQL database, so
 * there a lease elects one (`PgLeadership`, `pg` loaded only then); alone on SQLite, or with
 * an injected store, the principal always leads (`SoleLeader`).
 */
export async function createLeaderRole(
  config: PrincipalConfig,
  injected: Store | undefined,
  instanceId: string,
  workflowHash: () => string,
  logger: Logger,
): Promise<LeaderRole> {
  if (injected !== undefined || config.databaseUrl === null) return new SoleLeader();
  const { PgLeadership } = await import("./leader/pg-leadership.js");
  return new PgLeadership({
    url: config.databaseUrl,
    ttlMs: config.leaderTtlMs,
    instanceId,
    workflowHash,
    logger: logger.child({ component: "leader" }),
  });
}

/** The principal's sockets, as named in errors, with their port settings. */
const SOCKETS = {
  api: { what: "API", variable: "CDKTR_PRINCIPAL_PORT", port: (c: PrincipalConfig) => c.apiPort },
  logs: { what: "log-ingest", variable: "CDKTR_LOGS_LISTENING_PORT", port: (c: PrincipalConfig) => c.logsPort },
  publish: { what: "publish", variable: "CDKTR_LOGS_PUBLISHING_PORT", port: (c: PrincipalConfig) => c.publishPort },
} as const;

/**
 * Bind one of the principal's sockets, or explain which setting to change.
 * @throws PrincipalStartError SOCKET_UNAVAILABLE naming the port variable.
 */
export async function bindNamingSetting(
  bind: () => Promise<string>,
  config: PrincipalConfig,
  socket: keyof typeof SOCKETS,
): Promise<string> {
  const { what, variable } = SOCKETS[socket];
  const port = SOCKETS[socket].port(config);
  try {
    return await bind();
  } catch (e) {
    throw new PrincipalStartError(
      "SOCKET_UNAVAILABLE",
      `${what} socket (${variable}=${port}, host ${config.host}): ${errorMessage(e)}`,
      { cause: e, context: { variable, port, host: config.host } },
    );
  }
}

/**
 * Run the retention job once in the background (deleting what the configured retention allows),
 * logging what it deleted or why it failed.
 */
export function pruneInBackground(store: Store, config: PrincipalConfig, logger: Logger): void {
  store
    .prune({
      runDays: config.runRetentionDays,
      logDays: config.logRetentionDays,
      idempotencyDays: config.idempotencyRetentionDays,
    })
    .then(
      (r) => {
        if (r.runs + r.logs + r.idempotencyKeys > 0) logger.info("retention: old data deleted", { ...r });
      },
      (e: unknown) => logger.error("retention job failed", { error: errorMessage(e) }),
    );
}

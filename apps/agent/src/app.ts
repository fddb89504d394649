/**
 * Wiring of the agent: the data-directory lock, the process-group registry, the principal and
 * log clients, the log shipper, the status outbox, the runs and the session with the principal
 * (registration, heartbeats, fetch loops: `session/principal-session.ts`), started
 * in order and stopped in reverse. No side effects at import; `main.ts` owns the process.
 */
import { join } from "node:path";
import {
  CdktrError,
  HealthServer,
  LogClient,
  PrincipalClient,
  authDisabled,
  errorMessage,
  findClientKey,
  noopLogger,
  packageVersion,
  withPort,
  MAX_AGENT_RUNNING_RUNS,
  type ClientKey,
  type Logger,
  type RunStatus,
} from "@cdktr/protocol";
import type { AgentConfig } from "./config.js";
import { acquireDataDirLock, type DataDirLock } from "./data-dir/data-dir-lock.js";
import { claimSession, type ClaimedSession } from "./data-dir/session-file.js";
import { noSyncOps, realSyncOps, SyncBatch } from "./data-dir/sync-batch.js";
import { AgentStateError } from "./errors.js";
import { Containment } from "./exec/containment.js";
import { Spawner } from "./exec/spawner/spawner.js";
import { ProcessGroupRegistry } from "./exec/process-group-registry.js";
import type { TaskEnvSource } from "./exec/task-command.js";
import { LogShipper } from "./logs/log-shipper.js";
import { ActiveRuns } from "./run/active-runs.js";
import { Notifier } from "./session/notifier.js";
import { PrincipalSession } from "./session/principal-session.js";
import { StatusOutbox } from "./status/status-outbox.js";
import { AgentMetrics } from "./metrics/agent-metrics.js";

/** Version reported to the principal at registration. */
export const AGENT_VERSION: string = packageVersion(import.meta.url);

/** Dependencies of {@link createAgent}. */
export interface AgentDeps {
  /** @default noopLogger */
  logger?: Logger;
  /**
   * The agent's environment (copied at creation). Tasks get only a clean part of it: the base
   * variables (PATH, HOME, locale, proxies, ...) and what `config.inheritEnv` or the workflow's
   * `inherit_env` allows, never a `CDKTR_*` setting (docs/workflows.md, "Task environment").
   * @default process.env
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Names of `env` that came from the agent's `.env` file: tasks get them only through an allow-list. @default none */
  dotEnvNames?: Iterable<string>;
  /** Clock of reported transition times. @default () => new Date() */
  now?: () => Date;
  /**
   * The agent's key (both connections); null for a principal running with `CDKTR_AUTH=off`.
   * @default the file named by `CDKTR_KEY_FILE`, else `<CDKTR_KEYS_DIR or ~/.cdktr/keys>/local-agent.json`
   *   (made by a principal started on this machine with the same HOME); read at `start()`
   */
  key?: ClientKey | null;
}

/** The local key an agent looks for when none is given. */
export const AGENT_KEY_NAME = "local-agent";

/** What {@link Agent.start} resolves with (logged in the `ready` line). */
export interface AgentReadyInfo {
  agentId: string;
  principal: string;
  logs: string;
  dataDir: string;
  /** Whether the first registration succeeded (the agent keeps trying otherwise). */
  registered: boolean;
  /** Process groups left by a previous agent process that were killed at start. */
  reapedProcessGroups: number[];
  /** How escaped task processes are found: `cgroup` (v2 subtree per task) or `proc` (environment marker). */
  containment: "cgroup" | "proc";
  /** Where task processes are forked (`CDKTR_AGENT_SPAWNER`, `auto` resolved; `inline` when the spawner could not start). */
  spawner: "process" | "inline";
  /** Processes of a previous agent process's tasks found by that mechanism and killed at start. */
  reapedProcesses: number;
  /** The name of the agent's key; null without one (plaintext, for `CDKTR_AUTH=off`). */
  key: string | null;
  /** Base URL of `/metrics`, `/healthz` and `/readyz` (`CDKTR_METRICS_PORT`), or null when not served. */
  metrics: string | null;
}

/** A running agent. */
export interface Agent {
  readonly agentId: string;
  /**
   * Lock the data directory, kill task processes left by a previous agent process, start the
   * log shipper and status outbox, register (once; retried in the background) and start
   * heartbeats and the fetch loop.
   * @throws AgentStartError `DATA_DIR_LOCKED` / `DATA_DIR_UNUSABLE`
   * @throws AgentStateError `AGENT_ALREADY_STARTED` when called a second time
   */
  start(): Promise<AgentReadyInfo>;
  /**
   * Graceful stop: no more fetching; running runs get `shutdownGraceMs` to finish, the rest
   * are cancelled (`agent_shutdown`); statuses and logs are flushed (what cannot be delivered
   * stays in the data directory). Idempotent.
   */
  stop(): Promise<void>;
  /** Forced stop: SIGKILL every task process group now (synchronous; for a second signal). */
  kill(): void;
  /** Ids of runs executing, or finished but whose final status is not delivered yet. */
  runningRuns(): string[];
}

/** What {@link Agent.start} builds; stopped in reverse order. */
interface Parts {
  /** The group commit of the data directory's records. */
  sync: SyncBatch;
  groups: ProcessGroupRegistry;
  containment: Containment;
  shipper: LogShipper;
  outbox: StatusOutbox;
  runs: ActiveRuns;
  session: PrincipalSession;
}

/**
 * Build an agent from its configuration.
 * @example
 * const agent = createAgent(loadConfig(process.env), { logger });
 * await agent.start();
 */
export function createAgent(config: AgentConfig, deps: AgentDeps = {}): Agent {
  const logger = (deps.logger ?? noopLogger).child({ agentId: config.agentId });
  // A plain copy, taken once: reading `process.env` goes through the C++ environment on every
  // key, and every task start copies this.
  const taskEnv: TaskEnvSource = {
    env: { ...(deps.env ?? process.env) },
    fromDotEnv: new Set(deps.dotEnvNames ?? []),
    inheritEnv: config.inheritEnv,
  };
  const now = deps.now ?? (() => new Date());
  const wake = new Notifier();

  let lock: DataDirLock | null = null;
  let client: PrincipalClient | null = null;
  let logClient: LogClient | null = null;
  let parts: Parts | null = null;
  let keyName: string | null = null;
  let stopping = false;
  let started = false;
  let stopPromise: Promise<void> | null = null;
  let health: HealthServer | null = null;
  /** The spawner process (`CDKTR_AGENT_SPAWNER=process`), from start-up on. */
  let spawner: Spawner | null = null;
  const metrics =
    config.metricsPort === null
      ? null
      : new AgentMetrics({
          executing: () => parts?.runs.size ?? 0,
          capacity: config.maxConcurrency,
          registered: () => parts?.session.registered === true,
          logMemoryBytes: () => parts?.shipper.memoryBytes ?? 0,
          logSpoolBytes: () => parts?.shipper.spoolBytes ?? 0,
          statusPending: () => parts?.outbox.pending ?? 0,
        });

  /** Why this agent cannot take work now (`/readyz`); empty when it can. */
  const notReady = (): string[] => {
    const p = parts;
    if (p === null || stopping) return [stopping ? "the agent is stopping" : "the agent is starting"];
    const problems = [p.shipper.problem, p.outbox.problem, p.groups.problem].filter((x): x is string => x !== null);
    if (!p.session.registered) problems.push("not registered with the principal (registering again)");
    return problems;
  };

  const releaseAll = (): void => {
    const h = health;
    health = null;
    void h?.close();
    client?.close();
    logClient?.close();
    client = null;
    logClient = null;
    lock?.release();
    lock = null;
    void spawner?.close();
    spawner = null;
  };

  /** Build every part (nothing runs yet); the clients are released by {@link releaseAll}. */
  const build = (): Parts & { principal: PrincipalClient; logs: LogClient } => {
    // One group commit for every record of the data directory: one fsync per file per turn.
    const sync = new SyncBatch({ ops: config.fsync ? realSyncOps : noSyncOps, logger });
    const groups = new ProcessGroupRegistry(config.dataDir, logger, sync);
    const containment = Containment.create({
      mode: config.containment,
      cgroupBase: config.cgroupBase,
      dataDir: config.dataDir,
      logger,
    });
    // Read here, not at import or creation: a bad CDKTR_KEY_FILE fails the start with its message.
    const key = deps.key !== undefined ? deps.key : findClientKey(AGENT_KEY_NAME, process.env);
    keyName = key?.name ?? null;
    if (key === null && !authDisabled(process.env)) {
      logger.warn(
        `no key: connecting in plaintext, which only a principal with CDKTR_AUTH=off answers; set CDKTR_KEY_FILE, or start the principal on this machine first (it makes ${AGENT_KEY_NAME}.json in its keys directory)`,
      );
    }
    const principal = new PrincipalClient({
      endpoints: config.principalEndpoints,
      logsPort: config.logsPort,
      timeoutMs: 5000,
      logger,
      env: {},
      key,
    });
    client = principal;
    // Log batches go to the leader's log endpoint, and move with it (one leader watch for both).
    const logs = new LogClient({
      endpoint: principal.leaderWatch.best?.logs ?? withPort(principal.endpoint, config.logsPort),
      leaderWatch: principal.leaderWatch,
      timeoutMs: 10_000,
      logger,
      env: {},
      key,
    });
    logClient = logs;
    const shipper = new LogShipper({
      sink: async (lines, tokens) => {
        await logs.logBatch({ agentId: config.agentId, lines, tokens }, { retry: false });
      },
      spoolDir: join(config.dataDir, "spool"),
      spoolMaxBytes: config.logSpoolMaxBytes,
      logger,
      sync,
      ...(metrics === null ? {} : { onDelivered: (n: number) => metrics.logLinesDelivered(n) }),
    });
    const outbox = new StatusOutbox({
      sink: async (u) => {
        if (client === null) {
          throw new CdktrError("CLOSED", "the agent stopped: the update stays in the outbox for the next start");
        }
        if (u.verb === "confirmAssignment") await client.confirmAssignment(u.body, { retry: false });
        else if (u.verb === "runStatus") await client.runStatus(u.body, { retry: false });
        else await client.taskStatus(u.body, { retry: false });
      },
      dataDir: config.dataDir,
      logger,
      onNotRegistered: () => session.markUnregistered(),
      whenLogsAcked: (mark) => shipper.whenAcked(mark),
      whenLogsDurable: (mark) => shipper.whenDurable(mark),
      whenPreviousLogsSent: () => shipper.whenPreviousSpoolSent(),
      sync,
      // The fetch loops and the tasks waiting to start go on at once.
      onWritable: () => wake.notify(),
    });
    const runs = new ActiveRuns({
      agentId: config.agentId,
      taskEnv,
      outbox,
      shipper,
      groups,
      containment,
      spawner: () => spawner,
      killGraceMs: config.taskKillGraceMs,
      logger,
      now,
      onFinished: () => wake.notify(),
      ...(metrics === null
        ? {}
        : { onRunEnded: (workflowId: string, status: RunStatus) => metrics.runEnded(workflowId, status) }),
    });
    const claimed = claimSession(config.dataDir, logger, sync);
    const session = new PrincipalSession({
      config,
      version: AGENT_VERSION,
      client: principal,
      runs,
      session: claimed.session,
      // Read at the first registration, once the outbox loaded the previous process's journal.
      predecessor: () => predecessorOf(claimed, outbox, logger),
      onPredecessorTold: () => outbox.forgetPreviousStarts(),
      wake,
      logger,
      problems: () => [shipper.problem, outbox.problem, groups.problem].filter((p): p is string => p !== null),
      holdWork: () => (outbox.writable ? null : "the status outbox cannot be written (see the agent's problems)"),
    });
    // A new leader: register there (statuses and log batches follow by themselves: a standby's
    // NOT_LEADER moves the clients and they are resent, never dropped).
    principal.onLeaderChange((leader) => {
      session.leaderMoved(leader.api);
      wake.notify();
    });
    return { sync, groups, containment, shipper, outbox, runs, session, principal, logs };
  };

  return {
    agentId: config.agentId,

    async start(): Promise<AgentReadyInfo> {
      if (started) {
        throw new AgentStateError(
          "AGENT_ALREADY_STARTED",
          "this agent was started already: create a new one with createAgent()",
          { context: { agentId: config.agentId } },
        );
      }
      started = true;
      lock = acquireDataDirLock(config.dataDir, config.agentId);
      try {
        const built = build();
        parts = built;
        const { groups, containment, shipper, outbox, session } = built;
        const reaped = groups.reapOrphans();
        const reapedProcesses = containment.reapOrphans();
        logger.info("task containment", { mechanism: containment.mechanism, why: containment.why });
        // After the reaping: the spawner waits for spawns in a fresh cgroup of the subtree.
        if (config.spawner === "process") {
          try {
            spawner = await Spawner.start({ cgroupDir: containment.cgroupDir, logger });
          } catch (e: unknown) {
            logger.warn("cannot start the spawner process: tasks are forked on the agent's thread", {
              error: errorMessage(e),
            });
          }
        }
        shipper.start();
        outbox.start();
        if (stopping) session.stopFetching();
        if (metrics !== null && config.metricsPort !== null) {
          health = await HealthServer.start({
            host: config.metricsHost,
            port: config.metricsPort,
            metrics: metrics.registry,
            notReady,
            logger,
          });
        }
        const registered = await session.start();
        return {
          agentId: config.agentId,
          principal: built.principal.endpoint,
          logs: built.logs.endpoint,
          dataDir: config.dataDir,
          registered,
          reapedProcessGroups: reaped,
          containment: containment.mechanism,
          spawner: spawner === null ? "inline" : "process",
          reapedProcesses,
          key: keyName,
          metrics: health?.url ?? null,
        };
      } catch (e: unknown) {
        releaseAll();
        throw e;
      }
    },

    stop(): Promise<void> {
      if (stopPromise !== null) return stopPromise;
      stopPromise = (async () => {
        stopping = true;
        parts?.session.stopFetching();
        if (!started || parts === null) return;
        const { runs, shipper, outbox, session, sync } = parts;
        logger.info("shutting down", { runningRuns: runs.size, graceMs: config.shutdownGraceMs });
        const allDone = await wake.until(() => runs.size === 0, config.shutdownGraceMs);
        if (!allDone) {
          logger.warn("shutdown grace period over; cancelling the runs still going", { runs: runs.executingIds() });
          runs.cancelAll("agent_shutdown");
          await wake.until(() => runs.size === 0, config.taskKillGraceMs + 5000);
        }
        const flushMs = Math.min(10_000, Math.max(1000, config.shutdownGraceMs));
        const [logsFlushed, statusFlushed] = await Promise.all([shipper.flush(flushMs), outbox.flush(flushMs)]);
        if (!logsFlushed || !statusFlushed) {
          logger.warn("the principal did not take everything before shutdown; the rest stays in the data directory", {
            logsFlushed,
            statusFlushed,
          });
        }
        // Assignments dropped while stopping go back to the queue now, not when this agent is lost.
        await session.farewell(Math.min(config.fetchWaitMs + 1000, flushMs));
        session.close();
        // Stop first (what is unsent is kept on disk), then close the sockets so that a request
        // in flight ends now instead of at its timeout.
        // The shipper first: the lines it spools let the outbox journal the statuses waiting on them.
        const stopped = shipper.stop().then(() => outbox.stop());
        client?.close();
        logClient?.close();
        await stopped;
        // What the outbox and the spool wrote last is on the disk before the process exits.
        await sync.synced();
        await session.closed();
        // The spawner leaves its fresh cgroup before the subtree is removed.
        await spawner?.close();
        parts.containment.close();
        releaseAll();
        logger.info("stopped");
      })();
      return stopPromise;
    },

    kill(): void {
      stopping = true;
      parts?.session.close();
      // Every live group is recorded by the registry; a SIGKILL leaves nothing behind.
      parts?.groups.killAll("SIGKILL");
      parts?.containment.killAll();
    },

    runningRuns: () => parts?.runs.runningRuns() ?? [],
  };
}

/**
 * What the registration says about the previous process on this data directory: its session and
 * the runs its journal shows it started, or null when that cannot be vouched for (another boot,
 * an unreadable journal, too many runs to list).
 */
function predecessorOf(
  claimed: ClaimedSession,
  outbox: StatusOutbox,
  logger: Logger,
): { session: string; started: string[] } | null {
  if (claimed.predecessor === null) return null;
  const started = outbox.previousStarts();
  if (!outbox.loadedAll || started.length > MAX_AGENT_RUNNING_RUNS) {
    logger.warn("cannot vouch for the previous agent process's runs; the principal treats its assignments as lost", {
      session: claimed.predecessor,
    });
    return null;
  }
  return { session: claimed.predecessor, started };
}

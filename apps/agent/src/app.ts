/**
 * Wiring of the agent: registration, heartbeats, the fetch loop, run executions, the log
 * shipper and the status outbox. No side effects at import; `main.ts` owns the process.
 */
import { join } from "node:path";
import {
  errorMessage,
  CdktrError,
  LogClient,
  PrincipalClient,
  isCdktrError,
  noopLogger,
  packageVersion,
  toCdktrError,
  type Assignment,
  type Logger,
} from "@cdktr/protocol";
import type { AgentConfig } from "./config.js";
import { AgentStateError } from "./errors.js";
import { acquireDataDirLock, type DataDirLock } from "./data-dir/data-dir-lock.js";
import { ProcessGroupRegistry } from "./exec/process-group-registry.js";
import { LogShipper } from "./logs/log-shipper.js";
import { RunExecution } from "./run/run-execution.js";
import { StatusOutbox, type StatusUpdate } from "./status/status-outbox.js";

/** Version reported to the principal at registration. */
export const AGENT_VERSION: string = packageVersion(import.meta.url);

/** Dependencies of {@link createAgent}. */
export interface AgentDeps {
  /** @default noopLogger */
  logger?: Logger;
  /** Environment inherited by every task (copied at creation). @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** Clock of reported transition times. @default () => new Date() */
  now?: () => Date;
}

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
}

/** A running agent. */
export interface Agent {
  readonly agentId: string;
  /**
   * Lock the data directory, kill task processes left by a previous agent process, start the
   * log shipper and status outbox, register (once; retried in the background) and start
   * heartbeats and the fetch loop.
   * @throws AgentStartError `DATA_DIR_LOCKED` / `DATA_DIR_UNUSABLE`
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

/** Most fetchWork long-polls one agent keeps outstanding at a time. */
const MAX_CONCURRENT_FETCHES = 4;

/** A wake-up signal for loops: `wait(ms)` resolves early on `notify()`. */
class Notifier {
  #waiters: (() => void)[] = [];
  notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        const i = this.#waiters.indexOf(done);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve();
      }, ms);
      this.#waiters.push(done);
    });
  }
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
  const env: Readonly<Record<string, string | undefined>> = { ...(deps.env ?? process.env) };
  const now = deps.now ?? (() => new Date());

  let lock: DataDirLock | null = null;
  let groups: ProcessGroupRegistry | null = null;
  let client: PrincipalClient | null = null;
  let logClient: LogClient | null = null;
  let shipper: LogShipper | null = null;
  let outbox: StatusOutbox | null = null;

  const executions = new Map<string, RunExecution>();
  /** Runs whose final status is queued but not delivered yet. */
  const reporting = new Set<string>();
  let confirming = 0;
  /** fetchWork requests outstanding: each holds one free slot. */
  let fetching = 0;
  let registered = false;
  let registering: Promise<boolean> | null = null;
  let heartbeatMs = config.heartbeatIntervalMs;
  let stopping = false;
  /** Set once shutdown is done with the principal: heartbeats go on until then. */
  let closing = false;
  let started = false;
  let stopPromise: Promise<void> | null = null;
  const wake = new Notifier();
  const loops: Promise<void>[] = [];

  const runningRuns = (): string[] => [
    ...new Set([...executions.keys(), ...reporting, ...(outbox?.pendingRunIds() ?? [])]),
  ];

  const cancelRuns = (ids: readonly string[], from: string): void => {
    for (const id of ids) {
      const exec = executions.get(id);
      if (exec !== undefined) {
        logger.info("the principal asked to cancel a run", { runId: id, from });
        exec.cancel("cancelled");
      }
    }
  };

  const register = async (): Promise<boolean> => {
    const c = client;
    if (c === null) return false;
    try {
      const reply = await c.registerAgent(
        {
          agentId: config.agentId,
          host: config.host,
          capacity: config.maxConcurrency,
          labels: config.labels,
          version: AGENT_VERSION,
          runningRuns: runningRuns(),
        },
        { timeoutMs: 3000, retry: false },
      );
      heartbeatMs = Math.min(config.heartbeatIntervalMs, reply.heartbeatIntervalMs);
      if (!registered)
        logger.info("registered with the principal", {
          principal: c.endpoint,
          heartbeatMs,
          runningRuns: runningRuns().length,
        });
      registered = true;
      cancelRuns(reply.cancel, "registerAgent");
      wake.notify();
      return true;
    } catch (e: unknown) {
      logger.warn("cannot register with the principal; will retry", { error: toCdktrError(e).message });
      return false;
    }
  };

  /** Single-flight registration. */
  const ensureRegistered = (): Promise<boolean> => {
    if (registering === null) {
      registering = register().finally(() => {
        registering = null;
      });
    }
    return registering;
  };

  const markUnregistered = (): void => {
    if (registered) logger.warn("the principal does not know this agent; registering again");
    registered = false;
    void ensureRegistered();
  };

  const heartbeatLoop = async (): Promise<void> => {
    let failing = false;
    while (!closing) {
      await wake.wait(heartbeatMs);
      if (closing || client === null) break;
      if (!registered) {
        await ensureRegistered();
        continue;
      }
      try {
        const reply = await client.heartbeat(
          { agentId: config.agentId, runningRuns: runningRuns() },
          { timeoutMs: Math.max(1000, Math.min(heartbeatMs, 5000)), retry: false },
        );
        if (failing) logger.info("heartbeats reach the principal again");
        failing = false;
        if (reply.reregister) markUnregistered();
        cancelRuns(reply.cancel, "heartbeat");
      } catch (e: unknown) {
        if (isCdktrError(e, "AGENT_NOT_REGISTERED")) {
          markUnregistered();
        } else {
          if (!failing) logger.warn("heartbeat failed; running tasks go on", { error: toCdktrError(e).message });
          failing = true;
          // The principal may have restarted and forgotten us: registering again is harmless.
          registered = false;
        }
      }
    }
  };

  const startRun = (assignment: Assignment): void => {
    const runId = assignment.run.runId;
    const exec = new RunExecution({
      agentId: config.agentId,
      assignment,
      baseEnv: env,
      outbox: outbox as StatusOutbox,
      shipper: shipper as LogShipper,
      groups: groups as ProcessGroupRegistry,
      killGraceMs: config.taskKillGraceMs,
      logger,
      now,
      onReported: () => {
        reporting.delete(runId);
      },
    });
    executions.set(runId, exec);
    reporting.add(runId);
    void exec
      .execute()
      .catch((e: unknown) => logger.error("run execution failed unexpectedly", { runId, error: errorMessage(e) }))
      .finally(() => {
        executions.delete(runId);
        wake.notify();
      });
  };

  const confirmAndStart = async (assignment: Assignment): Promise<void> => {
    const runId = assignment.run.runId;
    const leaseEnd = Date.parse(assignment.leaseExpiresAt);
    confirming++;
    try {
      for (let attempt = 1; ; attempt++) {
        if (stopping) {
          logger.info("shutting down: not confirming an assignment (its lease will expire)", { runId });
          return;
        }
        try {
          await (client as PrincipalClient).confirmAssignment({
            agentId: config.agentId,
            runId,
            token: assignment.token,
          });
          break;
        } catch (e: unknown) {
          const err = toCdktrError(e);
          if (!err.retryable || Date.now() >= leaseEnd) {
            logger.warn("assignment not confirmed; dropping it without starting anything", {
              runId,
              code: err.code,
              error: err.message,
            });
            return;
          }
          await wake.wait(Math.min(1000, 100 * attempt));
        }
      }
      // Debug: "run started" follows at once at info with the same ids (one stdout line less per run).
      logger.debug("run assigned", { runId, workflowId: assignment.workflow.id });
      startRun(assignment);
    } finally {
      confirming--;
    }
  };

  const fetchLoop = async (): Promise<void> => {
    let failures = 0;
    while (!stopping) {
      const c = client;
      if (c === null) break;
      if (!registered) {
        const ok = await ensureRegistered();
        if (!ok) await wake.wait(Math.min(5000, 250 * 2 ** Math.min(failures++, 5)));
        continue;
      }
      const free = config.maxConcurrency - executions.size - confirming - fetching;
      if (free <= 0) {
        await wake.wait(1000);
        continue;
      }
      try {
        fetching++;
        let reply: Awaited<ReturnType<PrincipalClient["fetchWork"]>>;
        try {
          reply = await c.fetchWork({ agentId: config.agentId, waitMs: config.fetchWaitMs, freeSlots: free });
        } finally {
          fetching--;
        }
        failures = 0;
        cancelRuns(reply.cancel, "fetchWork");
        if (reply.assignment !== null) {
          if (stopping) {
            logger.info("shutting down: leaving an assignment unconfirmed (its lease will expire)", {
              runId: reply.assignment.run.runId,
            });
          } else {
            await confirmAndStart(reply.assignment);
          }
        }
      } catch (e: unknown) {
        if (stopping) break;
        const err = toCdktrError(e);
        if (err.code === "AGENT_NOT_REGISTERED") {
          markUnregistered();
          continue;
        }
        if (failures === 0) logger.warn("fetchWork failed; retrying", { code: err.code, error: err.message });
        await wake.wait(Math.min(5000, 250 * 2 ** Math.min(failures++, 5)));
      }
    }
  };

  const sendStatus = async (u: StatusUpdate): Promise<void> => {
    const c = client;
    if (c === null)
      throw new CdktrError("CLOSED", "the agent stopped: the update stays in the outbox for the next start");
    if (u.verb === "runStatus") await c.runStatus(u.body, { retry: false });
    else await c.taskStatus(u.body, { retry: false });
  };

  const waitFor = async (pred: () => boolean, timeoutMs: number): Promise<boolean> => {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() >= end) return false;
      await wake.wait(Math.min(100, Math.max(1, end - Date.now())));
    }
    return true;
  };

  const releaseAll = (): void => {
    client?.close();
    logClient?.close();
    client = null;
    logClient = null;
    lock?.release();
    lock = null;
  };

  return {
    agentId: config.agentId,

    async start(): Promise<AgentReadyInfo> {
      if (started) {
        throw new AgentStateError(
          "AGENT_ALREADY_STARTED",
          "this agent was started already: create a new one with createAgent()",
          {
            context: { agentId: config.agentId },
          },
        );
      }
      started = true;
      lock = acquireDataDirLock(config.dataDir, config.agentId);
      try {
        groups = new ProcessGroupRegistry(config.dataDir, logger);
        const reaped = groups.reapOrphans();
        client = new PrincipalClient({
          host: config.principalHost,
          port: config.principalPort,
          timeoutMs: 5000,
          logger,
          env: {},
        });
        logClient = new LogClient({
          host: config.principalHost,
          port: config.logsPort,
          timeoutMs: 10_000,
          logger,
          env: {},
        });
        const lc = logClient;
        shipper = new LogShipper({
          sink: async (lines) => {
            await lc.logBatch({ agentId: config.agentId, lines }, { retry: false });
          },
          spoolDir: join(config.dataDir, "spool"),
          spoolMaxBytes: config.logSpoolMaxBytes,
          logger,
        });
        const sh = shipper;
        outbox = new StatusOutbox({
          sink: sendStatus,
          dataDir: config.dataDir,
          logger,
          onNotRegistered: markUnregistered,
          whenLogsAcked: (mark) => sh.whenAcked(mark),
          whenPreviousLogsSent: () => sh.whenPreviousSpoolSent(),
        });
        shipper.start();
        outbox.start();
        const ok = await ensureRegistered();
        // Several fetches in flight (each holding a free slot), so that the round trips and the
        // principal's commits of consecutive assignments overlap instead of queueing one by one.
        const fetchers = Math.min(config.maxConcurrency, MAX_CONCURRENT_FETCHES);
        loops.push(heartbeatLoop(), ...Array.from({ length: fetchers }, () => fetchLoop()));
        return {
          agentId: config.agentId,
          principal: client.endpoint,
          logs: logClient.endpoint,
          dataDir: config.dataDir,
          registered: ok,
          reapedProcessGroups: reaped,
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
        wake.notify();
        if (!started) return;
        logger.info("shutting down", { runningRuns: executions.size, graceMs: config.shutdownGraceMs });
        const allDone = await waitFor(() => executions.size === 0, config.shutdownGraceMs);
        if (!allDone) {
          logger.warn("shutdown grace period over; cancelling the runs still going", { runs: [...executions.keys()] });
          for (const exec of executions.values()) exec.cancel("agent_shutdown");
          await waitFor(() => executions.size === 0, config.taskKillGraceMs + 5000);
        }
        const flushMs = Math.min(10_000, Math.max(1000, config.shutdownGraceMs));
        const [logsFlushed, statusFlushed] = await Promise.all([
          shipper?.flush(flushMs) ?? true,
          outbox?.flush(flushMs) ?? true,
        ]);
        if (!logsFlushed || !statusFlushed) {
          logger.warn("the principal did not take everything before shutdown; the rest stays in the data directory", {
            logsFlushed,
            statusFlushed,
          });
        }
        closing = true;
        wake.notify();
        // Stop first (what is unsent is kept on disk), then close the sockets so that a request
        // in flight ends now instead of at its timeout.
        const stopped = Promise.all([outbox?.stop(), shipper?.stop()]);
        client?.close();
        logClient?.close();
        await stopped;
        await Promise.allSettled(loops);
        releaseAll();
        logger.info("stopped");
      })();
      return stopPromise;
    },

    kill(): void {
      stopping = true;
      closing = true;
      // Every live group is recorded by the registry; a SIGKILL leaves nothing behind.
      groups?.killAll("SIGKILL");
    },

    runningRuns,
  };
}

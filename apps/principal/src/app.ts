/**
 * Wiring of the principal: store, workflow registry, dispatcher, agent registry, and the three
 * sockets (API ROUTER, log-ingest ROUTER, PUB). No side effects at import; see {@link createPrincipal}.
 */
import { hostname } from "node:os";
import {
  API_VERBS,
  CdktrError,
  LOG_VERBS,
  Publisher,
  RpcServer,
  endpointFor,
  noopLogger,
  isTerminalRunStatus,
  topics,
  type Logger,
  type RunRecord,
  type TaskRunRecord,
} from "@cdktr/protocol";
import { WorkflowDirectory, resolveParams } from "@cdktr/workflow";
import { AgentRegistry } from "./agents/agent-registry.js";
import { systemClock, type Clock } from "@cdktr/protocol";
import type { PrincipalConfig } from "./config.js";
import { Dispatcher } from "./dispatch/dispatcher.js";
import { UlidGenerator } from "./ids.js";
import { SqliteStore } from "./store/sqlite/sqlite-store.js";
import type { Store } from "./store/store.js";
import { WorkflowRegistry, type WorkflowScan } from "./workflows/workflow-registry.js";

/** Version reported by `ping`. */
export const PRINCIPAL_VERSION = "0.1.0";

/** Optional collaborators of {@link createPrincipal} (tests inject clocks and stores). */
export interface PrincipalDeps {
  /** @default noopLogger */
  logger?: Logger;
  /** @default systemClock */
  clock?: Clock;
  /** @default a SqliteStore at `config.dbPath` */
  store?: Store;
  /** @default a WorkflowDirectory scan of `config.workflowDir` */
  scanWorkflows?: () => Promise<WorkflowScan>;
}

/** The actual endpoints, known after `start()` (ports may have been 0). */
export interface PrincipalEndpoints {
  api: string;
  logs: string;
  publish: string;
}

/** A running principal. */
export interface Principal {
  /** Open the store, load workflows, bind the sockets. Resolves with the endpoints. */
  start(): Promise<PrincipalEndpoints>;
  /** Stop intake, answer parked long-polls, flush and close everything. Idempotent. */
  stop(): Promise<void>;
  /** The endpoints (after `start()`). */
  readonly endpoints: PrincipalEndpoints | null;
  /** The store (after `start()`), for diagnostics and tests. */
  readonly store: Store | null;
  /** What the principal found at start (after `start()`): the fields of main.ts's `ready` line. */
  readonly readyInfo: PrincipalReadyInfo | null;
}

/** State found at start, logged with the endpoints in the `ready` line. */
export interface PrincipalReadyInfo {
  workflowDir: string;
  dbPath: string;
  /** Valid workflows loaded. */
  workflows: number;
  /** Runs waiting in the queue. */
  queued: number;
  /** Runs not yet finished (queued, assigned or running) found in the store. */
  activeRuns: number;
}

/** Build a principal from its configuration. Nothing happens until `start()`. */
export function createPrincipal(config: PrincipalConfig, deps: PrincipalDeps = {}): Principal {
  const logger = deps.logger ?? noopLogger;
  const clock = deps.clock ?? systemClock;
  const ids = new UlidGenerator(clock);
  const principalId = `principal@${hostname()}`;
  let store: Store | null = null;
  let endpoints: PrincipalEndpoints | null = null;
  let readyInfo: PrincipalReadyInfo | null = null;
  let publisher: Publisher | null = null;
  let api: RpcServer<typeof API_VERBS> | null = null;
  let logs: RpcServer<typeof LOG_VERBS> | null = null;
  let workflows: WorkflowRegistry | null = null;
  let dispatcher: Dispatcher | null = null;
  let ticker: NodeJS.Timeout | null = null;
  let pruner: NodeJS.Timeout | null = null;
  let state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  let stopping: Promise<void> | null = null;
  const agents = new AgentRegistry(clock, config.heartbeatTimeoutMs);
  /** RUNNING runs their agent stopped listing, and since when (principal clock). */
  const unreported = new Map<string, number>();
  const debugLogging = config.logLevel === "debug";

  const publish = (topic: () => string, body: unknown): void => {
    try {
      publisher?.publish(topic(), body);
    } catch (e) {
      logger.warn("not published (id contains '|')", { error: String(e) });
    }
  };
  const publishRun = (run: RunRecord): void => publish(() => topics.runs(run.workflowId, run.runId), { run });
  const publishTasks = (workflowId: string, tasks: readonly TaskRunRecord[]): void => {
    for (const task of tasks) publish(() => topics.tasks(workflowId, task.runId), { workflowId, task });
  };

  const need = <T>(v: T | null): T => {
    if (v === null) throw new CdktrError("SHUTTING_DOWN", "the principal is not running: retry later");
    return v;
  };

  /** Crash every run an agent holds (it stopped heartbeating or restarted without them). */
  const crashAgentRuns = async (agentId: string, runIds: readonly string[], why: string): Promise<void> => {
    const s = need(store);
    const d = need(dispatcher);
    await Promise.all(
      runIds.map(async (runId) => {
        const entry = d.remove(runId);
        if (entry === undefined) return;
        const requeueId = entry.workflow.onAgentLost === "requeue" ? ids.next() : null;
        try {
          const res = await s.crashRun(runId, "agent_lost", why, requeueId);
          if (res === null) return;
          logger.warn("run crashed: agent lost", {
            runId,
            agentId,
            workflowId: res.run.workflowId,
            requeuedAs: res.requeued?.runId ?? null,
          });
          publishRun(res.run);
          publishTasks(res.run.workflowId, res.tasks);
          if (res.requeued !== null) {
            publishRun(res.requeued);
            d.enqueue(res.requeued, entry.workflow);
          }
        } catch (e) {
          logger.error("could not mark a run CRASHED", { runId, agentId, error: String(e) });
        }
      }),
    );
  };

  /**
   * Compare what an agent says it runs with what it holds. Reported runs it does not hold (unknown,
   * finished, CRASHED, someone else's) come back as `cancel`, with cancel requests. A RUNNING run
   * it holds but stops reporting is not crashed at once (its final report may be queued behind a
   * re-registration): it is CRASHED if still unreported after one heartbeat timeout.
   */
  const reconcile = (agentId: string, runningRuns: readonly string[]): string[] => {
    const d = need(dispatcher);
    const reported = new Set(runningRuns);
    const now = clock.now();
    for (const e of d.byAgent(agentId)) {
      if (e.run.status !== "RUNNING") continue;
      if (reported.has(e.run.runId)) unreported.delete(e.run.runId);
      else if (!unreported.has(e.run.runId)) unreported.set(e.run.runId, now);
    }
    const cancel = d.cancelsFor(agentId);
    for (const id of runningRuns) {
      const e = d.get(id);
      if ((e === undefined || e.run.agentId !== agentId) && !cancel.includes(id)) cancel.push(id);
    }
    return cancel;
  };

  const tick = (): void => {
    const d = dispatcher;
    if (d === null || state !== "running") return;
    d.expireLeases();
    for (const agent of agents.expire()) {
      const held = d.byAgent(agent.agentId).map((e) => e.run.runId);
      logger.warn("agent lost: no heartbeat within the timeout", {
        agentId: agent.agentId,
        timeoutMs: config.heartbeatTimeoutMs,
        runs: held,
      });
      d.dropWaiters(agent.agentId);
      crashAgentRuns(
        agent.agentId,
        held,
        `agent \`${agent.agentId}\` sent no heartbeat for ${config.heartbeatTimeoutMs} ms`,
      ).catch((e: unknown) =>
        logger.error("could not handle a lost agent", { agentId: agent.agentId, error: String(e) }),
      );
    }
    const now = clock.now();
    for (const [runId, since] of unreported) {
      const e = d.get(runId);
      if (e === undefined || e.run.status !== "RUNNING" || e.run.agentId === null) {
        unreported.delete(runId);
      } else if (now - since > config.heartbeatTimeoutMs) {
        unreported.delete(runId);
        const agentId = e.run.agentId;
        logger.warn("run crashed: its agent stopped reporting it", { runId, agentId });
        crashAgentRuns(
          agentId,
          [runId],
          `agent \`${agentId}\` stopped reporting this run for ${config.heartbeatTimeoutMs} ms (it restarted?)`,
        ).catch((err: unknown) => logger.error("could not crash an unreported run", { runId, error: String(err) }));
      }
    }
  };

  const prune = (): void => {
    const s = store;
    if (s === null || state !== "running") return;
    s.prune({
      runDays: config.runRetentionDays,
      logDays: config.logRetentionDays,
      idempotencyDays: config.idempotencyRetentionDays,
    }).then(
      (r) => {
        if (r.runs + r.logs + r.idempotencyKeys > 0) logger.info("retention: old data deleted", { ...r });
      },
      (e: unknown) => logger.error("retention job failed", { error: String(e) }),
    );
  };

  const registerHandlers = (server: RpcServer<typeof API_VERBS>): void => {
    server
      .handle("listWorkflows", (req) => need(workflows).list(req.sinceVersion))
      .handle("getWorkflow", (req) => {
        const wf = need(workflows).get(req.workflowId);
        if (wf === undefined) throw workflowNotFound(req.workflowId);
        return { workflow: wf };
      })
      .handle("runWorkflow", async (req) => {
        const wf = need(workflows).get(req.workflowId);
        if (wf === undefined) throw workflowNotFound(req.workflowId);
        const requestParams = req.params ?? {};
        const resolved = resolveParams(wf.params, requestParams);
        if (!resolved.ok) {
          throw new CdktrError(
            "INVALID_PARAMS",
            `invalid params for workflow \`${wf.id}\`:\n${resolved.errors.map((e) => `  - ${e}`).join("\n")}`,
            { context: { workflowId: wf.id } },
          );
        }
        const { run, duplicate } = await need(store).createRun({
          runId: ids.next(),
          workflow: wf,
          params: resolved.params,
          requestParams,
          idempotencyKey: req.idempotencyKey ?? null,
          source: req.source ?? "api",
          scheduledFor: req.scheduledFor ?? null,
        });
        if (!duplicate) {
          // Per trigger, so debug (a JSON line on stdout costs about a quarter of a trigger's time
          // at full rate; the logger formats even filtered records, hence the level check); the
          // run's start and end are logged at info, a skip is logged at info.
          if (run.status === "SKIPPED" || debugLogging) {
            const created = { runId: run.runId, workflowId: run.workflowId, status: run.status, source: run.source };
            if (run.status === "SKIPPED") logger.info("run created", created);
            else logger.debug("run created", created);
          }
          publishRun(run);
          if (run.status === "QUEUED") need(dispatcher).enqueue(run, wf);
        }
        return { runId: run.runId, duplicate, skipped: run.status === "SKIPPED", status: run.status };
      })
      .handle("cancelRun", async ({ runId }) => {
        const d = need(dispatcher);
        const entry = d.get(runId);
        if (entry !== undefined && entry.run.status !== "RUNNING") d.remove(runId);
        const res = await need(store).cancelRun(runId);
        if (res.agentMustStop) d.requestCancel(runId);
        else if (res.cancelled) publishRun(res.run);
        if (res.cancelled)
          logger.info("run cancel", { runId, status: res.run.status, agentMustStop: res.agentMustStop });
        return { runId, status: res.run.status, cancelled: res.cancelled };
      })
      .handle("getRun", async ({ runId }) => {
        const r = await need(store).getRun(runId);
        if (r === null) throw runNotFound(runId);
        return r;
      })
      .handle("listRuns", (req) => need(store).listRuns(req))
      .handle("queryLogs", (req) => need(store).queryLogs(req))
      .handle("registerAgent", (req) => {
        agents.register(req);
        const cancel = reconcile(req.agentId, req.runningRuns);
        logger.info("agent registered", {
          agentId: req.agentId,
          host: req.host,
          capacity: req.capacity,
          labels: req.labels,
          running: req.runningRuns.length,
          cancel,
        });
        return {
          heartbeatIntervalMs: config.heartbeatIntervalMs,
          heartbeatTimeoutMs: config.heartbeatTimeoutMs,
          cancel,
        };
      })
      .handle("heartbeat", ({ agentId, runningRuns }) => {
        if (!agents.touch(agentId, runningRuns)) return { cancel: [], reregister: true };
        return { cancel: reconcile(agentId, runningRuns), reregister: false };
      })
      .handle("fetchWork", async (req, ctx) => {
        const agent = agents.active(req.agentId);
        if (agent === undefined) {
          throw new CdktrError(
            "AGENT_NOT_REGISTERED",
            `agent \`${req.agentId}\` is not registered (or was declared lost): call registerAgent, then fetch again`,
          );
        }
        agents.touch(req.agentId);
        let waitMs = req.waitMs;
        if (ctx.deadline !== null) waitMs = Math.max(0, Math.min(waitMs, ctx.deadline - Date.now() - 100));
        return need(dispatcher).fetchWork({ agentId: req.agentId, labels: agent.labels }, waitMs, ctx.signal);
      })
      .handle("confirmAssignment", async ({ agentId, runId, token }) => {
        agents.touch(agentId);
        const run = await need(dispatcher).confirm(agentId, runId, token);
        logger.info("run started", { runId, agentId, workflowId: run.workflowId });
        return { run };
      })
      .handle("runStatus", async (req) => {
        agents.touch(req.agentId);
        const res = await need(store).updateRunStatus(req);
        if (res.applied && isTerminalRunStatus(res.run.status)) {
          need(dispatcher).remove(req.runId);
          logger.info("run finished", { runId: req.runId, workflowId: res.run.workflowId, status: res.run.status });
          publishRun(res.run);
          publishTasks(res.run.workflowId, res.tasks);
        } else if (!res.applied) {
          logger.warn("late run report recorded only", {
            runId: req.runId,
            reported: req.status,
            status: res.run.status,
            agentId: req.agentId,
          });
        }
        return { applied: res.applied, status: res.run.status };
      })
      .handle("taskStatus", async (req) => {
        agents.touch(req.agentId);
        const res = await need(store).updateTaskStatus(req);
        if (res.applied && res.task !== null) publishTasks(res.run.workflowId, [res.task]);
        return { applied: res.applied };
      })
      .handle("listAgents", () => ({ agents: agents.list() }));
  };

  /** `stop()` was called while `start()` was still awaiting something. */
  const abortIfStopping = (): void => {
    if (state !== "starting") throw new CdktrError("SHUTTING_DOWN", "the principal was stopped while starting");
  };

  const start = async (): Promise<PrincipalEndpoints> => {
    if (state !== "new") throw new Error("principal already started");
    state = "starting";
    try {
      return await startInner();
    } catch (e) {
      // Stopped while starting, or a failed start: close whatever this start opened.
      await cleanup();
      throw e;
    }
  };

  const startInner = async (): Promise<PrincipalEndpoints> => {
    let s: Store;
    try {
      s = deps.store ?? SqliteStore.open({ path: config.dbPath, clock, logger: logger.child({ component: "store" }) });
    } catch (e) {
      throw new Error(
        `cannot open the database ${config.dbPath}: ${errorText(e)} (set CDKTR_DB_PATH to a writable file)`,
        { cause: e },
      );
    }
    store = s;
    publisher = new Publisher({ endpoint: endpointFor(config.host, config.publishPort), logger });
    const publishEndpoint = await bindOrExplain(
      () => publisher?.bind() ?? Promise.reject(new Error("closed")),
      "publish",
      config.host,
      config.publishPort,
      "CDKTR_LOGS_PUBLISHING_PORT",
    );

    const dir = new WorkflowDirectory({ dir: config.workflowDir, logger: logger.child({ component: "workflows" }) });
    workflows = new WorkflowRegistry({
      scan: deps.scanWorkflows ?? (() => dir.scan()),
      clock,
      logger: logger.child({ component: "workflows" }),
      onChange: (event) => publish(() => topics.workflows(), event),
      watchDir: config.workflowDir,
      refreshMs: config.workflowRefreshMs,
    });
    await workflows.start();
    abortIfStopping();

    dispatcher = new Dispatcher({
      store: s,
      clock,
      leaseMs: config.leaseMs,
      logger: logger.child({ component: "dispatch" }),
      onRunChanged: publishRun,
      onTasksChanged: publishTasks,
    });
    const active = await s.loadActiveRuns();
    abortIfStopping();
    dispatcher.load(active);
    for (const a of active) if (a.run.agentId !== null) agents.trackOrphan(a.run.agentId);

    api = new RpcServer({
      endpoint: endpointFor(config.host, config.apiPort),
      verbs: API_VERBS,
      maxMessageBytes: config.maxMessageBytes,
      logger: logger.child({ component: "api" }),
      serverId: principalId,
      version: PRINCIPAL_VERSION,
    });
    registerHandlers(api);
    logs = new RpcServer({
      endpoint: endpointFor(config.host, config.logsPort),
      verbs: LOG_VERBS,
      maxMessageBytes: config.maxMessageBytes,
      logger: logger.child({ component: "logs" }),
      serverId: principalId,
      version: PRINCIPAL_VERSION,
    });
    logs.handle("logBatch", async ({ agentId, lines }) => {
      agents.touch(agentId);
      const res = await need(store).insertLogs(lines);
      for (const l of res.inserted) publish(() => topics.logs(l.workflowId, l.runId, l.taskId), l);
      return { stored: res.stored, duplicates: res.duplicates };
    });
    const apiServer = api;
    const logServer = logs;
    const apiEndpoint = await bindOrExplain(
      () => apiServer.bind(),
      "API",
      config.host,
      config.apiPort,
      "CDKTR_PRINCIPAL_PORT",
    );
    const logsEndpoint = await bindOrExplain(
      () => logServer.bind(),
      "log-ingest",
      config.host,
      config.logsPort,
      "CDKTR_LOGS_LISTENING_PORT",
    );
    abortIfStopping();

    const checkMs = Math.max(
      20,
      Math.min(1000, Math.floor(config.heartbeatTimeoutMs / 4), Math.floor(config.leaseMs / 4)),
    );
    ticker = setInterval(tick, checkMs);
    state = "running";
    prune();
    pruner = setInterval(prune, 3_600_000);
    endpoints = { api: apiEndpoint, logs: logsEndpoint, publish: publishEndpoint };
    readyInfo = {
      workflowDir: config.workflowDir,
      dbPath: config.dbPath,
      workflows: workflows.size,
      queued: dispatcher.queuedCount(),
      activeRuns: active.length,
    };
    logger.debug("started", { endpoints, ...readyInfo });
    return endpoints;
  };

  const closeQuietly = async (what: string, close: (() => Promise<void>) | undefined): Promise<void> => {
    try {
      await close?.();
    } catch (e) {
      logger.warn(`error while closing ${what}`, { error: String(e) });
    }
  };

  /** Close whatever is open, in reverse order of start; each resource once. */
  const cleanup = async (): Promise<void> => {
    if (ticker !== null) clearInterval(ticker);
    if (pruner !== null) clearInterval(pruner);
    ticker = null;
    pruner = null;
    dispatcher?.close();
    const [a, l, w, st, p] = [api, logs, workflows, store, publisher];
    api = null;
    logs = null;
    publisher = null;
    await Promise.all([
      closeQuietly("api server", a ? () => a.close() : undefined),
      closeQuietly("log server", l ? () => l.close() : undefined),
    ]);
    await closeQuietly("workflow watcher", w ? () => w.stop() : undefined);
    await closeQuietly("store", st ? () => st.close() : undefined);
    await closeQuietly("publisher", p ? () => p.close() : undefined);
  };

  const stop = (): Promise<void> => {
    if (stopping !== null) return stopping;
    const wasStarting = state === "starting";
    state = "stopping";
    stopping = (async () => {
      await cleanup();
      // A start() still in flight closes what it opens after this point itself (see start).
      if (!wasStarting) state = "stopped";
      logger.info("stopped");
    })();
    return stopping;
  };

  return {
    start,
    stop,
    get endpoints() {
      return endpoints;
    },
    get store() {
      return store;
    },
    get readyInfo() {
      return readyInfo;
    },
  };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function bindOrExplain(
  bind: () => Promise<string>,
  what: string,
  host: string,
  port: number,
  variable: string,
): Promise<string> {
  try {
    return await bind();
  } catch (e) {
    throw new Error(`${what} socket (${variable}=${port}, host ${host}): ${errorText(e)}`, { cause: e });
  }
}

function workflowNotFound(id: string): CdktrError {
  return new CdktrError("WORKFLOW_NOT_FOUND", `no workflow \`${id}\`: \`cdktr workflows\` lists the ids`, {
    context: { workflowId: id },
  });
}

function runNotFound(id: string): CdktrError {
  return new CdktrError("RUN_NOT_FOUND", `no run \`${id}\`: \`cdktr runs\` lists recent runs`, {
    context: { runId: id },
  });
}

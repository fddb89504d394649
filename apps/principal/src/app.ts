/**
 * Wiring of the principal: store, keys (`auth/`), workflow registry, dispatcher, agent registry
 * and agent-loss policy, the API handlers (`api/`), and the three sockets (API ROUTER, log-ingest
 * ROUTER, PUB; CURVE with enrolled keys only unless `CDKTR_AUTH=off`).
 * No side effects at import; see {@link createPrincipal}.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import {
  CdktrError,
  HealthServer,
  Publisher,
  endpointFor,
  type API_VERBS,
  type LOG_VERBS,
  type RpcServer,
  errorMessage,
  noopLogger,
  packageVersion,
  systemClock,
  type Clock,
  type Logger,
  type PublisherAuth,
} from "@cdktr/protocol";
import { isWorkflowFile, WorkflowDirectory } from "@cdktr/workflow";
import type { ApiContext } from "./api/api-context.js";
import { createApiServer, createLogServer } from "./api/servers.js";
import { setUpAuth, type PrincipalAuth } from "./auth/principal-auth.js";
import type { PrincipalConfig } from "./config.js";
import { PrincipalStartError } from "./errors.js";
import { UlidGenerator } from "./ids.js";
import { advertised, type LeaderRole } from "./leader/leader-role.js";
import { LeaderTerms } from "./leader/leader-terms.js";
import { LogIngestThread } from "./logs/log-ingest-thread.js";
import { PrincipalMetrics } from "./metrics/principal-metrics.js";
import { createPrincipalEvents, type PrincipalEvents } from "./publish/principal-events.js";
import { bindNamingSetting, createLeaderRole, databaseOf, openStore } from "./start-up.js";
import { SqliteStore } from "./store/sqlite/sqlite-store.js";
import type { Store } from "./store/store.js";
import { every, type RepeatingTimer } from "./time/every.js";
import { WorkflowRegistry, type WorkflowScan } from "./workflows/workflow-registry.js";

/** Version reported by `ping`: the `version` of this package's `package.json`. */
export const PRINCIPAL_VERSION = packageVersion(import.meta.url);

/** Optional collaborators of {@link createPrincipal} (tests inject clocks and stores). */
export interface PrincipalDeps {
  /** @default noopLogger */
  logger?: Logger;
  /** Time of runs, leases, heartbeats, long-polls and periodic jobs. @default systemClock */
  clock?: Clock;
  /** @default a PostgresStore at `config.databaseUrl` when set, else a SqliteStore at `config.dbPath` */
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
  /** The SQLite file, or the PostgreSQL URL with its password hidden. */
  dbPath: string;
  /** Valid workflows loaded. */
  workflows: number;
  /** Runs waiting in the queue (0 on a standby). */
  queued: number;
  /** Runs not yet finished (queued, assigned or running) found in the store (by the leader). */
  activeRuns: number;
  /** `leader`, or `standby` (another principal on the same PostgreSQL database leads). */
  role: "leader" | "standby";
  /** The leader's API endpoint, when known. */
  leader: string | null;
  /** `CDKTR_AUTH`. */
  auth: "on" | "off";
  /** The keys directory (authentication on), else null. */
  keysDir: string | null;
  /** The principal's public key that clients pin (authentication on), else null. */
  publicKey: string | null;
  /** Base URL of `/metrics`, `/healthz` and `/readyz` (`CDKTR_METRICS_PORT`), or null when not served. */
  metrics: string | null;
}

/**
 * Build a principal from its configuration. Nothing happens until `start()`.
 * `start()` throws {@link PrincipalStartError} when it is called twice, the database cannot be
 * opened or a socket cannot be bound.
 */
export function createPrincipal(config: PrincipalConfig, deps: PrincipalDeps = {}): Principal {
  const logger = deps.logger ?? noopLogger;
  const clock = deps.clock ?? systemClock;
  const ids = new UlidGenerator(clock);
  const principalId = `principal@${hostname()}`;
  // Unique per process: a restarted principal never renews its predecessor's lease.
  const instanceId = `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  let store: Store | null = null;
  let endpoints: PrincipalEndpoints | null = null;
  let readyInfo: PrincipalReadyInfo | null = null;
  let publisher: Publisher | null = null;
  let api: RpcServer<typeof API_VERBS> | null = null;
  let logs: RpcServer<typeof LOG_VERBS> | LogIngestThread | null = null;
  let workflows: WorkflowRegistry | null = null;
  let role: LeaderRole | null = null;
  let terms: LeaderTerms | null = null;
  let timers: RepeatingTimer[] = [];
  let state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  let stopping: Promise<void> | null = null;
  let health: HealthServer | null = null;
  // Counted as the events pass by; gauges read the leader's term at each scrape.
  const metrics =
    config.metricsPort === null
      ? null
      : new PrincipalMetrics({
          term: () => (role?.isLeader() === true ? (terms?.peek() ?? null) : null),
          now: () => clock.now(),
          storageProblems: () => store?.problems() ?? [],
        });
  const published = createPrincipalEvents(() => publisher, logger);
  const events: PrincipalEvents =
    metrics === null
      ? published
      : {
          ...published,
          run: (run) => {
            metrics.run(run);
            published.run(run);
          },
          tasks: (workflowId, tasks) => {
            metrics.tasks(workflowId, tasks);
            published.tasks(workflowId, tasks);
          },
        };

  /** Run `fn` every `ms` on the clock while the principal is running. */
  const periodically = (ms: number, fn: () => void): void => {
    timers.push(every(clock, ms, () => state === "running" && fn()));
  };

  /** `stop()` was called while `start()` was still awaiting something. */
  const abortIfStopping = (): void => {
    if (state !== "starting") throw new CdktrError("SHUTTING_DOWN", "the principal was stopped while starting");
  };

  /** Publisher on `endpoint` (CURVE and proven subscriptions when `auth` is given). */
  const newPublisher = (endpoint: string, auth: PublisherAuth | undefined): Publisher =>
    new Publisher({
      endpoint,
      logger,
      ...(auth === undefined
        ? {}
        : {
            auth,
            onUntrustedUpstream: () => void rebindPublisher(auth),
            // The log-ingest thread publishes only what is wanted: it learns of new topics at once.
            onProven: () => {
              if (logs instanceof LogIngestThread) logs.provenChanged();
            },
          }),
    });

  /**
   * Close the publish socket and bind a new one on the same port: every subscriber reconnects,
   * and ZAP refuses the keys revoked meanwhile (ZeroMQ offers no way to drop one peer of a bound
   * socket); also when the subscription gate can no longer tell which connection a subscription
   * came from. Messages published in between are lost (delivery is best effort anyway).
   */
  let rebinding: Promise<void> = Promise.resolve();
  const rebindPublisher = (auth: PublisherAuth | undefined): Promise<void> => {
    rebinding = rebinding.then(async () => {
      const old = publisher;
      const endpoint = old?.endpoint;
      if (old === null || endpoint === null || endpoint === undefined || state !== "running") return;
      publisher = null;
      await old.close();
      for (let attempt = 1; state === "running"; attempt++) {
        const next = newPublisher(endpoint, auth);
        try {
          await next.bind();
          if (state === "running") publisher = next;
          else await next.close();
          logger.info("publish socket re-bound: subscribers reconnect and revoked keys are refused", { endpoint });
          return;
        } catch (e) {
          await next.close();
          if (attempt % 20 === 1)
            logger.error("cannot re-bind the publish socket; retrying", { endpoint, error: errorMessage(e) });
          await new Promise((r) => setTimeout(r, Math.min(1000, 25 * attempt)));
        }
      }
    });
    return rebinding;
  };

  const start = async (): Promise<PrincipalEndpoints> => {
    if (state !== "new") throw new PrincipalStartError("ALREADY_STARTED", "principal already started");
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
    const r = await createLeaderRole(config, deps.store, instanceId, () => workflows?.setHash ?? "", logger);
    role = r;
    // SQLite opens synchronously (nothing can stop this start in between); PostgreSQL connects.
    const opening = openStore(config, deps.store, clock, logger, r);
    const s = opening instanceof Promise ? await opening : opening;
    store = s;
    abortIfStopping();
    let auth: PrincipalAuth | null = null;
    if (config.auth) {
      auth = await setUpAuth(config.keysDir, s, logger.child({ component: "keys" }));
      abortIfStopping();
    } else {
      logger.warn(
        "authentication is OFF (CDKTR_AUTH=off): plaintext sockets, and anyone who can reach them may trigger, read, cancel and run work as an agent; allowed on a loopback address only",
        { host: config.host },
      );
    }
    const pub = newPublisher(endpointFor(config.host, config.publishPort), auth?.publisher);
    publisher = pub;
    const publishEndpoint = await bindNamingSetting(() => pub.bind(), config, "publish");

    const dir = new WorkflowDirectory({
      dir: config.workflowDir,
      logger: logger.child({ component: "workflows" }),
      ...(config.workflowIndexPath === null ? {} : { indexFile: config.workflowIndexPath }),
    });
    const wfs = new WorkflowRegistry({
      ...(deps.scanWorkflows === undefined
        ? { scan: () => dir.scan(), scanPaths: (paths) => dir.scan(paths), onStop: () => dir.flushIndex() }
        : { scan: deps.scanWorkflows }),
      clock,
      logger: logger.child({ component: "workflows" }),
      onChange: events.workflows,
      watchDir: config.workflowDir,
      isWorkflowFile,
      refreshMs: config.workflowRefreshMs,
    });
    workflows = wfs;
    await wfs.start();
    abortIfStopping();

    const t = new LeaderTerms({
      config,
      store: s,
      clock,
      ids,
      logger,
      events,
      isLeader: () => r.isLeader(),
      leader: () => r.leader(),
      ...(auth === null ? {} : { beforeTerm: auth.beginTerm }),
    });
    terms = t;
    const ctx: ApiContext = {
      config,
      logger,
      ids,
      store: s,
      workflows: wfs,
      get dispatcher() {
        return t.current().dispatcher;
      },
      get agents() {
        return t.current().agents;
      },
      get agentLoss() {
        return t.current().agentLoss;
      },
      role: r,
      requireLeader: () => void t.current(),
      termReady: () => t.peek() !== null && r.isLeader(),
      events,
      keys: auth?.keys ?? null,
      onKeyRevoked: () => rebindPublisher(auth?.publisher),
      metrics,
    };
    const id = { serverId: principalId, version: PRINCIPAL_VERSION };
    const apiServer = createApiServer(ctx, id, auth?.server);
    api = apiServer;
    // On SQLite, log ingest runs in its own thread with its own connection (the main thread keeps
    // serving triggers during a flood); on PostgreSQL the database does the heavy part elsewhere.
    const logServer =
      s instanceof SqliteStore
        ? new LogIngestThread({
            ctx,
            id,
            dbPath: s.path,
            logsPath: s.logsPath,
            turns: s.writeTurns,
            auth: auth === null ? null : { keyPair: auth.keyPair, keys: auth.keys },
            publisher: () => publisher,
            onProblems: (problems) => s.setLogWriterProblems(problems),
          })
        : createLogServer(ctx, id, auth?.server);
    logs = logServer;
    if (logServer instanceof LogIngestThread) metrics?.logBacklogFrom(() => logServer.backlog);
    const apiEndpoint = await bindNamingSetting(() => apiServer.bind(), config, "api");
    const logsEndpoint = await bindNamingSetting(
      () =>
        logServer instanceof LogIngestThread
          ? logServer.bind(endpointFor(config.host, config.logsPort))
          : logServer.bind(),
      config,
      "logs",
    );
    abortIfStopping();
    endpoints = { api: apiEndpoint, logs: logsEndpoint, publish: publishEndpoint };

    await r.start(advertised(endpoints, config.advertiseHost), {
      onElected: (epoch) => t.begin(epoch),
      onDeposed: () => t.end(),
    });
    abortIfStopping();
    if (logServer instanceof LogIngestThread) logServer.pushState();
    // A standby keeps its key ring in step with the leader's enrolments and revocations.
    if (auth !== null && r.fence !== undefined) {
      periodically(config.leaderTtlMs, () => {
        if (!r.isLeader()) auth.reload().catch(() => undefined);
      });
    }
    if (metrics !== null && config.metricsPort !== null) {
      health = await HealthServer.start({
        host: config.metricsHost,
        port: config.metricsPort,
        metrics: metrics.registry,
        notReady: () => notReady(s, r),
        logger,
      }).catch((e: unknown) => {
        throw new PrincipalStartError("SOCKET_UNAVAILABLE", errorMessage(e));
      });
      abortIfStopping();
    }
    state = "running";
    const term = t.peek();
    const leaderNow = r.leader();
    readyInfo = {
      workflowDir: config.workflowDir,
      dbPath: databaseOf(config),
      workflows: wfs.size,
      queued: term?.dispatcher.queuedCount() ?? 0,
      activeRuns: term?.activeRuns ?? 0,
      role: r.isLeader() ? "leader" : "standby",
      leader: leaderNow?.api ?? null,
      auth: config.auth ? "on" : "off",
      keysDir: config.auth ? config.keysDir : null,
      publicKey: auth?.keyPair.publicKey ?? null,
      metrics: health?.url ?? null,
    };
    logger.debug("started", { endpoints, ...readyInfo });
    return endpoints;
  };

  const closeQuietly = async (what: string, close: (() => Promise<void>) | undefined): Promise<void> => {
    try {
      await close?.();
    } catch (e) {
      logger.warn(`error while closing ${what}`, { error: errorMessage(e) });
    }
  };

  /** Why this principal cannot take work now (`/readyz`); empty when it can. */
  const notReady = (s: Store, r: LeaderRole): string[] => {
    const problems = [...s.problems()];
    if (state !== "running") problems.push(`the principal is ${state}`);
    else if (!r.isLeader()) problems.push("standby: another principal leads (requests are answered NOT_LEADER)");
    return problems;
  };

  /** Close whatever is open, in reverse order of start; each resource once. */
  const cleanup = async (): Promise<void> => {
    for (const t of timers) t.stop();
    timers = [];
    const h = health;
    health = null;
    await closeQuietly("metrics server", h ? () => h.close() : undefined);
    terms?.end();
    await rebinding;
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
    // After the store: its last writes are fenced by the lease, released only now.
    const ro = role;
    role = null;
    await closeQuietly("leadership", ro ? () => ro.stop() : undefined);
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

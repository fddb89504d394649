/**
 * Wiring of the scheduler process: a {@link CronScheduler} connected to the principal.
 * No side effects at import; `main.ts` owns the process.
 */
import { join } from "node:path";
import { CronScheduler, RunOutcomeListener, SCHEDULER_KEY_NAME, type Clock } from "@cdktr/events";
import { HealthServer, PrincipalClient, findClientKey, withPort, type ClientKey, type Logger } from "@cdktr/protocol";
import type { SchedulerConfig } from "./config.js";
import { SchedulerMetrics } from "./metrics.js";

/** What {@link createScheduler} needs besides the configuration. */
export interface SchedulerDeps {
  logger: Logger;
  /** @default the system clock */
  clock?: Clock;
  /**
   * The scheduler's key (API and publish connections); null for a principal with `CDKTR_AUTH=off`.
   * @default the file named by `CDKTR_KEY_FILE`, else `<CDKTR_KEYS_DIR or ~/.cdktr/keys>/local-scheduler.json`
   */
  key?: ClientKey | null;
}

/** A running (or startable) scheduler service. */
export interface SchedulerService {
  /** Start scheduling; resolves at once, even when the principal is not up yet. */
  start(): Promise<void>;
  /** Stop scheduling and close every socket; idempotent. */
  stop(): Promise<void>;
  /** The endpoints used, for the `ready` line. */
  readonly endpoints: { principal: string; publish: string };
  /** Base URL of `/metrics`, `/healthz` and `/readyz` once started (`CDKTR_METRICS_PORT`), else null. */
  readonly metrics: string | null;
  readonly scheduler: CronScheduler;
  /** Workflow chaining: the workflows' `triggers: [{after, status}]`. */
  readonly chaining: RunOutcomeListener;
}

/** Build the scheduler service from its configuration. */
export function createScheduler(config: SchedulerConfig, deps: SchedulerDeps): SchedulerService {
  const key = deps.key !== undefined ? deps.key : findClientKey(SCHEDULER_KEY_NAME, process.env);
  const client = new PrincipalClient({
    endpoints: config.principalEndpoints,
    publishPort: config.publishPort,
    timeoutMs: config.triggerTimeoutMs,
    logger: deps.logger,
    key,
  });
  // The leader's, once known (the scheduler follows its moves): the first principal's until then.
  const publishEndpoint = client.leaderWatch.best?.publish ?? withPort(client.endpoint, config.publishPort);
  const scheduler = new CronScheduler({
    principal: client,
    key,
    logger: deps.logger,
    refreshIntervalMs: config.refreshIntervalMs,
    missGraceMs: config.missGraceMs,
    triggerTimeoutMs: config.triggerTimeoutMs,
    subscribe: { endpoint: publishEndpoint },
    ...(deps.clock === undefined ? {} : { clock: deps.clock }),
  });
  const chaining = new RunOutcomeListener({
    principal: client,
    key,
    logger: deps.logger.child({ component: "chaining" }),
    workflowTriggers: true,
    stateFile: join(config.stateDir, "chaining.json"),
    sweepIntervalMs: config.chainSweepMs,
    lateMarginMs: config.chainMarginMs,
    triggerTimeoutMs: config.triggerTimeoutMs,
    subscribe: { endpoint: publishEndpoint },
  });
  let stopped = false;
  const metrics = config.metricsPort === null ? null : new SchedulerMetrics(scheduler);
  let health: HealthServer | null = null;
  return {
    endpoints: { principal: client.endpoints.join(","), publish: publishEndpoint },
    scheduler,
    chaining,
    get metrics() {
      return health?.url ?? null;
    },
    async start() {
      if (metrics !== null && config.metricsPort !== null) {
        health = await HealthServer.start({
          host: config.metricsHost,
          port: config.metricsPort,
          metrics: metrics.registry,
          notReady: () => {
            if (stopped) return ["the scheduler is stopping"];
            return scheduler.stats.version === null
              ? ["the workflow definitions are not loaded from the principal yet (is it reachable?)"]
              : [];
          },
          logger: deps.logger,
        });
      }
      await scheduler.start();
      await chaining.start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await chaining.stop();
      await scheduler.stop();
      client.close();
      await health?.close();
    },
  };
}

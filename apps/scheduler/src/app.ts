/**
 * Wiring of the scheduler process: a {@link CronScheduler} connected to the principal.
 * No side effects at import; `main.ts` owns the process.
 */
import { CronScheduler, type Clock } from "@cdktr/events";
import { PrincipalClient, type Logger } from "@cdktr/protocol";
import type { SchedulerConfig } from "./config.js";

/** What {@link createScheduler} needs besides the configuration. */
export interface SchedulerDeps {
  logger: Logger;
  /** @default the system clock */
  clock?: Clock;
}

/** A running (or startable) scheduler service. */
export interface SchedulerService {
  /** Start scheduling; resolves at once, even when the principal is not up yet. */
  start(): Promise<void>;
  /** Stop scheduling and close every socket; idempotent. */
  stop(): Promise<void>;
  /** The endpoints used, for the `ready` line. */
  readonly endpoints: { principal: string; publish: string };
  readonly scheduler: CronScheduler;
}

/** Build the scheduler service from its configuration. */
export function createScheduler(config: SchedulerConfig, deps: SchedulerDeps): SchedulerService {
  const principalEndpoint = `tcp://${config.principalHost}:${config.principalPort}`;
  const publishEndpoint = `tcp://${config.principalHost}:${config.publishPort}`;
  const client = new PrincipalClient({
    endpoint: principalEndpoint,
    timeoutMs: config.triggerTimeoutMs,
    logger: deps.logger,
  });
  const scheduler = new CronScheduler({
    principal: client,
    logger: deps.logger,
    refreshIntervalMs: config.refreshIntervalMs,
    missGraceMs: config.missGraceMs,
    triggerTimeoutMs: config.triggerTimeoutMs,
    subscribe: { endpoint: publishEndpoint },
    ...(deps.clock === undefined ? {} : { clock: deps.clock }),
  });
  let stopped = false;
  return {
    endpoints: { principal: principalEndpoint, publish: publishEndpoint },
    scheduler,
    async start() {
      await scheduler.start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await scheduler.stop();
      client.close();
    },
  };
}

/**
 * The process shell every cdktr service shares (`main.ts`): configuration, logger, signals, exit
 * codes and the `ready` line. Apps keep their wiring in `createX(config, deps)`; this is the only
 * code that touches `process` on their behalf.
 */
import { createLogger, type Logger } from "../logging/logger.js";
import { loadDotEnv } from "../config/env.js";
import { errorMessage } from "../errors.js";

/** What {@link runService} needs from an app: `createX(...)` returns one. */
export interface ServiceLifecycle<Started> {
  /** Start; resolves when the service is ready (with whatever the app reports, e.g. endpoints). */
  start(): Promise<Started>;
  /** Stop gracefully. Called once per process by {@link runService}; should be bounded in time. */
  stop(): Promise<void>;
}

/** Options of {@link runService}. `C` is the config type, `S` the app, `Started` what `start()` resolves to. */
export interface RunServiceOptions<C, S extends ServiceLifecycle<Started>, Started> {
  /**
   * Short service name (`"principal"`): the logger's `component`, and the prefix of lines written
   * to stderr (`cdktr principal: invalid configuration: ...`).
   */
  name: string;
  /**
   * Parse the configuration from the environment (after `.env` was merged into it).
   * Throw a `ConfigError` (or any error with `code: "CONFIG_INVALID"`) for bad settings: its
   * message goes to stderr and the process exits 2.
   */
  loadConfig: (env: Record<string, string | undefined>) => C;
  /** Build the app (no side effects until `start()`). */
  create: (config: C, deps: { logger: Logger }) => S;
  /** The log level from the config. @default the `CDKTR_LOG_LEVEL` of the environment, else "info" */
  logLevel?: (config: C) => string | undefined;
  /**
   * Fields of the structured `ready` line logged once `start()` resolves (endpoints, ids...).
   * `pid` is added.
   * @default `{ endpoints: started }` when `start()` resolves to an object, else `{}`
   */
  ready?: (started: Started, service: S, config: C) => Record<string, unknown>;
  /**
   * Upper bound of a graceful stop, in ms: past it the process logs an error and exits 1.
   * @default no bound (the app's `stop()` must bound itself)
   */
  graceMs?: (config: C) => number;
  /**
   * Called on the second SIGINT/SIGTERM, before the process exits 130: kill what must not outlive
   * the process (the agent kills its task process groups). Must be synchronous.
   */
  onForce?: (service: S, logger: Logger) => void;
  /**
   * Exit code for an error thrown by `start()`. @default 1 (return `undefined` for 1 as well)
   */
  startExitCode?: (error: unknown) => number | undefined;
  /**
   * `.env` file merged into the environment first (never overriding set variables); `false` to
   * skip it (when `loadConfig` reads it itself). @default ".env" in the working directory
   */
  dotEnv?: string | false;
  /** Environment to read and to merge `.env` into. @default process.env */
  env?: Record<string, string | undefined>;
  /**
   * On an unhandled promise rejection: `"log"` logs it and keeps running, `"exit"` logs it and
   * exits 1. @default "log"
   */
  onUnhandledRejection?: "log" | "exit";
}

/** Exit codes used by {@link runService}. */
export const SERVICE_EXIT = {
  /** Graceful stop after the first signal. */
  ok: 0,
  /** Start failure, failed stop, or grace period exceeded. */
  failed: 1,
  /** Invalid configuration (`.env` or `CDKTR_*`). */
  config: 2,
  /** Second signal: forced exit (128 + SIGINT, the shell's convention). */
  forced: 130,
} as const;

function isConfigError(e: unknown): e is Error {
  return e instanceof Error && (e as { code?: unknown }).code === "CONFIG_INVALID";
}

/**
 * Run a service as the current process: merge `.env` into the environment, `loadConfig` (a
 * `ConfigError` prints its lines to stderr and exits 2), `createLogger`, `create` the app, install
 * SIGINT/SIGTERM handlers (first: graceful `stop()` then exit 0, or 1 if it fails or outlasts
 * `graceMs`; second: `onForce` then exit 130), `start()` (failure: log, `stop()`, exit 1 or
 * `startExitCode`), and log one structured `ready` line.
 *
 * Resolves once the service is ready (the process then lives on its open handles) or after
 * `process.exit` was requested. Call it from `main.ts` only, never from tests of `createX`.
 *
 * @example
 * await runService({ name: "principal", loadConfig: (env) => loadConfig(env), create: createPrincipal,
 *   ready: (endpoints) => ({ endpoints }) });
 */
export async function runService<C, S extends ServiceLifecycle<Started>, Started>(
  opts: RunServiceOptions<C, S, Started>,
): Promise<void> {
  const prefix = `cdktr ${opts.name}:`;
  const env = opts.env ?? process.env;
  let config: C;
  try {
    if (opts.dotEnv !== false) loadDotEnv(opts.dotEnv ?? ".env", env);
    config = opts.loadConfig(env);
  } catch (e) {
    if (isConfigError(e)) {
      process.stderr.write(`${prefix} ${e.message}\n`);
      process.exit(SERVICE_EXIT.config);
    }
    throw e;
  }
  // A closed stdout (log collector gone, `| head`) must not take the service down with it.
  process.stdout.on("error", () => undefined);
  const format = env.CDKTR_LOG_FORMAT?.trim().toLowerCase();
  const logger = createLogger({
    component: opts.name,
    level: opts.logLevel?.(config) ?? env.CDKTR_LOG_LEVEL,
    // The app's own schema refused any other value already (exit 2).
    ...(format === "json" || format === "pretty" ? { format } : {}),
  });
  let service: S;
  try {
    service = opts.create(config, { logger });
  } catch (e) {
    logger.error(`${opts.name} could not be created`, { error: errorMessage(e) });
    process.stderr.write(`${prefix} failed to start: ${errorMessage(e)}\n`);
    process.exit(opts.startExitCode?.(e) ?? SERVICE_EXIT.failed);
  }

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn("second signal: exiting now", { signal });
      try {
        opts.onForce?.(service, logger);
      } catch (e) {
        logger.error("forced stop failed", { error: errorMessage(e) });
      }
      process.exit(SERVICE_EXIT.forced);
    }
    const graceMs = opts.graceMs?.(config);
    logger.info("stopping (send the signal again to force)", { signal, ...(graceMs !== undefined ? { graceMs } : {}) });
    const timer =
      graceMs === undefined
        ? null
        : setTimeout(() => {
            logger.error("shutdown grace period over: exiting", { graceMs });
            process.exit(SERVICE_EXIT.failed);
          }, graceMs);
    timer?.unref();
    service.stop().then(
      () => {
        if (timer !== null) clearTimeout(timer);
        logger.info("exiting", { code: SERVICE_EXIT.ok });
        process.exit(SERVICE_EXIT.ok);
      },
      (e: unknown) => {
        logger.error("stop failed", { error: errorMessage(e) });
        process.exit(SERVICE_EXIT.failed);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const policy = opts.onUnhandledRejection ?? "log";
  process.on("unhandledRejection", (reason: unknown) => {
    const error = reason instanceof Error ? (reason.stack ?? reason.message) : errorMessage(reason);
    if (policy === "exit") {
      logger.error("unhandled promise rejection: exiting", { error });
      process.exit(SERVICE_EXIT.failed);
    }
    logger.error(`unhandled promise rejection (the ${opts.name} keeps running)`, { error });
  });

  let started: Started;
  try {
    started = await service.start();
  } catch (e) {
    // A signal during start makes start() reject; the signal handler owns the exit then.
    if (signals > 0) return;
    const code = opts.startExitCode?.(e) ?? SERVICE_EXIT.failed;
    logger.error(`${opts.name} failed to start`, { error: errorMessage(e) });
    process.stderr.write(`${prefix} failed to start: ${errorMessage(e)}\n`);
    await service.stop().catch(() => undefined);
    process.exit(code);
  }
  if (signals > 0) return;
  const fields =
    opts.ready !== undefined
      ? opts.ready(started, service, config)
      : typeof started === "object" && started !== null
        ? { endpoints: started }
        : {};
  logger.info("ready", { ...fields, pid: process.pid });
}

#!/usr/bin/env node
/**
 * The scheduler process: `node dist/main.js`. The only file that touches `process`.
 * Exit codes: 0 after a graceful stop, 1 on a forced stop or a startup failure, 2 on bad config.
 */
import { ConfigError, createLogger, loadDotEnv } from "@cdktr/protocol";
import { createScheduler } from "./app.js";
import { loadConfig } from "./config.js";

loadDotEnv();
let config;
try {
  config = loadConfig(process.env);
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(`cdktr scheduler: invalid configuration:\n  ${e.problems.join("\n  ")}\n`);
    process.exit(2);
  }
  throw e;
}
const logger = createLogger({ component: "scheduler", level: config.logLevel });
const service = createScheduler(config, { logger });

let signals = 0;
function onSignal(signal: NodeJS.Signals): void {
  signals++;
  if (signals > 1) {
    logger.warn("second signal: exiting now", { signal });
    process.exit(1);
  }
  logger.info("stopping", { signal });
  service.stop().then(
    () => {
      logger.info("stopped");
      process.exit(0);
    },
    (e: unknown) => {
      logger.error("stop failed", { error: e instanceof Error ? e.message : String(e) });
      process.exit(1);
    },
  );
}
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

try {
  await service.start();
  logger.info("ready", {
    endpoints: service.endpoints,
    refreshIntervalMs: config.refreshIntervalMs,
    missGraceMs: config.missGraceMs,
    pid: process.pid,
  });
} catch (e) {
  logger.error("failed to start", { error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
}

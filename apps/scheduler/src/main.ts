#!/usr/bin/env node
/**
 * The scheduler process, through `runService` from `@cdktr/protocol`: configuration from the
 * environment and `.env` (exit 2 when invalid), one `ready` line, first SIGINT/SIGTERM graceful
 * (exit 0), second forced (exit 130), exit 1 when start-up fails.
 */
import { runService } from "@cdktr/protocol";
import { createScheduler } from "./app.js";
import { loadConfig } from "./config.js";

await runService({
  name: "scheduler",
  loadConfig: (env) => loadConfig(env),
  create: (config, { logger }) => createScheduler(config, { logger }),
  logLevel: (config) => config.logLevel,
  ready: (_started, service, config) => ({
    endpoints: service.endpoints,
    refreshIntervalMs: config.refreshIntervalMs,
    missGraceMs: config.missGraceMs,
    metrics: service.metrics,
  }),
});

#!/usr/bin/env node
/**
 * The dashboard process, through `runService` from `@cdktr/protocol`: configuration from the
 * environment and `.env` (exit 2 when invalid), one `ready` line with the URL, first
 * SIGINT/SIGTERM graceful (exit 0), second forced (exit 130), exit 1 when start-up fails.
 */
import { runService } from "@cdktr/protocol";
import { createDashboard } from "./app.js";
import { loadConfig } from "./config.js";

await runService({
  name: "dashboard",
  loadConfig: (env) => loadConfig(env),
  create: (config, { logger }) => createDashboard(config, { logger }),
  logLevel: (config) => config.logLevel,
  ready: (started: { url: string }, service, config) => ({
    app: "dashboard",
    url: started.url,
    metrics: service.metrics,
    tokensFile: config.tokensFile,
    signInRequired: config.requireSignin,
  }),
});

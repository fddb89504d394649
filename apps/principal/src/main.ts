#!/usr/bin/env node
/**
 * Process entry point of the principal, through `runService` from `@cdktr/protocol`:
 * configuration from the environment and `.env` in the working directory (exit 2 with one line
 * per problem when invalid), one structured `ready` line with the endpoints, signals (first
 * SIGINT/SIGTERM: graceful stop within CDKTR_SHUTDOWN_GRACE_MS, exit 0, or 1 past it; second:
 * exit 130 at once), exit 1 when start-up fails.
 */
import { runService } from "@cdktr/protocol";
import { createPrincipal } from "./app.js";
import { loadConfig } from "./config.js";

await runService({
  name: "principal",
  // loadConfig reads `.env` itself (without overriding the environment).
  dotEnv: false,
  loadConfig: (env) => loadConfig(env, { cwd: process.cwd() }),
  create: (config, { logger }) => createPrincipal(config, { logger }),
  logLevel: (config) => config.logLevel,
  graceMs: (config) => config.shutdownGraceMs,
  ready: (endpoints, principal) => ({ endpoints, ...principal.readyInfo }),
});

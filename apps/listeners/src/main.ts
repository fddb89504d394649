#!/usr/bin/env node
/**
 * Entry point of `@cdktr/listeners`, through `runService` from `@cdktr/protocol`: the listeners
 * config file named by `CDKTR_LISTENERS_CONFIG` (exit 2 with file, line and field when invalid),
 * one `ready` line listing each listener, first SIGINT/SIGTERM graceful (exit 0), second forced
 * (exit 130), exit 1 when a listener fails to start.
 */
import { runService } from "@cdktr/protocol";
import { createListeners } from "./app.js";
import { loadConfig } from "./config.js";

await runService({
  name: "listeners",
  loadConfig: (env) => loadConfig(env),
  create: (config, { logger }) => createListeners(config, { logger }),
  ready: (_started, app, config) => ({
    config: config.file,
    principal: `tcp://${config.principal.host}:${config.principal.port}`,
    stateDir: config.stateDir,
    listeners: app.listeners.map((l) => ({ name: l.name, type: l.type, ...(l.url !== null ? { url: l.url } : {}) })),
    metrics: app.metrics,
  }),
});

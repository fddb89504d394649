#!/usr/bin/env node
/**
 * Process entry point of the agent, through `runService` from `@cdktr/protocol`: configuration
 * from the environment and `.env` (exit 2 with one line per problem when invalid), one
 * structured `ready` line, signals (first SIGINT/SIGTERM: graceful stop, exit 0; second: kill
 * every task process group, exit 130). A data-directory error (locked by a live agent) exits 2.
 */
import { runService } from "@cdktr/protocol";
import { createAgent, type AgentReadyInfo } from "./app.js";
import { loadConfig } from "./config.js";
import { AgentStartError } from "./errors.js";

// runService merges `.env` into process.env without overriding what is set: the names it adds
// are those missing now. Tasks get those only through an allow-list.
const setBeforeDotEnv = new Set(Object.keys(process.env));

await runService({
  name: "agent",
  loadConfig: (env) => loadConfig(env),
  create: (config, { logger }) =>
    createAgent(config, {
      logger,
      env: process.env,
      dotEnvNames: Object.keys(process.env).filter((name) => !setBeforeDotEnv.has(name)),
    }),
  logLevel: (config) => config.logLevel,
  ready: (info: AgentReadyInfo) => ({
    agentId: info.agentId,
    principal: info.principal,
    endpoints: { principal: info.principal, logs: info.logs },
    dataDir: info.dataDir,
    registered: info.registered,
    reapedProcessGroups: info.reapedProcessGroups,
    containment: info.containment,
    spawner: info.spawner,
    reapedProcesses: info.reapedProcesses,
    key: info.key,
    metrics: info.metrics,
  }),
  onForce: (agent, logger) => {
    logger.warn("second signal: killing every task process and exiting now");
    agent.kill();
  },
  startExitCode: (e) => (e instanceof AgentStartError ? 2 : undefined),
});

#!/usr/bin/env node
/**
 * Process entry point of the agent: reads the environment (and `.env`), starts the agent, logs
 * one `ready` line, and handles signals (first SIGINT/SIGTERM: graceful stop and exit 0;
 * second: kill every task process group and exit 130). Configuration and data-directory
 * errors exit with code 2.
 */
import { ConfigError, createLogger, loadDotEnv } from "@cdktr/protocol";
import { createAgent } from "./app.js";
import { loadConfig, type AgentConfig } from "./config.js";
import { AgentStartError } from "./errors.js";

async function main(): Promise<void> {
  let config: AgentConfig;
  try {
    loadDotEnv();
    config = loadConfig(process.env);
  } catch (e: unknown) {
    if (e instanceof ConfigError || (e as { code?: unknown }).code === "CONFIG_INVALID") {
      process.stderr.write(`cdktr agent: ${(e as Error).message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const logger = createLogger({ component: "agent", level: config.logLevel });
  const agent = createAgent(config, { logger, env: process.env });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      logger.info("signal received: stopping gracefully (send it again to force)", { signal });
      agent.stop().then(
        () => process.exit(0),
        (e: unknown) => {
          logger.error("shutdown failed", { error: String(e) });
          process.exit(1);
        },
      );
    } else {
      logger.warn("second signal: killing every task process and exiting now", { signal });
      agent.kill();
      process.exit(130);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("unhandledRejection", (e) => {
    logger.error("unhandled promise rejection (the agent keeps running)", { error: String(e) });
  });

  try {
    const info = await agent.start();
    logger.info("ready", {
      agentId: info.agentId,
      principal: info.principal,
      endpoints: { principal: info.principal, logs: info.logs },
      dataDir: info.dataDir,
      registered: info.registered,
      reapedProcessGroups: info.reapedProcessGroups,
      pid: process.pid,
    });
  } catch (e: unknown) {
    if (e instanceof AgentStartError) {
      logger.error(e.message, { code: e.code });
      process.stderr.write(`cdktr agent: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`cdktr agent: fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

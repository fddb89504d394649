#!/usr/bin/env node
/**
 * Process entry point of the principal: configuration from the environment (and `.env`),
 * signals (first SIGINT/SIGTERM graceful within CDKTR_SHUTDOWN_GRACE_MS, second exits at once),
 * exit codes (0 clean stop, 1 failure, 2 invalid configuration).
 */
import { ConfigError, createLogger } from "@cdktr/protocol";
import { createPrincipal } from "./app.js";
import { loadConfig, type PrincipalConfig } from "./config.js";

async function main(): Promise<void> {
  let config: PrincipalConfig;
  try {
    config = loadConfig(process.env, { cwd: process.cwd() });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`cdktr principal: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  // A closed stdout (log collector gone, `| head`) must not take the principal down with it.
  process.stdout.on("error", () => undefined);
  const logger = createLogger({ component: "principal", level: config.logLevel });
  const principal = createPrincipal(config, { logger });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn("second signal: exiting now", { signal });
      process.exit(1);
    }
    logger.info("shutting down", { signal, graceMs: config.shutdownGraceMs });
    const timer = setTimeout(() => {
      logger.error("shutdown grace period over: exiting", { graceMs: config.shutdownGraceMs });
      process.exit(1);
    }, config.shutdownGraceMs);
    timer.unref();
    principal.stop().then(
      () => {
        clearTimeout(timer);
        process.exit(0);
      },
      (err: unknown) => {
        logger.error("shutdown failed", { error: err instanceof Error ? err.message : String(err) });
        process.exit(1);
      },
    );
  };
  process.on("unhandledRejection", (reason: unknown) => {
    logger.error("unhandled rejection (the principal keeps running)", { error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
  });
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await principal.start();
  } catch (e) {
    logger.error("principal failed to start", { error: e instanceof Error ? e.message : String(e) });
    await principal.stop().catch(() => undefined);
    process.exit(1);
  }
}

void main();

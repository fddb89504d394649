/**
 * Entry point of `@cdktr/listeners`: the only file that touches `process`.
 * Exit codes: 0 after a graceful stop, 1 on a start-up failure or a forced stop, 2 on invalid
 * configuration.
 */
import { ConfigError, createLogger, loadDotEnv } from "@cdktr/protocol";
import { createListeners } from "./app.js";
import { loadConfig, type ListenersConfig } from "./config.js";

loadDotEnv();
let config: ListenersConfig;
try {
  config = loadConfig(process.env);
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(`cdktr listeners: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}

const logger = createLogger({ component: "listeners" });
const app = createListeners(config, { logger });
let stopping = false;
const onSignal = (signal: NodeJS.Signals): void => {
  if (stopping) {
    logger.warn("second signal: exiting now", { signal });
    process.exit(1);
  }
  stopping = true;
  logger.info("stopping", { signal });
  app.stop().then(
    () => {
      logger.info("stopped");
      process.exit(0);
    },
    (e: unknown) => {
      logger.error("stop failed", { error: e instanceof Error ? e.message : String(e) });
      process.exit(1);
    },
  );
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

try {
  await app.start();
} catch (e) {
  logger.error("start failed", { error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
}
logger.info("ready", {
  config: config.file,
  principal: `tcp://${config.principal.host}:${config.principal.port}`,
  listeners: app.listeners.map((l) => ({ name: l.name, type: l.type, ...(l.url !== null ? { url: l.url } : {}) })),
});

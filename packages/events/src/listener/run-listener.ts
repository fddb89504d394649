import type { Logger } from "@cdktr/protocol";
import type { EventListener, EventListenerEvents } from "./event-listener.js";

/** Options of {@link runListener}. */
export interface RunListenerOptions {
  /** Where lifecycle messages go. @default nothing is logged */
  logger?: Logger;
  /** Signals that stop the listener. @default ["SIGINT", "SIGTERM"] */
  signals?: NodeJS.Signals[];
  /** Called instead of `process.exit` (tests). @default process.exit */
  exit?: (code: number) => void;
}

/**
 * Run a listener as the main thing of a process: start it, and on SIGINT/SIGTERM stop it
 * gracefully and exit 0; a second signal exits at once with code 130 (as every cdktr service). When the listening loop
 * ends by itself the process exits 0, or 1 if it failed. Resolves once the listener is started.
 *
 * @example
 * await runListener(new WebhookListener({ port: 8080 }), { logger: createLogger({ component: "webhook" }) });
 */
export async function runListener<E extends EventListenerEvents>(
  listener: EventListener<E>,
  options: RunListenerOptions = {},
): Promise<void> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const logger = options.logger;
  const signals = options.signals ?? ["SIGINT", "SIGTERM"];
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger?.warn("second signal: exiting now", { signal });
      exit(130);
      return;
    }
    stopping = true;
    logger?.info("stopping", { signal });
    void listener.stop().then(
      () => {
        logger?.info("stopped");
        exit(0);
      },
      () => exit(1),
    );
  };
  for (const s of signals) process.on(s, onSignal);
  await listener.start();
  void listener.done().then((error) => {
    if (stopping) return;
    if (error !== null) logger?.error("listener ended with an error", { error: error.message });
    else logger?.info("listener ended");
    exit(error === null ? 0 : 1);
  });
}

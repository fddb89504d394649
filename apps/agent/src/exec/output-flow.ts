/**
 * Backpressure from several places at once: a task's output readers pause while any of them asks
 * to (the log shipper's memory caps, the status outbox that cannot be written).
 */
import type { OutputFlowControl } from "./task-process.js";

/**
 * One flow control made of several: pause while any of `flows` says so; `whenWritable()`
 * resolves once each of those that said so resolved its own. Reading then resumes, and the next
 * chunk read checks them all again (a flow that paused meanwhile pauses the reader again).
 */
export function allFlows(...flows: readonly OutputFlowControl[]): OutputFlowControl {
  return {
    shouldPause: () => flows.some((f) => f.shouldPause()),
    whenWritable: async () => {
      for (const f of flows) if (f.shouldPause()) await f.whenWritable();
    },
  };
}

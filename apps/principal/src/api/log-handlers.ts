import type { API_VERBS } from "@cdktr/protocol";
import { runNotFound } from "../errors.js";
import { mayReadRun, seesAllRuns } from "../auth/roles.js";
import { permissionDenied } from "../errors.js";
import type { HandlerRegistry } from "../leader/leader-gate.js";
import type { ApiContext } from "./api-context.js";

/**
 * Register `queryLogs` on the API server (paged, answered by the store's read workers). A key that
 * reads only its own runs (trigger, scheduler) queries one run at a time, and only a run it triggered.
 */
export function registerLogQueryHandlers(server: HandlerRegistry<typeof API_VERBS>, ctx: ApiContext): void {
  server.handle("queryLogs", async (req, rpc) => {
    const identity = rpc.identity;
    if (identity !== null && !seesAllRuns(identity, "queryLogs")) {
      if (req.runId === undefined) {
        throw permissionDenied(
          `key \`${identity.name}\` (role ${identity.role}) reads the logs of the runs it triggered, one run at a time: pass runId`,
          { key: identity.name },
        );
      }
      const r = await ctx.store.getRun(req.runId);
      if (r === null || !mayReadRun(identity, "queryLogs", r.run.triggeredBy)) throw runNotFound(req.runId, identity);
    }
    return ctx.store.queryLogs(req);
  });
}

import type { API_VERBS, LOG_VERBS, RpcServer } from "@cdktr/protocol";
import { runNotFound } from "../errors.js";
import { mayReadRun, seesAllRuns } from "../auth/roles.js";
import { permissionDenied } from "../errors.js";
import type { ApiContext } from "./api-context.js";

/**
 * Register `queryLogs` on the API server (paged, answered by the store's read workers). A key that
 * reads only its own runs (trigger, scheduler) queries one run at a time, and only a run it triggered.
 */
export function registerLogQueryHandlers(server: RpcServer<typeof API_VERBS>, ctx: ApiContext): void {
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

/**
 * Register `logBatch` on the log-ingest server: store the lines idempotently (acknowledged after
 * the commit), publish the new ones, and count the batch as a sign of life of its agent. With
 * authentication, a batch is stored only when the caller's key holds the lease of every run in it
 * and sent each run's token (`tokens`).
 */
export function registerLogIngestHandlers(server: RpcServer<typeof LOG_VERBS>, ctx: ApiContext): void {
  server.handle("logBatch", async ({ agentId, lines, tokens }, rpc) => {
    const identity = rpc.identity;
    ctx.agents.checkKey(agentId, identity?.name ?? null);
    ctx.agents.touch(agentId);
    const res = await ctx.store.insertLogs(
      lines,
      identity === null ? null : { keyName: identity.name, tokens: tokens ?? {} },
    );
    for (const l of res.inserted) ctx.events.log(l);
    return { stored: res.stored, duplicates: res.duplicates };
  });
}

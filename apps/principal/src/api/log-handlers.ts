import type { API_VERBS, LOG_VERBS, RpcServer } from "@cdktr/protocol";
import type { ApiContext } from "./api-context.js";

/** Register `queryLogs` on the API server (paged, answered by the store's read workers). */
export function registerLogQueryHandlers(server: RpcServer<typeof API_VERBS>, ctx: ApiContext): void {
  server.handle("queryLogs", (req) => ctx.store.queryLogs(req));
}

/**
 * Register `logBatch` on the log-ingest server: store the lines idempotently (acknowledged after
 * the commit), publish the new ones, and count the batch as a sign of life of its agent.
 */
export function registerLogIngestHandlers(server: RpcServer<typeof LOG_VERBS>, ctx: ApiContext): void {
  server.handle("logBatch", async ({ agentId, lines }) => {
    ctx.agents.touch(agentId);
    const res = await ctx.store.insertLogs(lines);
    for (const l of res.inserted) ctx.events.log(l);
    return { stored: res.stored, duplicates: res.duplicates };
  });
}

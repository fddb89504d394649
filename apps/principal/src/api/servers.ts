import { API_VERBS, LOG_VERBS, RpcServer, endpointFor, type ServerAuth, type ServerHealth } from "@cdktr/protocol";
import { registerAgentHandlers } from "./agent-handlers.js";
import { registerKeyHandlers } from "./key-handlers.js";
import type { ApiContext } from "./api-context.js";
import { registerLogIngestHandlers, registerLogQueryHandlers } from "./log-handlers.js";
import { registerRunHandlers } from "./run-handlers.js";
import { registerWorkflowHandlers } from "./workflow-handlers.js";

/** What `ping` answers with on both servers. */
export interface ServerIdentity {
  serverId: string;
  version: string;
}

/**
 * The health `ping` reports on both servers: `degraded` with the store's problems (e.g. `"disk
 * full"`) while it has any.
 */
export function principalHealth(ctx: ApiContext): ServerHealth {
  const problems = ctx.store.problems();
  return { health: problems.length === 0 ? "ok" : "degraded", problems };
}

/**
 * The API ROUTER (every verb of `API_VERBS`) with its handlers registered; not bound yet. With
 * `auth`: CURVE, enrolled keys only, `hello`, and the role matrix per verb.
 */
export function createApiServer(
  ctx: ApiContext,
  id: ServerIdentity,
  auth: ServerAuth | undefined,
): RpcServer<typeof API_VERBS> {
  const server = new RpcServer({
    ...id,
    endpoint: endpointFor(ctx.config.host, ctx.config.apiPort),
    verbs: API_VERBS,
    maxMessageBytes: ctx.config.maxMessageBytes,
    maxInFlightPerPeer: ctx.config.maxRequestsInFlight,
    maxInFlightPerKey: ctx.config.maxRequestsInFlightPerKey,
    logger: ctx.logger.child({ component: "api" }),
    health: () => principalHealth(ctx),
    auth,
  });
  registerWorkflowHandlers(server, ctx);
  registerRunHandlers(server, ctx);
  registerLogQueryHandlers(server, ctx);
  registerAgentHandlers(server, ctx);
  registerKeyHandlers(server, ctx);
  return server;
}

/** The log-ingest ROUTER (`logBatch`) with its handler registered; not bound yet (same `auth` as the API). */
export function createLogServer(
  ctx: ApiContext,
  id: ServerIdentity,
  auth: ServerAuth | undefined,
): RpcServer<typeof LOG_VERBS> {
  const server = new RpcServer({
    ...id,
    endpoint: endpointFor(ctx.config.host, ctx.config.logsPort),
    verbs: LOG_VERBS,
    maxMessageBytes: ctx.config.maxMessageBytes,
    maxInFlightPerPeer: ctx.config.maxRequestsInFlight,
    maxInFlightPerKey: ctx.config.maxRequestsInFlightPerKey,
    logger: ctx.logger.child({ component: "logs" }),
    health: () => principalHealth(ctx),
    auth,
  });
  registerLogIngestHandlers(server, ctx);
  return server;
}

import {
  API_VERBS,
  LOG_VERBS,
  RpcServer,
  endpointFor,
  type ReplyOf,
  type ServerAuth,
  type ServerHealth,
  type VerbTable,
} from "@cdktr/protocol";
import {
  LEADER_ONLY_API_VERBS,
  LEADER_ONLY_LOG_VERBS,
  leaderGated,
  type HandlerRegistry,
} from "../leader/leader-gate.js";
import { registerAgentHandlers } from "./agent-handlers.js";
import { registerKeyHandlers } from "./key-handlers.js";
import type { ApiContext } from "./api-context.js";
import { registerLogIngestHandlers } from "../logs/log-ingest.js";
import { registerLogQueryHandlers } from "./log-handlers.js";
import { registerRunHandlers } from "./run-handlers.js";
import { registerWorkflowHandlers } from "./workflow-handlers.js";

/** What `ping` answers with on both servers. */
export interface ServerIdentity {
  serverId: string;
  version: string;
}

/**
 * The health `ping` reports on both servers: `degraded` with the store's problems (e.g. `"disk
 * full"`) and the leader election's (`"leader lease unreachable"`) while there are any.
 */
export function principalHealth(ctx: ApiContext): ServerHealth {
  const problems = [...ctx.store.problems(), ...ctx.role.problems()];
  return { health: problems.length === 0 ? "ok" : "degraded", problems };
}

/**
 * The `ping` reply of both servers: identity, health, and leadership (role, the leader's
 * endpoints, its epoch) with the hash of this principal's workflow set. `role` is `"leader"` only
 * once the writes it is elected for are accepted: a principal elected but still loading its term
 * (queue, leases, agents) says `"standby"` with itself as the leader, so that a client or probe
 * that waits for `"leader"` and then writes is not refused because the term is still loading.
 */
export function principalPing(ctx: ApiContext, id: ServerIdentity): ReplyOf<typeof API_VERBS, "ping"> {
  const leadership = ctx.role.ping();
  return {
    principalId: id.serverId,
    version: id.version,
    time: new Date().toISOString(),
    ...principalHealth(ctx),
    ...leadership,
    ...(leadership.role === "leader" && !ctx.termReady() ? { role: "standby" as const } : {}),
    workflowHash: ctx.workflows.setHash,
  };
}

/** `ping` on `server`, and the view of it that refuses the `leaderOnly` verbs on a standby. */
function gated<T extends VerbTable & Pick<typeof API_VERBS, "ping">>(
  server: RpcServer<T>,
  ctx: ApiContext,
  id: ServerIdentity,
  leaderOnly: ReadonlySet<string>,
): HandlerRegistry<T> {
  const view = leaderGated(server, leaderOnly, ctx.requireLeader);
  view.handle("ping", () => principalPing(ctx, id) as never);
  return view;
}

/**
 * The API ROUTER (every verb of `API_VERBS`) with its handlers registered, those of
 * `LEADER_ONLY_API_VERBS` refused with `NOT_LEADER` on a standby; not bound yet. With
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
  const view = gated(server, ctx, id, LEADER_ONLY_API_VERBS);
  registerWorkflowHandlers(view, ctx);
  registerRunHandlers(view, ctx);
  registerLogQueryHandlers(view, ctx);
  registerAgentHandlers(view, ctx);
  registerKeyHandlers(view, ctx);
  return server;
}

/**
 * The log-ingest ROUTER (`logBatch`) with its handler registered, on this thread; not bound yet
 * (same `auth` as the API). With the SQLite store the principal runs it in its own thread
 * instead (`logs/log-ingest-thread.ts`).
 */
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
  const ingest = registerLogIngestHandlers(gated(server, ctx, id, LEADER_ONLY_LOG_VERBS), {
    maxPendingLines: ctx.config.logIngestMaxPendingLines,
    maxPendingBytes: ctx.config.logIngestMaxPendingBytes,
    checkKey: (agentId, keyName) => ctx.agents.checkKey(agentId, keyName),
    touch: (agentId) => void ctx.agents.touch(agentId),
    isActive: (agentId) => ctx.agents.active(agentId) !== undefined,
    insertLogs: (lines, claim) => ctx.store.insertLogs(lines, claim),
    publish: (inserted) => {
      ctx.metrics?.logLines(inserted.length);
      for (const l of inserted) ctx.events.log(l);
    },
  });
  ctx.metrics?.logBacklogFrom(ingest.pendingLines);
  return server;
}

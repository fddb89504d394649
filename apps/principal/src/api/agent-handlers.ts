import {
  CdktrError,
  DEFAULT_AGENT_PAGE_SIZE,
  isTerminalRunStatus,
  type API_VERBS,
  type AdvertisedEndpoints,
} from "@cdktr/protocol";
import type { HandlerRegistry } from "../leader/leader-gate.js";
import { leaseClaim, type ApiContext } from "./api-context.js";

/**
 * Register the agent protocol: `registerAgent` and `heartbeat` (reconciled by the agent-loss
 * policy), `fetchWork` and `confirmAssignment` (the dispatcher), the `runStatus` and
 * `taskStatus` reports (the store applies the state rules), and `listAgents`. Every agent
 * message counts as a sign of life. With authentication, an agent id belongs to the key that
 * registered it, a lease to the key that fetched it, and reports need that key and the run's token.
 */
export function registerAgentHandlers(server: HandlerRegistry<typeof API_VERBS>, ctx: ApiContext): void {
  // The dispatcher, agents and agent-loss policy are the current term's: read at each request.
  const { store, events, logger, config } = ctx;
  server
    .handle("registerAgent", (req, rpc) => {
      const keyName = rpc.identity?.name ?? null;
      ctx.agents.register(req, keyName);
      const cancel = ctx.agentLoss.reconcile(req.agentId, req);
      logger.info("agent registered", {
        agentId: req.agentId,
        host: req.host,
        capacity: req.capacity,
        labels: req.labels,
        running: req.runningRuns.length,
        cancel,
        ...(keyName === null ? {} : { key: keyName }),
      });
      return {
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        heartbeatTimeoutMs: config.heartbeatTimeoutMs,
        cancel,
        ...leaderField(ctx),
      };
    })
    .handle("heartbeat", (req, rpc) => {
      const { agentId, runningRuns, problems } = req;
      ctx.agents.checkKey(agentId, rpc.identity?.name ?? null);
      // A heartbeat of another process than the one that registered last (an agent restarted,
      // or a dead process's late message) settles nothing: that process registers (again).
      if (req.session !== undefined && ctx.agents.active(agentId)?.session !== req.session) {
        return { cancel: [], reregister: true };
      }
      if (!ctx.agents.touch(agentId, runningRuns, problems)) return { cancel: [], reregister: true };
      return { cancel: ctx.agentLoss.reconcile(agentId, req), reregister: false };
    })
    .handle("fetchWork", async (req, rpc) => {
      const keyName = rpc.identity?.name ?? null;
      ctx.agents.checkKey(req.agentId, keyName);
      const agent = ctx.agents.active(req.agentId);
      if (agent === undefined) {
        throw new CdktrError(
          "AGENT_NOT_REGISTERED",
          `agent \`${req.agentId}\` is not registered (or was declared lost): call registerAgent, then fetch again`,
        );
      }
      ctx.agents.touch(req.agentId);
      let waitMs = req.waitMs;
      // The request's deadline is wall-clock time on the wire (not the principal's clock).
      if (rpc.deadline !== null) waitMs = Math.max(0, Math.min(waitMs, rpc.deadline - Date.now() - 100));
      if (req.session !== undefined && agent.session !== req.session) {
        // A process that did not register (a dead one's late request, or one that must register).
        throw new CdktrError(
          "AGENT_NOT_REGISTERED",
          `agent \`${req.agentId}\` registered with another session: call registerAgent, then fetch again`,
        );
      }
      return ctx.dispatcher.fetchWork(
        {
          agentId: req.agentId,
          labels: agent.labels,
          keyName,
          capacity: agent.capacity,
          session: req.session,
          seq: req.seq,
        },
        waitMs,
        rpc.signal,
      );
    })
    .handle("confirmAssignment", async ({ agentId, runId, token, time }, rpc) => {
      const keyName = rpc.identity?.name ?? null;
      ctx.agents.checkKey(agentId, keyName);
      ctx.agents.touch(agentId);
      const startedAt = time === undefined ? undefined : Date.parse(time);
      const run = await ctx.dispatcher.confirm(agentId, runId, token, keyName, startedAt);
      logger.info("run started", { runId, agentId, workflowId: run.workflowId });
      return { run };
    })
    .handle("runStatus", async (req, rpc) => {
      ctx.agents.checkKey(req.agentId, rpc.identity?.name ?? null);
      ctx.agents.touch(req.agentId);
      const res = await store.updateRunStatus(req, leaseClaim(rpc.identity, req.token));
      if (res.applied && isTerminalRunStatus(res.run.status)) {
        ctx.dispatcher.remove(req.runId);
        logger.info("run finished", { runId: req.runId, workflowId: res.run.workflowId, status: res.run.status });
        events.run(res.run);
        events.tasks(res.run.workflowId, res.tasks);
      } else if (!res.applied) {
        logger.warn("late run report recorded only", {
          runId: req.runId,
          reported: req.status,
          status: res.run.status,
          agentId: req.agentId,
        });
      }
      return { applied: res.applied, status: res.run.status };
    })
    .handle("taskStatus", async (req, rpc) => {
      ctx.agents.checkKey(req.agentId, rpc.identity?.name ?? null);
      ctx.agents.touch(req.agentId);
      const res = await store.updateTaskStatus(req, leaseClaim(rpc.identity, req.token));
      if (res.applied && res.task !== null) events.tasks(res.run.workflowId, [res.task]);
      return { applied: res.applied };
    })
    .handle("listAgents", (req) =>
      // Half the message limit per page: a page always fits, whatever the agents carry.
      ctx.agents.page({
        limit: req.limit ?? DEFAULT_AGENT_PAGE_SIZE,
        cursor: req.cursor,
        maxBytes: Math.floor(config.maxMessageBytes / 2),
      }),
    );
}

/** The `leader` field of a reply: the leader's endpoints when known. */
function leaderField(ctx: ApiContext): { leader?: AdvertisedEndpoints } {
  const leader = ctx.role.leader();
  return leader === null ? {} : { leader };
}

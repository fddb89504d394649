import {
  CdktrError,
  DEFAULT_AGENT_PAGE_SIZE,
  isTerminalRunStatus,
  type API_VERBS,
  type RpcServer,
} from "@cdktr/protocol";
import { leaseClaim, type ApiContext } from "./api-context.js";

/**
 * Register the agent protocol: `registerAgent` and `heartbeat` (reconciled by the agent-loss
 * policy), `fetchWork` and `confirmAssignment` (the dispatcher), the `runStatus` and
 * `taskStatus` reports (the store applies the state rules), and `listAgents`. Every agent
 * message counts as a sign of life. With authentication, an agent id belongs to the key that
 * registered it, a lease to the key that fetched it, and reports need that key and the run's token.
 */
export function registerAgentHandlers(server: RpcServer<typeof API_VERBS>, ctx: ApiContext): void {
  const { agents, agentLoss, dispatcher, store, events, logger, config } = ctx;
  server
    .handle("registerAgent", (req, rpc) => {
      const keyName = rpc.identity?.name ?? null;
      agents.register(req, keyName);
      const cancel = agentLoss.reconcile(req.agentId, req.runningRuns);
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
      };
    })
    .handle("heartbeat", ({ agentId, runningRuns, problems }, rpc) => {
      agents.checkKey(agentId, rpc.identity?.name ?? null);
      if (!agents.touch(agentId, runningRuns, problems)) return { cancel: [], reregister: true };
      return { cancel: agentLoss.reconcile(agentId, runningRuns), reregister: false };
    })
    .handle("fetchWork", async (req, rpc) => {
      const keyName = rpc.identity?.name ?? null;
      agents.checkKey(req.agentId, keyName);
      const agent = agents.active(req.agentId);
      if (agent === undefined) {
        throw new CdktrError(
          "AGENT_NOT_REGISTERED",
          `agent \`${req.agentId}\` is not registered (or was declared lost): call registerAgent, then fetch again`,
        );
      }
      agents.touch(req.agentId);
      let waitMs = req.waitMs;
      // The request's deadline is wall-clock time on the wire (not the principal's clock).
      if (rpc.deadline !== null) waitMs = Math.max(0, Math.min(waitMs, rpc.deadline - Date.now() - 100));
      return dispatcher.fetchWork(
        { agentId: req.agentId, labels: agent.labels, keyName, capacity: agent.capacity },
        waitMs,
        rpc.signal,
      );
    })
    .handle("confirmAssignment", async ({ agentId, runId, token }, rpc) => {
      const keyName = rpc.identity?.name ?? null;
      agents.checkKey(agentId, keyName);
      agents.touch(agentId);
      const run = await dispatcher.confirm(agentId, runId, token, keyName);
      logger.info("run started", { runId, agentId, workflowId: run.workflowId });
      return { run };
    })
    .handle("runStatus", async (req, rpc) => {
      agents.checkKey(req.agentId, rpc.identity?.name ?? null);
      agents.touch(req.agentId);
      const res = await store.updateRunStatus(req, leaseClaim(rpc.identity, req.token));
      if (res.applied && isTerminalRunStatus(res.run.status)) {
        dispatcher.remove(req.runId);
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
      agents.checkKey(req.agentId, rpc.identity?.name ?? null);
      agents.touch(req.agentId);
      const res = await store.updateTaskStatus(req, leaseClaim(rpc.identity, req.token));
      if (res.applied && res.task !== null) events.tasks(res.run.workflowId, [res.task]);
      return { applied: res.applied };
    })
    .handle("listAgents", (req) =>
      // Half the message limit per page: a page always fits, whatever the agents carry.
      agents.page({
        limit: req.limit ?? DEFAULT_AGENT_PAGE_SIZE,
        cursor: req.cursor,
        maxBytes: Math.floor(config.maxMessageBytes / 2),
      }),
    );
}

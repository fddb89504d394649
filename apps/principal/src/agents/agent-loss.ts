import { errorMessage, type Clock, type Logger } from "@cdktr/protocol";
import { settlementOf, tokenOrigin, type AgentSettlement } from "../dispatch/assignment-token.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import type { UlidGenerator } from "../ids.js";
import type { PrincipalEvents } from "../publish/principal-events.js";
import type { Store } from "../store/store.js";
import type { AgentRegistry } from "./agent-registry.js";

/** Options of {@link AgentLoss}. */
export interface AgentLossOptions {
  clock: Clock;
  /** An agent silent this long is lost; a run its agent stops listing this long is CRASHED. */
  heartbeatTimeoutMs: number;
  agents: AgentRegistry;
  dispatcher: Dispatcher;
  store: Store;
  /** Ids of requeued runs. */
  ids: UlidGenerator;
  logger: Logger;
  events: PrincipalEvents;
}

/**
 * What the principal does when agents go away: the agent-loss policy.
 *
 * - An agent silent past the heartbeat timeout is LOST; its parked `fetchWork` calls are answered
 *   and every run it holds is CRASHED (reason `agent_lost`, unfinished tasks too); a workflow with
 *   `on_agent_lost: requeue` gets a new QUEUED run with the same params.
 * - Registration and heartbeats {@link reconcile} what an agent says it runs with what it holds.
 *   A RUNNING run it stops listing is not crashed at once (its final report may be queued behind
 *   a re-registration): it is CRASHED if still unlisted one heartbeat timeout later.
 * - An ASSIGNED run fetched with a session is settled by the same word (`settlementOf`): back in
 *   the queue when the agent shows it never started it, CRASHED (like a lost agent's run) when
 *   the process that fetched it is gone without saying, else left as it is.
 *
 * Time is the injected clock's; {@link check} is called periodically by the principal.
 */
export class AgentLoss {
  /** RUNNING runs their agent stopped listing, and since when (principal clock). */
  private readonly unreported = new Map<string, number>();
  /** Runs whose CRASHED commit failed, tried again at every {@link check}. */
  private readonly retry = new Map<string, { agentId: string; why: string }>();
  /** Runs whose CRASHED commit is in flight. */
  private readonly crashing = new Set<string>();

  constructor(private readonly opts: AgentLossOptions) {}

  /**
   * Compare what an agent says it runs with what it holds. Returns the runs it must stop: those
   * with a cancel request, and reported runs it does not hold (unknown, finished, CRASHED,
   * someone else's).
   */
  reconcile(agentId: string, said: readonly string[] | AgentSettlement): string[] {
    const d = this.opts.dispatcher;
    const report: AgentSettlement = isRunList(said) ? { runningRuns: said } : said;
    const runningRuns = report.runningRuns;
    const reported = new Set(runningRuns);
    const now = this.opts.clock.now();
    for (const e of d.byAgent(agentId)) {
      if (e.run.status === "ASSIGNED") {
        this.settle(agentId, e.run.runId, e.token, report);
        continue;
      }
      if (e.run.status !== "RUNNING") continue;
      if (reported.has(e.run.runId)) this.unreported.delete(e.run.runId);
      else if (!this.unreported.has(e.run.runId)) this.unreported.set(e.run.runId, now);
    }
    const cancel = d.cancelsFor(agentId);
    for (const id of runningRuns) {
      const e = d.get(id);
      if ((e === undefined || e.run.agentId !== agentId) && !cancel.includes(id)) cancel.push(id);
    }
    return cancel;
  }

  /** Requeue or crash an ASSIGNED run fetched with a session, as its agent's report shows. */
  private settle(agentId: string, runId: string, token: string | null, report: AgentSettlement): void {
    const origin = tokenOrigin(token);
    if (origin === null) return;
    const fate = settlementOf(runId, origin, report);
    if (fate === "requeue") {
      this.opts.dispatcher.release(runId);
    } else if (fate === "crash") {
      this.crashRuns(
        agentId,
        [runId],
        `the process of agent \`${agentId}\` that fetched it (session ${origin.session}) is gone without saying whether it started it`,
      ).catch((err: unknown) =>
        this.opts.logger.error("could not crash an assignment", { runId, error: errorMessage(err) }),
      );
    }
  }

  /**
   * Declare agents silent past the timeout lost (crashing their runs), and crash RUNNING runs
   * their agent has not listed for a whole timeout. Failures are logged, never thrown.
   */
  check(): void {
    const { agents, dispatcher: d, heartbeatTimeoutMs: timeoutMs, logger } = this.opts;
    for (const agent of agents.expire()) {
      const held = d.byAgent(agent.agentId).map((e) => e.run.runId);
      logger.warn("agent lost: no heartbeat within the timeout", { agentId: agent.agentId, timeoutMs, runs: held });
      d.dropWaiters(agent.agentId);
      this.crashRuns(agent.agentId, held, `agent \`${agent.agentId}\` sent no heartbeat for ${timeoutMs} ms`).catch(
        (e: unknown) =>
          logger.error("could not handle a lost agent", { agentId: agent.agentId, error: errorMessage(e) }),
      );
    }
    for (const agentId of agents.collect()) {
      logger.info("lost agent forgotten (CDKTR_AGENT_GC_AFTER_MS)", { agentId });
    }
    for (const [runId, { agentId, why }] of this.retry) {
      const e = d.get(runId);
      if (e === undefined || e.run.agentId !== agentId) this.retry.delete(runId);
      else
        this.crashRuns(agentId, [runId], why).catch((err: unknown) =>
          logger.error("could not crash a run", { runId, error: errorMessage(err) }),
        );
    }
    const now = this.opts.clock.now();
    for (const [runId, since] of this.unreported) {
      const e = d.get(runId);
      if (e === undefined || e.run.status !== "RUNNING" || e.run.agentId === null) {
        this.unreported.delete(runId);
      } else if (now - since > timeoutMs) {
        this.unreported.delete(runId);
        const agentId = e.run.agentId;
        logger.warn("run crashed: its agent stopped reporting it", { runId, agentId });
        this.crashRuns(
          agentId,
          [runId],
          `agent \`${agentId}\` stopped reporting this run for ${timeoutMs} ms (it restarted?)`,
        ).catch((err: unknown) =>
          logger.error("could not crash an unreported run", { runId, error: errorMessage(err) }),
        );
      }
    }
  }

  /**
   * Crash every run of `runIds` the agent holds (it stopped heartbeating or restarted without
   * them), requeueing those whose workflow says `on_agent_lost: requeue`; publishes the changes.
   */
  async crashRuns(agentId: string, runIds: readonly string[], why: string): Promise<void> {
    const { dispatcher: d, store, ids, logger, events } = this.opts;
    await Promise.all(
      runIds.map(async (runId) => {
        const entry = d.get(runId);
        if (entry === undefined || this.crashing.has(runId)) return;
        const requeueId = entry.workflow.onAgentLost === "requeue" ? ids.next() : null;
        this.crashing.add(runId);
        try {
          // Commit first, then memory: a failed commit leaves the run tracked, and tried again.
          const res = await store.crashRun(runId, "agent_lost", why, requeueId);
          this.retry.delete(runId);
          if (d.get(runId) === entry) d.remove(runId);
          if (res === null) return;
          logger.warn("run crashed: agent lost", {
            runId,
            agentId,
            workflowId: res.run.workflowId,
            requeuedAs: res.requeued?.runId ?? null,
          });
          events.run(res.run);
          events.tasks(res.run.workflowId, res.tasks);
          if (res.requeued !== null) {
            events.run(res.requeued);
            // A requeued retry takes the same tasks as done (the store copied their rows).
            d.enqueue(res.requeued, entry.workflow, entry.reusedTasks);
          }
        } catch (e) {
          logger.error("could not mark a run CRASHED (tried again at the next check)", {
            runId,
            agentId,
            error: errorMessage(e),
          });
          this.retry.set(runId, { agentId, why });
        } finally {
          this.crashing.delete(runId);
        }
      }),
    );
  }
}

function isRunList(x: readonly string[] | AgentSettlement): x is readonly string[] {
  return Array.isArray(x);
}

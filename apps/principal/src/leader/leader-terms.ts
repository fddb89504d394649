/**
 * The leader-only state of the principal, built fresh for each term of leadership: the
 * dispatcher (queue and assignment leases), the agent registry, the agent-loss policy, and the
 * periodic lease/heartbeat check and retention job. A standby has none of it.
 */
import type { AdvertisedEndpoints, Clock, Logger } from "@cdktr/protocol";
import { AgentLoss } from "../agents/agent-loss.js";
import { AgentRegistry } from "../agents/agent-registry.js";
import type { PrincipalConfig } from "../config.js";
import { Dispatcher } from "../dispatch/dispatcher.js";
import type { UlidGenerator } from "../ids.js";
import type { PrincipalEvents } from "../publish/principal-events.js";
import { pruneInBackground } from "../start-up.js";
import type { Store } from "../store/store.js";
import { every, type RepeatingTimer } from "../time/every.js";
import { notLeader } from "./leader-role.js";

/** Period of the retention job. */
const PRUNE_EVERY_MS = 3_600_000;

/** The leader-only components of one term. */
export interface LeaderTerm {
  /** The fencing epoch (null: SQLite). */
  readonly epoch: number | null;
  readonly dispatcher: Dispatcher;
  readonly agents: AgentRegistry;
  readonly agentLoss: AgentLoss;
  /** Runs found not finished when the term began. */
  readonly activeRuns: number;
}

/** What every term is built from. */
export interface LeaderTermsOptions {
  config: PrincipalConfig;
  store: Store;
  clock: Clock;
  ids: UlidGenerator;
  logger: Logger;
  events: PrincipalEvents;
  /** Whether this principal still leads (checked after the state is loaded). */
  isLeader: () => boolean;
  /** The leader's endpoints as known now, for `NOT_LEADER`. */
  leader: () => AdvertisedEndpoints | null;
  /** Runs first when a term begins (e.g. reload the keys enrolled meanwhile). */
  beforeTerm?: () => Promise<void>;
}

/**
 * What an agent holding a run gets on top of the heartbeat timeout to find a new leader (several
 * principals; a lone principal's restart keeps the plain timeout): its
 * requests to the dead one time out first (5 s each for the agent), then it moves. Without it a
 * short heartbeat timeout CRASHED runs at a failover (seen in the HA soak, timeout 3 s).
 */
export const TAKEOVER_AGENT_GRACE_MS = 10_000;

/**
 * The current term, if any: {@link begin} rebuilds everything from the store (queue, ASSIGNED
 * leases restarted from now, every agent holding a run tracked with a fresh heartbeat deadline plus
 * {@link TAKEOVER_AGENT_GRACE_MS}, so
 * nothing is CRASHED because of the failover itself) and starts the timers; {@link end} stops
 * them, answers parked `fetchWork` polls and drops the state.
 */
export class LeaderTerms {
  private term: (LeaderTerm & { timers: RepeatingTimer[] }) | null = null;
  private generation = 0;

  constructor(private readonly opts: LeaderTermsOptions) {}

  /**
   * The current term.
   * @throws CdktrError NOT_LEADER (with the leader's endpoints) when this principal does not lead,
   * or leads but has not finished loading its state.
   */
  current(): LeaderTerm {
    const t = this.term;
    if (t !== null && this.opts.isLeader()) return t;
    if (t !== null) this.end();
    throw notLeader(this.opts.leader(), t === null && this.opts.isLeader() ? "its term is starting" : "");
  }

  /** The current term, or null (no throw). */
  peek(): LeaderTerm | null {
    return this.term;
  }

  /** Build the state of a term of `epoch` from the store and start its timers. */
  async begin(epoch: number | null): Promise<void> {
    const { config, store, clock, ids, logger, events } = this.opts;
    this.end();
    const generation = ++this.generation;
    await this.opts.beforeTerm?.();
    const active = await store.loadActiveRuns();
    if (generation !== this.generation || !this.opts.isLeader()) return;
    const dispatcher = new Dispatcher({
      store,
      clock,
      leaseMs: config.leaseMs,
      logger: logger.child({ component: "dispatch" }),
      onRunChanged: events.run,
      onTasksChanged: events.tasks,
    });
    dispatcher.load(active);
    const agents = new AgentRegistry(clock, config.heartbeatTimeoutMs, config.agentGcAfterMs, config.maxAgentsPerKey);
    // A lone principal (epoch null) restarted where its agents already send: no grace needed.
    for (const a of active)
      if (a.run.agentId !== null)
        agents.trackOrphan(a.run.agentId, a.leaseKey, epoch === null ? 0 : TAKEOVER_AGENT_GRACE_MS);
    const agentLoss = new AgentLoss({
      clock,
      heartbeatTimeoutMs: config.heartbeatTimeoutMs,
      agents,
      dispatcher,
      store,
      ids,
      logger,
      events,
    });
    const checkMs = Math.max(
      20,
      Math.min(1000, Math.floor(config.heartbeatTimeoutMs / 4), Math.floor(config.leaseMs / 4)),
    );
    const timers = [
      every(clock, checkMs, () => {
        dispatcher.expireLeases();
        agentLoss.check();
      }),
      every(clock, PRUNE_EVERY_MS, () => pruneInBackground(store, config, logger)),
    ];
    this.term = { epoch, dispatcher, agents, agentLoss, activeRuns: active.length, timers };
    pruneInBackground(store, config, logger);
    if (epoch !== null) {
      logger.info("leader's state rebuilt from the database", {
        epoch,
        activeRuns: active.length,
        queued: dispatcher.queuedCount(),
      });
    }
  }

  /** End the current term (idempotent): stop its timers, answer parked polls, drop its state. */
  end(): void {
    this.generation++;
    const t = this.term;
    this.term = null;
    if (t === null) return;
    for (const timer of t.timers) timer.stop();
    t.dispatcher.close();
  }
}

/**
 * The agent's side of the conversation with the principal: registration (again whenever the
 * principal forgot the agent), the heartbeat loop, the `fetchWork` long-poll loops and the start
 * of every assignment (confirmed afterwards, through the status outbox).
 */
import {
  backoffDelay,
  isCdktrError,
  systemClock,
  toCdktrError,
  type Assignment,
  type BackoffOptions,
  type Clock,
  type Logger,
  type PrincipalClient,
} from "@cdktr/protocol";
import type { AgentConfig } from "../config.js";
import type { ActiveRuns } from "../run/active-runs.js";
import type { Notifier } from "./notifier.js";

/** Most fetchWork long-polls one agent keeps outstanding at a time. */
const MAX_CONCURRENT_FETCHES = 4;
/** Waits of a fetch loop after a failed fetch or registration: 250 ms doubling to 5 s, jittered. */
const FETCH_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 5000, factor: 2 };
/** How long one registration attempt may take (it is retried by the loops, never by the client). */
const REGISTER_TIMEOUT_MS = 3000;
/** Wait of a fetch loop while every slot is taken (a finished run wakes it earlier). */
const FULL_WAIT_MS = 1000;
/**
 * Waits of a fetch loop after empty replies that came back at once (the principal parks at most
 * the agent's free slots as it counts them, and answers a poll beyond them without waiting): 50 ms
 * doubling to 1 s, so a disagreement about free slots never becomes a busy loop.
 */
const EMPTY_BACKOFF: BackoffOptions = { initialMs: 50, maxMs: 1000, factor: 2 };

/** The settings a {@link PrincipalSession} uses. */
export type PrincipalSessionConfig = Pick<
  AgentConfig,
  "agentId" | "host" | "labels" | "maxConcurrency" | "heartbeatIntervalMs" | "fetchWaitMs"
>;

/** Options of {@link PrincipalSession}. */
export interface PrincipalSessionOptions {
  config: PrincipalSessionConfig;
  /** Reported at registration. */
  version: string;
  client: PrincipalClient;
  /** Where assignments start, and what the agent reports as running. */
  runs: Pick<ActiveRuns, "size" | "start" | "cancel" | "runningRuns">;
  /** This agent process's session (new at every start: `claimSession`). */
  session: string;
  /**
   * The previous process on this data directory and the runs it started unacknowledged, sent
   * with every registration until one succeeds, then `onPredecessorTold`. @default none
   */
  predecessor?: () => { session: string; started: readonly string[] } | null;
  /** Called once a registration carried {@link predecessor}. */
  onPredecessorTold?: () => void;
  /** Shared wake-up of the loops (a finished run frees a slot). */
  wake: Notifier;
  logger: Logger;
  /** Time of waits. @default systemClock */
  clock?: Clock;
  /**
   * What keeps the agent from working normally now (disk full...), sent with every heartbeat
   * (`listAgents` shows it). @default none
   */
  problems?: () => string[];
  /**
   * Why the agent takes no new work now (its status outbox cannot be written...), or null. While
   * it says so no `fetchWork` is sent, and an assignment that a poll already in flight brings is
   * not started (the next heartbeat tells the principal, which queues the run again); notify
   * `wake` when it clears. @default never
   */
  holdWork?: () => string | null;
}

/**
 * Registration state and the loops that talk to the principal. {@link start} registers once and
 * starts the heartbeat loop and up to {@link MAX_CONCURRENT_FETCHES} fetch loops; each fetch
 * holds one free slot. Each `fetchWork` carries the session and its number; an assignment is
 * started at once (the principal committed it before replying) and confirmed afterwards. Every
 * registration and heartbeat says which fetches are settled (`settledThrough`: answered and
 * started or dropped, or given up) beside the runs started, so the principal can queue again what
 * this process never started, and nothing it did. Every retry waits `backoffDelay` (jittered), so
 * a fleet of agents does not retry in lock-step.
 */
export class PrincipalSession {
  readonly #o: PrincipalSessionOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #registered = false;
  #registering: Promise<boolean> | null = null;
  /** The API endpoint of the last successful registration. */
  #registeredWith: string | null = null;
  #heartbeatMs: number;
  /** fetchWork requests outstanding: each holds one free slot. */
  #fetching = 0;
  /** Number of the next fetchWork of this session. */
  #nextSeq = 1;
  /** Fetches not settled yet (sent, and their assignment neither started nor dropped). */
  readonly #unsettled = new Set<number>();
  /** The predecessor, once read (at the first registration). */
  #predecessor: { session: string; started: readonly string[] } | null | undefined = undefined;
  /** Whether a registration carried the predecessor (it is not sent again). */
  #predecessorTold = false;
  /** No more fetching or confirming (shutdown began). */
  #stopping = false;
  /** Done with the principal: heartbeats go on until then. */
  #closing = false;
  readonly #loops: Promise<void>[] = [];
  /** The problems of the last heartbeat, joined (to log changes once). */
  #lastProblems = "";
  /** Why the fetch loops hold (as last logged), or null. */
  #holding: string | null = null;

  constructor(options: PrincipalSessionOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger;
    this.#heartbeatMs = options.config.heartbeatIntervalMs;
  }

  /** Every fetch of this session numbered up to this one is settled. */
  settledThrough(): number {
    let low = this.#nextSeq;
    for (const seq of this.#unsettled) low = Math.min(low, seq);
    return low - 1;
  }

  /**
   * What registrations and heartbeats say about the runs and fetches of this process: taken at
   * once, so the started runs and the settled fetches describe the same instant.
   */
  #settlement(): { runningRuns: string[]; session: string; settledThrough: number } {
    return {
      runningRuns: this.#o.runs.runningRuns(),
      session: this.#o.session,
      settledThrough: this.settledThrough(),
    };
  }

  /**
   * Tell the principal, once, what this process settled (after the fetch loops stopped): one
   * heartbeat, so that assignments it dropped go back to the queue now rather than when this
   * agent is declared lost. Waits up to `waitMs` for fetches still in flight. Never rejects.
   */
  async farewell(waitMs: number): Promise<void> {
    await this.#o.wake.until(() => this.#fetching === 0, waitMs);
    if (!this.#registered) return;
    try {
      await this.#o.client.heartbeat(
        { agentId: this.#o.config.agentId, ...this.#settlement() },
        {
          timeoutMs: 1000,
          retry: false,
        },
      );
    } catch (e: unknown) {
      this.#logger.debug("last heartbeat not delivered", { error: toCdktrError(e).message });
    }
  }

  /** Whether the principal knows this agent (as far as the last reply said). */
  get registered(): boolean {
    return this.#registered;
  }

  /**
   * Register once, then start the heartbeat loop and the fetch loops (which keep registering
   * when this first attempt failed).
   * @returns whether the first registration succeeded.
   */
  async start(): Promise<boolean> {
    const ok = await this.register();
    // Several fetches in flight (each holding a free slot), so that the round trips and the
    // principal's commits of consecutive assignments overlap instead of queueing one by one.
    const fetchers = Math.min(this.#o.config.maxConcurrency, MAX_CONCURRENT_FETCHES);
    this.#loops.push(this.#heartbeatLoop(), ...Array.from({ length: fetchers }, () => this.#fetchLoop()));
    return ok;
  }

  /** Register (single-flight: concurrent callers share one attempt). Never rejects. */
  register(): Promise<boolean> {
    if (this.#registering === null) {
      this.#registering = this.#registerOnce().finally(() => {
        this.#registering = null;
      });
    }
    return this.#registering;
  }

  /** The principal said it does not know this agent: register again. */
  markUnregistered(): void {
    if (this.#registered) this.#logger.warn("the principal does not know this agent; registering again");
    this.#registered = false;
    void this.register();
  }

  /**
   * Several principals: the leader moved to `api`. Register with it (reporting the running runs,
   * whose `cancel` is honoured) unless this agent registered there already.
   */
  leaderMoved(api: string): void {
    if (this.#closing || (this.#registered && this.#registeredWith === api)) return;
    this.#logger.info("the principal leader moved; registering with the new leader", { principal: api });
    this.#registered = false;
    void this.register();
  }

  /** Stop fetching and confirming (heartbeats go on until {@link close}). */
  stopFetching(): void {
    this.#stopping = true;
    this.#o.wake.notify();
  }

  /** Stop every loop (fetching too). Wait for them with {@link closed}. */
  close(): void {
    this.#stopping = true;
    this.#closing = true;
    this.#o.wake.notify();
  }

  /** Resolves once every loop ended (after {@link close}, and once requests in flight ended). */
  async closed(): Promise<void> {
    await Promise.allSettled(this.#loops);
  }

  async #registerOnce(): Promise<boolean> {
    const { config, client, runs } = this.#o;
    if (this.#predecessor === undefined) this.#predecessor = this.#o.predecessor?.() ?? null;
    const predecessor = this.#predecessorTold ? null : this.#predecessor;
    try {
      const reply = await client.registerAgent(
        {
          agentId: config.agentId,
          host: config.host,
          capacity: config.maxConcurrency,
          labels: config.labels,
          version: this.#o.version,
          ...this.#settlement(),
          ...(predecessor === null
            ? {}
            : { predecessor: { session: predecessor.session, started: [...predecessor.started] } }),
        },
        { timeoutMs: REGISTER_TIMEOUT_MS, retry: false },
      );
      if (predecessor !== null && !this.#predecessorTold) {
        this.#predecessorTold = true;
        this.#o.onPredecessorTold?.();
      }
      this.#heartbeatMs = Math.min(config.heartbeatIntervalMs, reply.heartbeatIntervalMs);
      if (!this.#registered)
        this.#logger.info("registered with the principal", {
          principal: client.endpoint,
          heartbeatMs: this.#heartbeatMs,
          runningRuns: runs.runningRuns().length,
        });
      this.#registered = true;
      this.#registeredWith = client.endpoint;
      runs.cancel(reply.cancel, "registerAgent");
      this.#o.wake.notify();
      return true;
    } catch (e: unknown) {
      this.#logger.warn("cannot register with the principal; will retry", { error: toCdktrError(e).message });
      return false;
    }
  }

  async #heartbeatLoop(): Promise<void> {
    const { config, client, runs, wake } = this.#o;
    let failing = false;
    while (!this.#closing) {
      await wake.wait(this.#heartbeatMs);
      if (this.#closing) break;
      if (!this.#registered) {
        await this.register();
        continue;
      }
      try {
        const problems = this.#problems();
        const reply = await client.heartbeat(
          { agentId: config.agentId, ...this.#settlement(), ...(problems.length > 0 ? { problems } : {}) },
          { timeoutMs: Math.max(1000, Math.min(this.#heartbeatMs, 5000)), retry: false },
        );
        if (failing) this.#logger.info("heartbeats reach the principal again");
        failing = false;
        if (reply.reregister) this.markUnregistered();
        runs.cancel(reply.cancel, "heartbeat");
      } catch (e: unknown) {
        if (isCdktrError(e, "AGENT_NOT_REGISTERED")) {
          this.markUnregistered();
        } else {
          if (!failing) this.#logger.warn("heartbeat failed; running tasks go on", { error: toCdktrError(e).message });
          failing = true;
          // The principal may have restarted and forgotten us: registering again is harmless.
          this.#registered = false;
        }
      }
    }
  }

  /** The current problems (at most 20 of at most 1000 characters, as the heartbeat allows); logged when they change. */
  #problems(): string[] {
    let problems: string[] = [];
    try {
      problems = (this.#o.problems?.() ?? []).slice(0, 20).map((p) => (p.length > 1000 ? `${p.slice(0, 997)}...` : p));
    } catch (e: unknown) {
      problems = [`cannot check the agent's problems: ${toCdktrError(e).message}`.slice(0, 1000)];
    }
    const key = problems.join("\n");
    if (key !== this.#lastProblems) {
      if (problems.length > 0) this.#logger.warn("reporting problems in heartbeats", { problems });
      else this.#logger.info("no problems to report any more");
      this.#lastProblems = key;
    }
    return problems;
  }

  async #fetchLoop(): Promise<void> {
    const { config, client, runs, wake } = this.#o;
    let failures = 0;
    let quickEmpty = 0;
    while (!this.#stopping) {
      if (!this.#registered) {
        const ok = await this.register();
        if (!ok) await wake.wait(backoffDelay(++failures, FETCH_BACKOFF));
        continue;
      }
      if (this.#held() !== null) {
        await wake.wait(FULL_WAIT_MS);
        continue;
      }
      const free = config.maxConcurrency - runs.size - this.#fetching;
      if (free <= 0) {
        await wake.wait(FULL_WAIT_MS);
        continue;
      }
      const seq = this.#nextSeq++;
      this.#unsettled.add(seq);
      try {
        this.#fetching++;
        let reply: Awaited<ReturnType<PrincipalClient["fetchWork"]>>;
        const asked = performance.now();
        try {
          reply = await client.fetchWork({
            agentId: config.agentId,
            waitMs: config.fetchWaitMs,
            freeSlots: free,
            session: this.#o.session,
            seq,
          });
        } finally {
          this.#fetching--;
        }
        failures = 0;
        runs.cancel(reply.cancel, "fetchWork");
        const answeredAtOnce = performance.now() - asked < Math.min(100, config.fetchWaitMs / 2);
        if (reply.assignment === null && reply.cancel.length === 0 && answeredAtOnce) {
          // Settled before the wait: an empty reply starts nothing.
          this.#unsettled.delete(seq);
          await wake.wait(backoffDelay(++quickEmpty, EMPTY_BACKOFF));
        } else {
          quickEmpty = 0;
        }
        if (reply.assignment !== null) this.#startAssignment(reply.assignment);
      } catch (e: unknown) {
        // A fetch that failed (or timed out: its late reply is discarded) brought nothing.
        this.#unsettled.delete(seq);
        if (this.#stopping) break;
        const err = toCdktrError(e);
        if (err.code === "AGENT_NOT_REGISTERED") {
          this.markUnregistered();
          continue;
        }
        if (failures === 0) this.#logger.warn("fetchWork failed; retrying", { code: err.code, error: err.message });
        await wake.wait(backoffDelay(++failures, FETCH_BACKOFF));
      } finally {
        this.#unsettled.delete(seq);
      }
    }
  }

  /** Why no new work is taken now (logged when it changes), or null. */
  #held(): string | null {
    const why = this.#o.holdWork?.() ?? null;
    if (why !== this.#holding) {
      if (why !== null) this.#logger.warn("taking no new work", { why });
      else this.#logger.info("taking new work again");
      this.#holding = why;
    }
    return why;
  }

  /**
   * Start an assignment now (the principal committed it before replying, and confirms it when the
   * outbox delivers the start). Not started while shutting down, while work is held, or when the
   * start cannot be journaled: the fetch is settled either way, and the next heartbeat lets the
   * principal queue the run again.
   */
  #startAssignment(assignment: Assignment): void {
    const runId = assignment.run.runId;
    const why = this.#stopping ? "shutting down" : this.#held();
    if (why !== null) {
      this.#logger.warn("not starting an assignment; the principal queues it again", { runId, why });
      return;
    }
    if (!this.#o.runs.start(assignment)) {
      this.#logger.warn("not starting an assignment: its start cannot be journaled; the principal queues it again", {
        runId,
      });
      return;
    }
    // Debug: "run started" follows at once at info with the same ids (one stdout line less per run).
    this.#logger.debug("run assigned", { runId, workflowId: assignment.workflow.id });
  }
}

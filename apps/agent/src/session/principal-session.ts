/**
 * The agent's side of the conversation with the principal: registration (again whenever the
 * principal forgot the agent), the heartbeat loop, the `fetchWork` long-poll loops and
 * confirm-then-start of every assignment.
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
/** Waits between confirm attempts of one assignment (while its lease lasts): 100 ms to 1 s, jittered. */
const CONFIRM_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 1000, factor: 2 };
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
  /** Where confirmed runs start, and what the agent reports as running. */
  runs: Pick<ActiveRuns, "size" | "start" | "cancel" | "runningRuns">;
  /** Shared wake-up of the loops (a finished run frees a slot). */
  wake: Notifier;
  logger: Logger;
  /** Lease checks. @default systemClock */
  clock?: Clock;
  /**
   * What keeps the agent from working normally now (disk full...), sent with every heartbeat
   * (`listAgents` shows it). @default none
   */
  problems?: () => string[];
  /**
   * Why the agent takes no new work now (its status outbox cannot be written...), or null. While
   * it says so no `fetchWork` is sent, and an assignment that a poll already in flight brings is
   * left unconfirmed (its lease expires and the principal queues the run again); notify `wake`
   * when it clears. @default never
   */
  holdWork?: () => string | null;
}

/**
 * Registration state and the loops that talk to the principal. {@link start} registers once and
 * starts the heartbeat loop and up to {@link MAX_CONCURRENT_FETCHES} fetch loops; each fetch
 * holds one free slot, and an assignment is confirmed with its token before anything starts (a
 * refused confirm starts nothing). Every retry waits `backoffDelay` (jittered), so a fleet of
 * agents does not retry in lock-step.
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
  /** Assignments being confirmed: each holds one slot. */
  #confirming = 0;
  /** fetchWork requests outstanding: each holds one free slot. */
  #fetching = 0;
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
    try {
      const reply = await client.registerAgent(
        {
          agentId: config.agentId,
          host: config.host,
          capacity: config.maxConcurrency,
          labels: config.labels,
          version: this.#o.version,
          runningRuns: runs.runningRuns(),
        },
        { timeoutMs: REGISTER_TIMEOUT_MS, retry: false },
      );
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
          { agentId: config.agentId, runningRuns: runs.runningRuns(), ...(problems.length > 0 ? { problems } : {}) },
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
      const free = config.maxConcurrency - runs.size - this.#confirming - this.#fetching;
      if (free <= 0) {
        await wake.wait(FULL_WAIT_MS);
        continue;
      }
      try {
        this.#fetching++;
        let reply: Awaited<ReturnType<PrincipalClient["fetchWork"]>>;
        const asked = performance.now();
        try {
          reply = await client.fetchWork({ agentId: config.agentId, waitMs: config.fetchWaitMs, freeSlots: free });
        } finally {
          this.#fetching--;
        }
        failures = 0;
        runs.cancel(reply.cancel, "fetchWork");
        const answeredAtOnce = performance.now() - asked < Math.min(100, config.fetchWaitMs / 2);
        if (reply.assignment === null && reply.cancel.length === 0 && answeredAtOnce) {
          await wake.wait(backoffDelay(++quickEmpty, EMPTY_BACKOFF));
        } else {
          quickEmpty = 0;
        }
        if (reply.assignment !== null) {
          if (this.#stopping) {
            this.#logger.info("shutting down: leaving an assignment unconfirmed (its lease will expire)", {
              runId: reply.assignment.run.runId,
            });
          } else {
            await this.#confirmAndStart(reply.assignment);
          }
        }
      } catch (e: unknown) {
        if (this.#stopping) break;
        const err = toCdktrError(e);
        if (err.code === "AGENT_NOT_REGISTERED") {
          this.markUnregistered();
          continue;
        }
        if (failures === 0) this.#logger.warn("fetchWork failed; retrying", { code: err.code, error: err.message });
        await wake.wait(backoffDelay(++failures, FETCH_BACKOFF));
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

  /** Confirm with the token (retrying while the lease lasts), then start the run; a refusal starts nothing. */
  async #confirmAndStart(assignment: Assignment): Promise<void> {
    const { config, client, runs, wake } = this.#o;
    const runId = assignment.run.runId;
    const leaseEnd = Date.parse(assignment.leaseExpiresAt);
    this.#confirming++;
    try {
      const held = this.#held();
      if (held !== null) {
        this.#logger.warn("not taking an assignment now (its lease will expire and the run is queued again)", {
          runId,
          why: held,
        });
        return;
      }
      for (let attempt = 1; ; attempt++) {
        if (this.#stopping) {
          this.#logger.info("shutting down: not confirming an assignment (its lease will expire)", { runId });
          return;
        }
        try {
          await client.confirmAssignment({ agentId: config.agentId, runId, token: assignment.token });
          break;
        } catch (e: unknown) {
          const err = toCdktrError(e);
          if (!err.retryable || this.#clock.now() >= leaseEnd) {
            this.#logger.warn("assignment not confirmed; dropping it without starting anything", {
              runId,
              code: err.code,
              error: err.message,
            });
            return;
          }
          await wake.wait(backoffDelay(attempt, CONFIRM_BACKOFF));
        }
      }
      // Debug: "run started" follows at once at info with the same ids (one stdout line less per run).
      this.#logger.debug("run assigned", { runId, workflowId: assignment.workflow.id });
      runs.start(assignment);
    } finally {
      this.#confirming--;
    }
  }
}

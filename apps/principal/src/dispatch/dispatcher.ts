import {
  CdktrError,
  errorMessage,
  isCdktrError,
  isTerminalRunStatus,
  isoTime as iso,
  noopLogger,
  type Clock,
  type Logger,
  type RunRecord,
  type TaskRunRecord,
  type WorkflowDefinition,
} from "@cdktr/protocol";
import { notLeasedTo, shuttingDown, staleAssignment } from "../errors.js";
import { HELD_RUN_STATUSES } from "../runs/state-machine.js";
import type { ActiveRun, Store } from "../store/store.js";
import { ActiveRuns, type ActiveEntry } from "./active-runs.js";
import { newAssignmentToken, tokenOrigin } from "./assignment-token.js";
import { ParkedPolls, type FetchResult, type Waiter } from "./parked-polls.js";

/** Codes with which the store refuses a confirmation (the database disagrees: not a failed commit). */
const STORE_REFUSALS: ReadonlySet<string> = new Set([
  "STALE_ASSIGNMENT",
  "PERMISSION_DENIED",
  "RUN_NOT_FOUND",
  "INVALID_TRANSITION",
]);

/** An agent asking for work: its id, labels and (authentication on) the name of its key. */
export interface WorkRequester {
  agentId: string;
  labels: readonly string[];
  /** @default null */
  keyName?: string | null;
  /**
   * Runs the agent may hold at once (its registered capacity): its parked long-polls plus the
   * runs it holds never exceed it. @default Infinity
   */
  capacity?: number;
  /**
   * The agent process's session and the number of this fetch in it. With them the assignment is
   * the permission to start: the reply waits for the assignment's commit, its lease never
   * expires, and only the agent's own word (or its loss) ends it (`AgentLoss.reconcile`).
   */
  session?: string | undefined;
  seq?: number | undefined;
}

/** Options of {@link Dispatcher}. */
export interface DispatcherOptions {
  store: Store;
  /** Time of leases and of the `fetchWork` long-poll waits. */
  clock: Clock;
  /** How long an assignment may stay unconfirmed. */
  leaseMs: number;
  logger?: Logger;
  /** Called after every committed run state change (to publish it). */
  onRunChanged?: (run: RunRecord) => void;
  /** Called after task rows changed (to publish them). */
  onTasksChanged?: (workflowId: string, tasks: TaskRunRecord[]) => void;
}

/**
 * The in-memory run queue and the `fetchWork` long-polls (the database stays the truth; this is
 * rebuilt from it at start with {@link load}).
 *
 * - FIFO by run id (ULIDs sort by creation) among *eligible* runs: the workflow has fewer than
 *   `maxActiveRuns` runs ASSIGNED/RUNNING, and the agent carries every label in `agentLabels`.
 * - A parked `fetchWork` is answered the moment a run becomes eligible for it (trigger, a run
 *   finishing, a lease expiring), never by polling.
 * - Each assignment gets a random token. Fetched with a session (today's agents), the reply is
 *   sent once the assignment is committed and the agent starts the run on it: the run goes back
 *   to the queue only when the agent says it did not start it ({@link release}). Fetched without
 *   one, the agent confirms before it starts anything and {@link expireLeases} puts unconfirmed
 *   runs back in the queue; either way the old token is refused from then on (`STALE_ASSIGNMENT`).
 * - Parked long-polls are stored with O(1) removal (insertion-ordered sets, per agent too); an
 *   agent parks at most its free slots (capacity - runs it holds - polls already parked): a poll
 *   beyond them is answered at once with no assignment.
 *
 * Memory follows the database: a state change is applied here only once its commit succeeded
 * (lease expiry, confirmation, and, in the callers, cancel, crash and finish). The one exception
 * is the assignment, reserved in memory before its write so two concurrent fetches can never take
 * the same run, and rolled back if the write fails (the reply waits for that write when the agent
 * starts on it; an agent that confirms first starts nothing before `confirm`, which is committed
 * after it and checks the token).
 */
export class Dispatcher {
  private readonly runs = new ActiveRuns();
  /** Parked long-polls in arrival order (answered first come, first served), and per agent. */
  private readonly parked: ParkedPolls;
  /** Runs whose confirmation is being committed (their lease cannot expire meanwhile). */
  private readonly confirming = new Set<string>();
  /** Runs whose lease expiry is being committed. */
  private readonly expiring = new Set<string>();
  /** Cancel requests already delivered by ending a fetchWork early. */
  private readonly cancelSentByFetch = new Set<string>();
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly leaseMs: number;
  private readonly logger: Logger;
  private readonly onRunChanged: (run: RunRecord) => void;
  private readonly onTasksChanged: (workflowId: string, tasks: TaskRunRecord[]) => void;
  private closed = false;

  constructor(opts: DispatcherOptions) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.leaseMs = opts.leaseMs;
    this.logger = opts.logger ?? noopLogger;
    this.onRunChanged = opts.onRunChanged ?? (() => undefined);
    this.onTasksChanged = opts.onTasksChanged ?? (() => undefined);
    this.parked = new ParkedPolls(this.clock);
  }

  /**
   * Rebuild from the store's active runs. Leases of ASSIGNED runs restart from now: an agent
   * that got the assignment just before a restart may still confirm it.
   */
  load(active: readonly ActiveRun[]): void {
    this.runs.load(active, this.clock.now(), this.leaseMs);
  }

  /** The tracked entry of a non-terminal run. */
  get(runId: string): ActiveEntry | undefined {
    return this.runs.get(runId);
  }

  /** Runs an agent holds (ASSIGNED or RUNNING). */
  byAgent(agentId: string): ActiveEntry[] {
    return this.runs.byAgent(agentId);
  }

  /** Number of `fetchWork` long-polls parked now (all agents, or one). */
  parkedCount(agentId?: string): number {
    return this.parked.count(agentId);
  }

  /** Number of QUEUED runs. */
  queuedCount(): number {
    return this.runs.queuedCount();
  }

  /** Runs agents hold, by status (a scan of the active runs: for metrics, not hot paths). */
  heldCounts(): { ASSIGNED: number; RUNNING: number } {
    const counts = { ASSIGNED: 0, RUNNING: 0 };
    for (const e of this.runs.all()) {
      if (e.run.status === "ASSIGNED" || e.run.status === "RUNNING") counts[e.run.status]++;
    }
    return counts;
  }

  /**
   * Track a newly committed QUEUED run and hand it out if someone waits. `reusedTasks`: a retry's
   * tasks taken as done (committed with the run), sent with its assignment.
   */
  enqueue(run: RunRecord, workflow: WorkflowDefinition, reusedTasks: readonly string[] = []): void {
    if (this.runs.add(run, workflow, reusedTasks)) this.pump();
  }

  /** Stop tracking a run (it became terminal) and use the freed slot. */
  remove(runId: string): ActiveEntry | undefined {
    const e = this.runs.delete(runId);
    if (e === undefined) return undefined;
    this.cancelSentByFetch.delete(runId);
    this.pump();
    return e;
  }

  /**
   * Flag a run its agent holds (ASSIGNED or RUNNING) for cancellation (its cancel is committed)
   * and tell its agent now (parked fetchWork, if any); told again once it confirms (an agent
   * ignores a cancel of a run it has not received yet). An ASSIGNED run its agent never starts
   * ends CANCELLED instead of going back to the queue (see {@link release}).
   */
  requestCancel(runId: string): void {
    const e = this.runs.get(runId);
    if (e === undefined || !HELD_RUN_STATUSES.includes(e.run.status)) return;
    e.cancelRequested = true;
    const agentId = e.run.agentId;
    if (agentId === null) return;
    const cancel = this.cancelsFor(agentId);
    for (const w of this.parked.ofAgent(agentId)) {
      this.cancelSentByFetch.add(runId);
      this.parked.finish(w, { assignment: null, cancel });
    }
  }

  /** Answer an agent's parked fetchWork calls with nothing (it was declared lost). */
  dropWaiters(agentId: string): void {
    for (const w of this.parked.ofAgent(agentId)) this.parked.finish(w, { assignment: null, cancel: [] });
  }

  /** Runs this agent must stop: held by it (ASSIGNED or RUNNING) with a cancel requested. */
  cancelsFor(agentId: string): string[] {
    return this.byAgent(agentId)
      .filter((e) => e.cancelRequested && HELD_RUN_STATUSES.includes(e.run.status))
      .map((e) => e.run.runId);
  }

  /**
   * Long-poll for work: resolves at once with the oldest eligible run (or pending cancels), else
   * when one becomes eligible, else `{assignment: null}` after `waitMs` or when `signal` aborts.
   * An agent without a free slot (its `capacity` taken by the runs it holds and its parked
   * polls) gets `{assignment: null}` at once.
   */
  fetchWork(agent: WorkRequester, waitMs: number, signal?: AbortSignal): Promise<FetchResult> {
    if (this.closed) return Promise.reject(shuttingDown("fetch again from the next one"));
    return new Promise<FetchResult>((resolve) => {
      const waiter: Waiter = {
        agentId: agent.agentId,
        signal,
        onAbort: null,
        labels: agent.labels,
        keyName: agent.keyName ?? null,
        origin:
          agent.session !== undefined && agent.seq !== undefined ? { session: agent.session, seq: agent.seq } : null,
        resolve,
        timer: null,
        done: false,
      };
      // New cancel requests end the long-poll at once, each only once (heartbeats repeat them),
      // so an agent busy stopping a run does not spin on fetchWork.
      const fresh = this.cancelsFor(agent.agentId).filter((id) => !this.cancelSentByFetch.has(id));
      for (const id of fresh) this.cancelSentByFetch.add(id);
      const cancel = fresh.length > 0 ? this.cancelsFor(agent.agentId) : [];
      const free =
        (agent.capacity ?? Number.POSITIVE_INFINITY) -
        this.runs.heldCount(agent.agentId) -
        this.parkedCount(agent.agentId);
      if (free <= 0) {
        // Every slot is taken: neither a run nor a parked poll more (the agent asks again later).
        this.parked.finish(waiter, { assignment: null, cancel });
        return;
      }
      if (cancel.length > 0) {
        // Cancels first; the agent fetches again right after.
        const entry = this.runs.pick(agent.labels);
        if (entry === undefined) {
          this.parked.finish(waiter, { assignment: null, cancel });
          return;
        }
        this.assign(waiter, entry);
        return;
      }
      const entry = this.runs.pick(agent.labels);
      if (entry !== undefined) {
        this.assign(waiter, entry);
        return;
      }
      if (waitMs <= 0) {
        this.parked.finish(waiter, { assignment: null, cancel: [] });
        return;
      }
      if (signal?.aborted === true) {
        this.parked.finish(waiter, { assignment: null, cancel: [] });
        return;
      }
      waiter.timer = this.clock.setTimer(() => {
        this.parked.finish(waiter, { assignment: null, cancel: this.cancelsFor(agent.agentId) });
      }, waitMs);
      if (signal !== undefined) {
        waiter.onAbort = () => this.parked.finish(waiter, { assignment: null, cancel: [] });
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.parked.park(waiter);
    });
  }

  /**
   * Confirm an assignment: ASSIGNED -> RUNNING (PENDING task rows created). With `keyName`
   * (authentication on), only the key that fetched it may confirm. `startedAt` (epoch ms, the
   * agent's clock) is when the agent started it, for an agent that starts before confirming.
   * @throws CdktrError STALE_ASSIGNMENT when the token is not current (lease expired, cancelled,
   * reassigned) or belongs to another agent; PERMISSION_DENIED when another key fetched it;
   * RUN_NOT_FOUND for unknown runs.
   */
  async confirm(
    agentId: string,
    runId: string,
    token: string,
    keyName: string | null = null,
    startedAt?: number,
  ): Promise<RunRecord> {
    const e = this.runs.get(runId);
    const now = this.clock.now();
    if (keyName !== null && e !== undefined && e.token === token && e.leaseKey !== keyName) {
      throw notLeasedTo(runId, keyName);
    }
    const commit = (workflow: WorkflowDefinition) =>
      this.store.confirmAssignment(runId, agentId, token, Object.keys(workflow.tasks), keyName, startedAt);
    if (e !== undefined && e.run.status === "ASSIGNED" && e.token === token && e.run.agentId === agentId) {
      // An assignment fetched with a session has no expiring lease: its agent may have started it.
      const leased = tokenOrigin(token) === null;
      if (this.expiring.has(runId) || (leased && e.leaseExpiresAt !== null && now > e.leaseExpiresAt)) {
        this.expire(e);
        throw staleAssignment(runId, "its lease expired");
      }
      // The run stays ASSIGNED in memory until the commit says RUNNING; meanwhile its lease
      // cannot expire (expireLeases skips it), so it is never handed out twice.
      this.confirming.add(runId);
      try {
        const { run, tasks } = await commit(e.workflow);
        if (this.runs.isCurrent(e)) this.runs.setRun(e, run);
        this.onRunChanged(run);
        this.onTasksChanged(run.workflowId, tasks);
        if (e.cancelRequested && this.runs.isCurrent(e)) {
          // Cancelled while ASSIGNED: its agent may have ignored the first word (not received yet).
          this.cancelSentByFetch.delete(runId);
          this.requestCancel(runId);
        }
        return run;
      } catch (err) {
        if (isCdktrError(err) && STORE_REFUSALS.has(err.code)) {
          // The database says this assignment is not current: memory forgets it.
          this.logger.warn("confirm refused by the store", { runId, error: errorMessage(err) });
          this.remove(runId);
        } else {
          // The commit failed: nothing changed, the run stays ASSIGNED (confirm again, or its
          // lease expires and it goes back to the queue).
          this.logger.error("could not commit a confirmation", { runId, error: errorMessage(err) });
        }
        throw err;
      } finally {
        this.confirming.delete(runId);
      }
    }
    if (e !== undefined && e.run.status === "RUNNING" && e.token === token && e.run.agentId === agentId) {
      return (await commit(e.workflow)).run;
    }
    if (e === undefined) {
      const stored = await this.store.getRun(runId);
      if (stored === null) throw new CdktrError("RUN_NOT_FOUND", `no run \`${runId}\``, { context: { runId } });
      throw staleAssignment(runId, `it is ${stored.run.status}`);
    }
    throw staleAssignment(
      runId,
      e.run.status === "QUEUED" ? "its lease expired and it went back to the queue" : "it was reassigned",
    );
  }

  /**
   * Put every ASSIGNED run whose lease has passed back in the queue, each once its expiry is
   * committed (a failed commit is tried again at the next call). Returns the ids being expired.
   */
  expireLeases(): string[] {
    const now = this.clock.now();
    const expired: string[] = [];
    for (const e of this.runs.all()) {
      if (e.run.status !== "ASSIGNED" || e.leaseExpiresAt === null || now <= e.leaseExpiresAt) continue;
      // Fetched with a session: only its agent's word or its loss ends it (see release).
      if (tokenOrigin(e.token) === null) expired.push(e.run.runId);
    }
    for (const id of expired) {
      const e = this.runs.get(id);
      if (e !== undefined) this.expire(e);
    }
    return expired;
  }

  /**
   * Put an ASSIGNED run its agent says it never started (and never will) back in the queue, once
   * that is committed; its token is refused from then on. No-op for runs not ASSIGNED or whose
   * release, expiry or confirmation is under way.
   */
  release(runId: string): void {
    const e = this.runs.get(runId);
    if (e !== undefined && e.run.status === "ASSIGNED") this.expire(e, "its agent did not start it");
  }

  /** Answer every parked fetchWork with nothing and refuse new ones. */
  close(): void {
    this.closed = true;
    for (const w of this.parked.all()) this.parked.finish(w, { assignment: null, cancel: [] });
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Commit the expiry of an ASSIGNED run's lease, then put it back in the queue (memory follows
   * the commit). Nothing happens while its confirmation or expiry is being committed.
   */
  private expire(e: ActiveEntry, why = "assignment lease expired"): void {
    const runId = e.run.runId;
    const token = e.token;
    if (token === null || this.confirming.has(runId) || this.expiring.has(runId)) return;
    this.expiring.add(runId);
    const current = (): boolean => this.runs.isCurrent(e) && e.token === token && e.run.status === "ASSIGNED";
    const agentId = e.run.agentId;
    this.store
      .expireAssignment(runId, token)
      .then(async (run) => {
        // Null: the token is no longer the stored one (confirmed, cancelled or crashed meanwhile).
        const stored = run ?? (await this.store.getRun(runId))?.run ?? null;
        if (!current()) return;
        if (stored === null || isTerminalRunStatus(stored.status)) {
          this.remove(runId);
          // Cancelled while ASSIGNED, and never started: ends here instead of going back to the queue.
          if (run !== null) {
            this.logger.info(`${why}: run cancelled (a cancel was requested)`, { runId, agentId });
            this.onRunChanged(run);
          }
          return;
        }
        if (stored.status !== "QUEUED") return;
        this.requeue(e, stored);
        this.logger.info(`${why}: run back in the queue`, { runId, agentId });
        if (run !== null) this.onRunChanged(run);
      })
      .catch((err: unknown) =>
        this.logger.error("could not commit a lease expiry (tried again at the next check)", {
          runId,
          error: errorMessage(err),
        }),
      )
      .finally(() => this.expiring.delete(runId));
  }

  /** Back in the queue in memory (its QUEUED state is committed). */
  private requeue(e: ActiveEntry, run: RunRecord): void {
    this.runs.requeue(e, run);
    this.pump();
  }

  private pump(): void {
    if (this.parked.count() === 0 || this.runs.queuedCount() === 0) return;
    for (const w of this.parked.all()) {
      if (this.runs.queuedCount() === 0) return;
      if (w.done) continue;
      const e = this.runs.pick(w.labels);
      if (e === undefined) continue;
      this.assign(w, e);
    }
  }

  private assign(waiter: Waiter, e: ActiveEntry): void {
    const token = newAssignmentToken(waiter.origin);
    const lease = this.clock.now() + this.leaseMs;
    this.runs.assign(e, waiter.agentId, token, waiter.keyName, lease);
    this.parked.settle(waiter);
    const runId = e.run.runId;
    const current = (): boolean => this.runs.isCurrent(e) && e.token === token;
    const reply = (): FetchResult => ({
      assignment: {
        run: e.run,
        workflow: e.workflow,
        token,
        leaseExpiresAt: iso(lease),
        ...(e.reusedTasks.length === 0 ? {} : { reusedTasks: [...e.reusedTasks] }),
      },
      cancel: this.cancelsFor(waiter.agentId),
    });
    const committed = this.store.assignRun(runId, waiter.agentId, token, lease, waiter.keyName).then(
      (run) => {
        if (run === null) {
          // The database says the run is no longer QUEUED (cancelled meanwhile): forget it.
          this.logger.warn("run vanished from the queue before assignment", { runId });
          if (current()) this.remove(runId);
          return false;
        }
        if (current()) this.runs.setRun(e, run);
        this.onRunChanged(run);
        return true;
      },
      (err: unknown) => {
        this.logger.error("could not persist an assignment", { runId, error: errorMessage(err) });
        if (current()) this.requeue(e, e.run);
        return false;
      },
    );
    if (waiter.origin === null) {
      // An agent that confirms first: the reply does not wait for this commit. An assignment lost
      // in a crash (or refused by the store) is harmless, because the agent starts nothing before
      // `confirm`, which is committed after this write (same ordered command queue) and checks
      // the token against the database.
      waiter.resolve(reply());
      return;
    }
    // The reply is the permission to start: only a committed assignment is sent, so a principal
    // that dies before the commit leaves a QUEUED run that no agent has.
    void committed.then((ok) =>
      waiter.resolve(ok && current() ? reply() : { assignment: null, cancel: this.cancelsFor(waiter.agentId) }),
    );
  }
}

import { randomUUID } from "node:crypto";
import {
  CdktrError,
  errorMessage,
  isCdktrError,
  isoTime as iso,
  noopLogger,
  type Assignment,
  type Clock,
  type Logger,
  type RunRecord,
  type TaskRunRecord,
  type TimerHandle,
  type WorkflowDefinition,
} from "@cdktr/protocol";
import { notLeasedTo, shuttingDown, staleAssignment } from "../errors.js";
import { HELD_RUN_STATUSES } from "../runs/state-machine.js";
import type { ActiveRun, Store } from "../store/store.js";

/** A non-terminal run as the dispatcher tracks it in memory. */
export interface ActiveEntry {
  run: RunRecord;
  workflow: WorkflowDefinition;
  token: string | null;
  /** The key that fetched the current assignment (null: unassigned, or authentication off). */
  leaseKey: string | null;
  leaseExpiresAt: number | null;
  cancelRequested: boolean;
}

/** An agent asking for work: its id, labels and (authentication on) the name of its key. */
export interface WorkRequester {
  agentId: string;
  labels: readonly string[];
  /** @default null */
  keyName?: string | null;
}

/** What a `fetchWork` long-poll resolves to. */
export interface FetchResult {
  assignment: Assignment | null;
  cancel: string[];
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

interface Waiter {
  agentId: string;
  labels: readonly string[];
  keyName: string | null;
  resolve: (r: FetchResult) => void;
  timer: TimerHandle | null;
  done: boolean;
}

/**
 * The in-memory run queue and the `fetchWork` long-polls (the database stays the truth; this is
 * rebuilt from it at start with {@link load}).
 *
 * - FIFO by run id (ULIDs sort by creation) among *eligible* runs: the workflow has fewer than
 *   `maxActiveRuns` runs ASSIGNED/RUNNING, and the agent carries every label in `agentLabels`.
 * - A parked `fetchWork` is answered the moment a run becomes eligible for it (trigger, a run
 *   finishing, a lease expiring), never by polling.
 * - Each assignment gets a random token and a lease; {@link expireLeases} puts unconfirmed runs
 *   back in the queue, after which the old token is refused (`STALE_ASSIGNMENT`).
 * Reservations are made synchronously in memory before the store write, so two concurrent
 * fetches can never take the same run.
 */
export class Dispatcher {
  private readonly entries = new Map<string, ActiveEntry>();
  /** Ids of QUEUED runs, sorted ascending. */
  private queued: string[] = [];
  private waiters: Waiter[] = [];
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
  }

  /**
   * Rebuild from the store's active runs. Leases of ASSIGNED runs restart from now: an agent
   * that got the assignment just before a restart may still confirm it.
   */
  load(active: readonly ActiveRun[]): void {
    const now = this.clock.now();
    for (const a of active) {
      const entry: ActiveEntry = { ...a };
      if (entry.run.status === "ASSIGNED")
        entry.leaseExpiresAt = Math.max(entry.leaseExpiresAt ?? 0, now + this.leaseMs);
      this.entries.set(a.run.runId, entry);
      if (a.run.status === "QUEUED") this.queued.push(a.run.runId);
    }
    this.queued.sort();
  }

  /** The tracked entry of a non-terminal run. */
  get(runId: string): ActiveEntry | undefined {
    return this.entries.get(runId);
  }

  /** Runs an agent holds (ASSIGNED or RUNNING). */
  byAgent(agentId: string): ActiveEntry[] {
    return this.all().filter((e) => e.run.agentId === agentId && HELD_RUN_STATUSES.includes(e.run.status));
  }

  /** Number of QUEUED runs. */
  queuedCount(): number {
    return this.queued.length;
  }

  /** Track a newly committed QUEUED run and hand it out if someone waits. */
  enqueue(run: RunRecord, workflow: WorkflowDefinition): void {
    if (run.status !== "QUEUED" || this.entries.has(run.runId)) return;
    this.entries.set(run.runId, {
      run,
      workflow,
      token: null,
      leaseKey: null,
      leaseExpiresAt: null,
      cancelRequested: false,
    });
    insertSorted(this.queued, run.runId);
    this.pump();
  }

  /** Stop tracking a run (it became terminal) and use the freed slot. */
  remove(runId: string): ActiveEntry | undefined {
    const e = this.entries.get(runId);
    if (e === undefined) return undefined;
    this.entries.delete(runId);
    this.cancelSentByFetch.delete(runId);
    if (e.run.status === "QUEUED") removeSorted(this.queued, runId);
    this.pump();
    return e;
  }

  /** Flag a RUNNING run for cancellation and tell its agent now (pending fetchWork, if any). */
  requestCancel(runId: string): void {
    const e = this.entries.get(runId);
    if (e === undefined || e.run.status !== "RUNNING") return;
    e.cancelRequested = true;
    const agentId = e.run.agentId;
    if (agentId === null) return;
    const cancel = this.cancelsFor(agentId);
    for (const w of this.waiters) {
      if (w.agentId === agentId && !w.done) {
        this.cancelSentByFetch.add(runId);
        this.finish(w, { assignment: null, cancel });
      }
    }
    this.waiters = this.waiters.filter((w) => !w.done);
  }

  /** Answer an agent's parked fetchWork calls with nothing (it was declared lost). */
  dropWaiters(agentId: string): void {
    for (const w of this.waiters) if (w.agentId === agentId) this.finish(w, { assignment: null, cancel: [] });
    this.waiters = this.waiters.filter((w) => !w.done);
  }

  /** Runs this agent must stop: RUNNING on it with a cancel requested. */
  cancelsFor(agentId: string): string[] {
    return this.all()
      .filter((e) => e.run.agentId === agentId && e.run.status === "RUNNING" && e.cancelRequested)
      .map((e) => e.run.runId);
  }

  /**
   * Long-poll for work: resolves at once with the oldest eligible run (or pending cancels), else
   * when one becomes eligible, else `{assignment: null}` after `waitMs` or when `signal` aborts.
   */
  fetchWork(agent: WorkRequester, waitMs: number, signal?: AbortSignal): Promise<FetchResult> {
    if (this.closed) return Promise.reject(shuttingDown("fetch again from the next one"));
    return new Promise<FetchResult>((resolve) => {
      const waiter: Waiter = {
        agentId: agent.agentId,
        labels: agent.labels,
        keyName: agent.keyName ?? null,
        resolve,
        timer: null,
        done: false,
      };
      // New cancel requests end the long-poll at once, each only once (heartbeats repeat them),
      // so an agent busy stopping a run does not spin on fetchWork.
      const fresh = this.cancelsFor(agent.agentId).filter((id) => !this.cancelSentByFetch.has(id));
      for (const id of fresh) this.cancelSentByFetch.add(id);
      const cancel = fresh.length > 0 ? this.cancelsFor(agent.agentId) : [];
      if (cancel.length > 0) {
        // Cancels first; the agent fetches again right after.
        const entry = this.pick(agent.labels);
        if (entry === undefined) {
          this.finish(waiter, { assignment: null, cancel });
          return;
        }
        this.assign(waiter, entry);
        return;
      }
      const entry = this.pick(agent.labels);
      if (entry !== undefined) {
        this.assign(waiter, entry);
        return;
      }
      if (waitMs <= 0) {
        this.finish(waiter, { assignment: null, cancel: [] });
        return;
      }
      waiter.timer = this.clock.setTimer(() => {
        this.finish(waiter, { assignment: null, cancel: this.cancelsFor(agent.agentId) });
        this.waiters = this.waiters.filter((w) => w !== waiter);
      }, waitMs);
      signal?.addEventListener(
        "abort",
        () => {
          this.finish(waiter, { assignment: null, cancel: [] });
          this.waiters = this.waiters.filter((w) => w !== waiter);
        },
        { once: true },
      );
      this.waiters.push(waiter);
    });
  }

  /**
   * Confirm an assignment: ASSIGNED -> RUNNING (PENDING task rows created). With `keyName`
   * (authentication on), only the key that fetched it may confirm.
   * @throws CdktrError STALE_ASSIGNMENT when the token is not current (lease expired, cancelled,
   * reassigned) or belongs to another agent; PERMISSION_DENIED when another key fetched it;
   * RUN_NOT_FOUND for unknown runs.
   */
  async confirm(agentId: string, runId: string, token: string, keyName: string | null = null): Promise<RunRecord> {
    const e = this.entries.get(runId);
    const now = this.clock.now();
    if (keyName !== null && e !== undefined && e.token === token && e.leaseKey !== keyName) {
      throw notLeasedTo(runId, keyName);
    }
    if (e !== undefined && e.run.status === "ASSIGNED" && e.token === token && e.run.agentId === agentId) {
      if (e.leaseExpiresAt !== null && now > e.leaseExpiresAt) {
        this.requeue(e);
        throw staleAssignment(runId, "its lease expired");
      }
      e.run = { ...e.run, status: "RUNNING" };
      try {
        const { run, tasks } = await this.store.confirmAssignment(
          runId,
          agentId,
          token,
          Object.keys(e.workflow.tasks),
          keyName,
        );
        if (this.entries.get(runId) === e) e.run = run;
        this.onRunChanged(run);
        this.onTasksChanged(run.workflowId, tasks);
        return run;
      } catch (err) {
        if (isCdktrError(err) && err.retryable) {
          // Not stored (full disk, shutdown): the database still says ASSIGNED, so does memory;
          // the agent sends the confirm again.
          if (this.entries.get(runId) === e && e.run.status === "RUNNING") e.run = { ...e.run, status: "ASSIGNED" };
          throw err;
        }
        this.logger.warn("confirm refused by the store", { runId, error: errorMessage(err) });
        this.remove(runId);
        throw err;
      }
    }
    if (e !== undefined && e.run.status === "RUNNING" && e.token === token && e.run.agentId === agentId) {
      return (await this.store.confirmAssignment(runId, agentId, token, Object.keys(e.workflow.tasks), keyName)).run;
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

  /** Put every ASSIGNED run whose lease has passed back in the queue. Returns their ids. */
  expireLeases(): string[] {
    const now = this.clock.now();
    const expired: string[] = [];
    for (const e of this.entries.values()) {
      if (e.run.status === "ASSIGNED" && e.leaseExpiresAt !== null && now > e.leaseExpiresAt) expired.push(e.run.runId);
    }
    for (const id of expired) {
      const e = this.entries.get(id);
      if (e !== undefined) this.requeue(e);
    }
    return expired;
  }

  /** Answer every parked fetchWork with nothing and refuse new ones. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters) this.finish(w, { assignment: null, cancel: [] });
    this.waiters = [];
  }

  // -------------------------------------------------------------------------------------------

  /** Every tracked non-terminal run. */
  private all(): ActiveEntry[] {
    return [...this.entries.values()];
  }

  private requeue(e: ActiveEntry): void {
    const token = e.token;
    const agentId = e.run.agentId;
    e.run = { ...e.run, status: "QUEUED", agentId: null };
    e.token = null;
    e.leaseKey = null;
    e.leaseExpiresAt = null;
    insertSorted(this.queued, e.run.runId);
    this.logger.info("assignment lease expired: run back in the queue", { runId: e.run.runId, agentId });
    if (token !== null) {
      this.store.expireAssignment(e.run.runId, token).then(
        (run) => {
          if (run === null) return;
          if (this.entries.get(run.runId) === e && e.run.status === "QUEUED") e.run = run;
          this.onRunChanged(run);
        },
        (err: unknown) =>
          this.logger.error("could not persist a lease expiry", { runId: e.run.runId, error: errorMessage(err) }),
      );
    }
    this.pump();
  }

  private pick(labels: readonly string[]): ActiveEntry | undefined {
    if (this.queued.length === 0) return undefined;
    // Active counts are only needed for workflows with max_active_runs: computed on first use.
    let active: Map<string, number> | null = null;
    const activeOf = (wf: string): number => {
      if (active === null) {
        const counts = new Map<string, number>();
        for (const e of this.entries.values()) {
          if (HELD_RUN_STATUSES.includes(e.run.status))
            counts.set(e.run.workflowId, (counts.get(e.run.workflowId) ?? 0) + 1);
        }
        active = counts;
      }
      return active.get(wf) ?? 0;
    };
    const blocked = new Set<string>();
    for (const id of this.queued) {
      const e = this.entries.get(id);
      if (e === undefined) continue;
      const wf = e.run.workflowId;
      if (blocked.has(wf)) continue;
      const max = e.workflow.maxActiveRuns;
      if (max !== null && activeOf(wf) >= max) {
        // FIFO within a workflow: later runs of it wait behind this one.
        blocked.add(wf);
        continue;
      }
      if (!e.workflow.agentLabels.every((l) => labels.includes(l))) continue;
      return e;
    }
    return undefined;
  }

  private pump(): void {
    if (this.waiters.length === 0 || this.queued.length === 0) return;
    for (const w of [...this.waiters]) {
      if (w.done) continue;
      const e = this.pick(w.labels);
      if (e === undefined) continue;
      this.assign(w, e);
    }
    this.waiters = this.waiters.filter((w) => !w.done);
  }

  private assign(waiter: Waiter, e: ActiveEntry): void {
    const token = randomUUID();
    const lease = this.clock.now() + this.leaseMs;
    removeSorted(this.queued, e.run.runId);
    e.run = { ...e.run, status: "ASSIGNED", agentId: waiter.agentId };
    e.token = token;
    e.leaseKey = waiter.keyName;
    e.leaseExpiresAt = lease;
    waiter.done = true;
    if (waiter.timer !== null) this.clock.clearTimer(waiter.timer);
    this.waiters = this.waiters.filter((w) => w !== waiter);
    // The reply does not wait for this commit: an assignment lost in a crash (or refused by the
    // store) is harmless, because the agent starts nothing before `confirm`, which is committed
    // after this write (same ordered command queue) and checks the token against the database.
    this.store.assignRun(e.run.runId, waiter.agentId, token, lease, waiter.keyName).then(
      (run) => {
        if (run === null) {
          // The database says the run is no longer QUEUED (cancelled meanwhile): forget it; the
          // agent's confirm will be refused.
          this.logger.warn("run vanished from the queue before assignment", { runId: e.run.runId });
          if (this.entries.get(e.run.runId) === e && e.token === token) this.entries.delete(e.run.runId);
          return;
        }
        if (this.entries.get(run.runId) === e && e.token === token) e.run = run;
        this.onRunChanged(run);
      },
      (err: unknown) => {
        this.logger.error("could not persist an assignment", { runId: e.run.runId, error: errorMessage(err) });
        if (this.entries.get(e.run.runId) === e && e.token === token) {
          e.run = { ...e.run, status: "QUEUED", agentId: null };
          e.token = null;
          e.leaseKey = null;
          e.leaseExpiresAt = null;
          insertSorted(this.queued, e.run.runId);
          this.pump();
        }
      },
    );
    waiter.resolve({
      assignment: { run: e.run, workflow: e.workflow, token, leaseExpiresAt: iso(lease) },
      cancel: this.cancelsFor(waiter.agentId),
    });
  }

  private finish(w: Waiter, r: FetchResult): void {
    if (w.done) return;
    w.done = true;
    if (w.timer !== null) this.clock.clearTimer(w.timer);
    w.resolve(r);
  }
}

/** Index of the first element of the sorted `arr` that is not below `id`. */
function lowerBound(arr: readonly string[], id: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((arr[mid] ?? "") < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(arr: string[], id: string): void {
  const i = lowerBound(arr, id);
  if (arr[i] !== id) arr.splice(i, 0, id);
}

function removeSorted(arr: string[], id: string): void {
  const i = lowerBound(arr, id);
  if (arr[i] === id) arr.splice(i, 1);
}

import {
  Subscriber,
  WorkflowsChangedEventSchema,
  clientEnv,
  topics,
  toCdktrError,
  type ApiVerbs,
  type ReplyOf,
  type WorkflowDefinition,
} from "@cdktr/protocol";
import { CronSchedule } from "../cron/cron-schedule.js";
import {
  EventListener,
  type EventListenerEvents,
  type EventListenerOptions,
  type TriggerResult,
} from "../listener/event-listener.js";
import { systemClock, type Clock, type TimerHandle } from "@cdktr/protocol";
import { PriorityQueue } from "./priority-queue.js";

/** The fields of a workflow definition the scheduler reads. */
export type ScheduledWorkflow = Pick<
  WorkflowDefinition,
  "id" | "schedule" | "timezone" | "startTime" | "catchUp" | "jitterMs" | "hash"
>;

/** Options of {@link CronScheduler}. */
export interface CronSchedulerOptions extends EventListenerOptions {
  /** Time source and timers. @default systemClock */
  clock?: Clock;
  /** Period of the fallback refresh of definitions. @default 60000 */
  refreshIntervalMs?: number;
  /**
   * A failed (retryable) trigger is retried until its occurrence is older than this; then it
   * is logged and counted as missed. Occurrences found due at most this long ago (after a
   * restart or a stalled process) are fired late rather than treated as missed. @default 60000
   */
  missGraceMs?: number;
  /** First retry delay of a failed trigger; doubles up to `retryMaxDelayMs`. @default 500 */
  retryInitialDelayMs?: number;
  /** @default 8000 */
  retryMaxDelayMs?: number;
  /** Time one trigger request may take. @default 5000 */
  triggerTimeoutMs?: number;
  /**
   * The principal's publish channel, for instant refresh on `workflows|` announcements; `false`
   * disables it (the periodic refresh remains).
   * @default tcp://<principal host>:<CDKTR_LOGS_PUBLISHING_PORT ?? 5563>
   */
  subscribe?: { endpoint: string } | false;
  /** Longest single sleep; the clock is re-read at least this often. @default 60000 */
  maxSleepMs?: number;
  /** Random source for jitter, in [0, 1). @default Math.random */
  random?: () => number;
  /**
   * Wake this long before a jitter-free occurrence and spin on the clock for the rest, so its
   * triggers leave on the millisecond instead of a timer's usual 1-2 ms late (costs at most
   * this much CPU per distinct occurrence instant). @default 2 with the system clock, 0 with
   * an injected clock
   */
  earlyWakeMs?: number;
}

/** A trigger attempt whose occurrence is given up (older than the grace window). */
export interface MissedOccurrence {
  workflowId: string;
  scheduledFor: string;
  reason: string;
}

/** Events of {@link CronScheduler}, on top of {@link EventListenerEvents}. */
export interface CronSchedulerEvents extends EventListenerEvents {
  /** An occurrence was given up after retries, or skipped by the catch-up policy. */
  missed: MissedOccurrence;
  /** Definitions were (re)loaded from the principal. */
  refreshed: { version: number; full: boolean; scheduled: number };
}

/** One scheduled workflow as the scheduler tracks it. */
export interface ScheduledEntry {
  workflowId: string;
  schedule: string;
  timezone: string;
  /** The next occurrence queued, ISO-8601 UTC, or null while it is being planned. */
  next: string | null;
}

/** Counters of a scheduler since it started. */
export interface CronSchedulerStats {
  triggered: number;
  duplicates: number;
  skipped: number;
  missed: number;
  refused: number;
  retries: number;
  refreshes: number;
  version: number | null;
}

interface Entry {
  def: ScheduledWorkflow;
  schedule: CronSchedule;
  /** Bumped whenever the queued occurrence is replaced; stale queue items are ignored. */
  gen: number;
  next: number | null;
  /**
   * The occurrence after `next`, computed ahead in idle time so that firing `next` only has to
   * queue it; null when not computed yet (or invalidated by a reschedule).
   */
  following: { after: number; at: number | null } | null;
}

interface QueueItem {
  /** When to send (scheduledFor + jitter, or the retry time). */
  at: number;
  scheduledFor: number;
  workflowId: string;
  kind: "fire" | "retry";
  gen: number;
  attempt: number;
  /** A jitter-free occurrence: worth waking early and spinning for (see `earlyWakeMs`). */
  precise: boolean;
}

/** Longest slice of look-ahead computing before yielding to I/O. */
const LOOKAHEAD_SLICE_MS = 4;
/** No look-ahead computing when the next send is closer than this. */
const LOOKAHEAD_GUARD_MS = 20;

/** The idempotency key of a cron occurrence: `cron:<workflowId>:<ISO-8601 UTC instant>`. */
export function occurrenceKey(workflowId: string, scheduledFor: number | Date): string {
  return keyOf(workflowId, new Date(scheduledFor).toISOString());
}

/** {@link occurrenceKey} from the instant already formatted. */
function keyOf(workflowId: string, isoInstant: string): string {
  return `cron:${workflowId}:${isoInstant}`;
}

/**
 * The cron scheduler: an {@link EventListener} that triggers every workflow with a `schedule`
 * at its occurrences (see docs/scheduler.md).
 *
 * - sleeps until the earliest due occurrence (a priority queue), never polls;
 * - reloads definitions on `workflows|` announcements and every `refreshIntervalMs`;
 * - sends each occurrence with `scheduledFor` and the idempotency key
 *   {@link occurrenceKey}, so restarts and side-by-side schedulers never double-trigger;
 * - retries failed triggers with backoff within `missGraceMs`, then counts them missed;
 * - catches up after downtime per workflow (`catchUp.policy` skip/once/all, capped by `max`),
 *   counted from the latest occurrence the principal recorded.
 */
export class CronScheduler extends EventListener<CronSchedulerEvents> {
  readonly #clock: Clock;
  readonly #refreshIntervalMs: number;
  readonly #missGraceMs: number;
  readonly #retryInitialDelayMs: number;
  readonly #retryMaxDelayMs: number;
  readonly #triggerTimeoutMs: number;
  readonly #subscribeOption: { endpoint: string } | false | undefined;
  readonly #maxSleepMs: number;
  readonly #random: () => number;
  readonly #earlyWakeMs: number;

  readonly #entries = new Map<string, Entry>();
  readonly #queue = new PriorityQueue<QueueItem>(
    (a, b) =>
      a.at - b.at ||
      a.scheduledFor - b.scheduledFor ||
      (a.workflowId < b.workflowId ? -1 : a.workflowId > b.workflowId ? 1 : 0),
  );
  readonly #inflight = new Set<Promise<void>>();
  readonly #invalid = new Map<string, string>();
  readonly #loadErrors = new Set<string>();
  #timer: TimerHandle | null = null;
  #timerAt = 0;
  #refreshTimer: TimerHandle | null = null;
  #version: number | null = null;
  #latestAnnounced = -1;
  #loaded = false;
  #refreshing: Promise<void> | null = null;
  #refreshAgain = false;
  #signal: AbortSignal | null = null;
  #subscriber: Subscriber | null = null;
  /** Entries whose `following` occurrence is to be computed ahead, in idle time. */
  readonly #lookahead = new Set<Entry>();
  #lastIso = { t: Number.NaN, iso: "" };
  #lookaheadHandle: ReturnType<typeof setImmediate> | null = null;
  readonly #stats: CronSchedulerStats = {
    triggered: 0,
    duplicates: 0,
    skipped: 0,
    missed: 0,
    refused: 0,
    retries: 0,
    refreshes: 0,
    version: null,
  };

  constructor(options: CronSchedulerOptions = {}) {
    super({ source: "scheduler", ...options });
    this.#clock = options.clock ?? systemClock;
    this.#refreshIntervalMs = options.refreshIntervalMs ?? 60_000;
    this.#missGraceMs = options.missGraceMs ?? 60_000;
    this.#retryInitialDelayMs = options.retryInitialDelayMs ?? 500;
    this.#retryMaxDelayMs = options.retryMaxDelayMs ?? 8000;
    this.#triggerTimeoutMs = options.triggerTimeoutMs ?? 5000;
    this.#subscribeOption = options.subscribe;
    this.#maxSleepMs = options.maxSleepMs ?? 60_000;
    this.#random = options.random ?? Math.random;
    this.#earlyWakeMs = Math.max(0, options.earlyWakeMs ?? (this.#clock === systemClock ? 2 : 0));
  }

  /** Counters since start. */
  get stats(): Readonly<CronSchedulerStats> {
    return { ...this.#stats, version: this.#version };
  }

  /** True once the first load of definitions succeeded. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** The scheduled workflows and their next occurrence, soonest first. */
  scheduled(): ScheduledEntry[] {
    return [...this.#entries.values()]
      .map((e) => ({
        workflowId: e.def.id,
        schedule: e.schedule.expression,
        timezone: e.schedule.timezone,
        next: e.next === null ? null : new Date(e.next).toISOString(),
      }))
      .sort((a, b) => (a.next ?? "~").localeCompare(b.next ?? "~") || a.workflowId.localeCompare(b.workflowId));
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    this.#startSubscriber(signal);
    this.#armRefresh();
    void this.#initialLoad(signal);
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    if (this.#timer !== null) this.#clock.clearTimer(this.#timer);
    if (this.#refreshTimer !== null) this.#clock.clearTimer(this.#refreshTimer);
    this.#timer = null;
    this.#refreshTimer = null;
    if (this.#lookaheadHandle !== null) clearImmediate(this.#lookaheadHandle);
    this.#lookaheadHandle = null;
    this.#lookahead.clear();
    this.#subscriber?.close();
    this.#subscriber = null;
    // in-flight triggers are bounded by triggerTimeoutMs
    await Promise.allSettled([...this.#inflight]);
    this.#queue.clear();
    this.#entries.clear();
    this.#loaded = false;
    this.#version = null;
    this.#latestAnnounced = -1;
  }

  /**
   * Reload definitions now: changes since the last known version, or everything the first time.
   * Concurrent calls are coalesced. @throws CdktrError when the principal cannot be reached
   */
  async refresh(): Promise<void> {
    if (this.#refreshing !== null) {
      this.#refreshAgain = true;
      return this.#refreshing;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          this.#refreshAgain = false;
          await this.#refreshOnce();
        } while (this.#refreshAgain);
      } finally {
        this.#refreshing = null;
      }
    };
    this.#refreshing = run();
    return this.#refreshing;
  }

  // --- loading ---------------------------------------------------------------------------------

  async #initialLoad(signal: AbortSignal): Promise<void> {
    let delay = 500;
    while (!signal.aborted && !this.#loaded) {
      try {
        await this.refresh();
        return;
      } catch (e) {
        const err = toCdktrError(e);
        this.logger.warn("cannot load workflows from the principal; retrying", {
          code: err.code,
          error: err.message,
          retryInMs: delay,
        });
        await this.#sleep(delay, signal);
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const onAbort = (): void => {
        this.#clock.clearTimer(handle);
        resolve();
      };
      const handle = this.#clock.setTimer(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  #armRefresh(): void {
    this.#refreshTimer = this.#clock.setTimer(() => {
      this.#refreshTimer = null;
      if (this.#signal?.aborted) return;
      if (this.#loaded) {
        this.refresh().catch((e: unknown) => {
          const err = toCdktrError(e);
          this.logger.warn("periodic refresh failed", { code: err.code, error: err.message });
        });
      }
      this.#armRefresh();
    }, this.#refreshIntervalMs);
  }

  #startSubscriber(signal: AbortSignal): void {
    const opt = this.#subscribeOption;
    if (opt === false) return;
    let endpoint: string;
    try {
      if (opt !== undefined) endpoint = opt.endpoint;
      else {
        const env = clientEnv(this.env);
        const host = this.principalAddress?.host ?? hostOf(this.principal.endpoint) ?? env.host;
        endpoint = `tcp://${host}:${env.publishPort}`;
      }
    } catch (e) {
      this.logger.warn("no workflow announcements: cannot work out the publish endpoint", {
        error: toCdktrError(e).message,
      });
      return;
    }
    const sub = new Subscriber({ endpoint, logger: this.logger });
    this.#subscriber = sub;
    sub.connect();
    sub.subscribe(topics.workflows());
    this.logger.debug("subscribed to workflow announcements", { endpoint });
    void (async () => {
      try {
        for await (const msg of sub) {
          if (signal.aborted) break;
          const parsed = WorkflowsChangedEventSchema.safeParse(msg.body);
          if (!parsed.success) {
            this.logger.warn("ignoring a malformed workflows announcement", { topic: msg.topic });
            continue;
          }
          // equal: already seen; lower: the principal restarted with a new store (reloaded below)
          if (this.#version !== null && parsed.data.version === this.#version) continue;
          this.#latestAnnounced = Math.max(this.#latestAnnounced, parsed.data.version);
          this.logger.debug("workflows changed", {
            version: parsed.data.version,
            changed: parsed.data.changed,
            removed: parsed.data.removed,
          });
          if (!this.#loaded && this.#refreshing === null) continue; // the initial load's retry will see it
          this.refresh().catch((e: unknown) => {
            const err = toCdktrError(e);
            this.logger.warn("refresh after announcement failed; the periodic refresh will retry", {
              code: err.code,
              error: err.message,
            });
          });
        }
      } catch (e) {
        if (!signal.aborted)
          this.logger.warn("workflow announcements stopped; relying on periodic refresh", {
            error: toCdktrError(e).message,
          });
      }
    })();
  }

  async #refreshOnce(): Promise<void> {
    const req = this.#version === null ? {} : { sinceVersion: this.#version };
    const reply = await this.principal.request("listWorkflows", req, { timeoutMs: this.#triggerTimeoutMs });
    if (this.#signal?.aborted) return;
    if (this.#version !== null && reply.version < this.#version && !reply.full) {
      // the principal's store went back in time (a new database): reload everything
      this.logger.warn("the principal's workflow version went backwards; reloading all workflows", {
        was: this.#version,
        now: reply.version,
      });
      this.#version = null;
      this.#latestAnnounced = -1;
      this.#refreshAgain = true;
      return;
    }
    this.#stats.refreshes++;
    this.#apply(reply);
    this.#version = reply.version;
    // an announcement newer than this reply arrived while it was in flight
    if (this.#latestAnnounced > reply.version) this.#refreshAgain = true;
    this.#latestAnnounced = -1;
    if (!this.#loaded) {
      this.#loaded = true;
      this.logger.info("workflows loaded", { version: reply.version, scheduled: this.#entries.size });
    }
    this.emit("refreshed", { version: reply.version, full: reply.full, scheduled: this.#entries.size });
  }

  #apply(reply: ReplyOf<ApiVerbs, "listWorkflows">): void {
    const current = new Set<string>();
    for (const e of reply.errors) {
      const key = `${e.file}:${e.line ?? ""}:${e.column ?? ""}:${e.message}`;
      current.add(key);
      if (!this.#loadErrors.has(key)) {
        this.logger.warn("a workflow file fails to load on the principal", {
          file: e.file,
          line: e.line,
          column: e.column,
          path: e.path,
          error: e.message,
        });
      }
    }
    this.#loadErrors.clear();
    for (const k of current) this.#loadErrors.add(k);

    if (reply.full) {
      const ids = new Set(reply.workflows.map((w) => w.id));
      for (const id of [...this.#entries.keys()]) if (!ids.has(id)) this.#remove(id, "removed");
    }
    for (const id of reply.removed) this.#remove(id, "removed");
    for (const def of reply.workflows) this.#upsert(def);
  }

  #remove(id: string, why: string): void {
    this.#invalid.delete(id);
    if (this.#entries.delete(id)) this.logger.info("workflow unscheduled", { workflowId: id, reason: why });
  }

  #upsert(def: ScheduledWorkflow): void {
    const existing = this.#entries.get(def.id);
    if (def.schedule === null) {
      if (existing !== undefined) this.#remove(def.id, "no schedule");
      return;
    }
    if (existing !== undefined && existing.def.hash === def.hash) return;
    let schedule: CronSchedule;
    try {
      schedule = CronSchedule.parse(
        { schedule: def.schedule, timezone: def.timezone, startTime: def.startTime },
        def.id,
      );
    } catch (e) {
      if (this.#invalid.get(def.id) !== def.hash) {
        this.#invalid.set(def.id, def.hash);
        this.logger.error("invalid schedule: workflow not scheduled", {
          workflowId: def.id,
          schedule: def.schedule,
          error: e instanceof Error ? e.message : String(e),
        });
        this.emit("error", e instanceof Error ? e : new Error(String(e)));
      }
      if (existing !== undefined) this.#remove(def.id, "invalid schedule");
      return;
    }
    this.#invalid.delete(def.id);
    if (existing !== undefined) {
      const same =
        existing.schedule.expression === schedule.expression &&
        existing.schedule.timezone === schedule.timezone &&
        existing.schedule.startTime === schedule.startTime;
      existing.def = def;
      if (same) return; // keeps its queued occurrence
      existing.schedule = schedule;
      existing.gen++;
      existing.next = null;
      existing.following = null;
      this.logger.info("workflow rescheduled", { workflowId: def.id, schedule: def.schedule, timezone: def.timezone });
      this.#planFrom(existing, null);
      return;
    }
    const entry: Entry = { def, schedule, gen: 0, next: null, following: null };
    this.#entries.set(def.id, entry);
    this.logger.info("workflow scheduled", { workflowId: def.id, schedule: def.schedule, timezone: def.timezone });
    void this.#planNew(entry);
  }

  /** A workflow seen for the first time by this process: catch up from the principal's record. */
  async #planNew(entry: Entry): Promise<void> {
    const gen = entry.gen;
    let last: number | null = null;
    try {
      const reply = await this.principal.request(
        "listRuns",
        { workflowId: entry.def.id, scheduledOnly: true, order: "desc", limit: 1 },
        { timeoutMs: this.#triggerTimeoutMs },
      );
      const s = reply.runs[0]?.scheduledFor;
      if (s !== undefined && s !== null) last = Date.parse(s);
    } catch (e) {
      const err = toCdktrError(e);
      this.logger.warn("cannot read the last scheduled run; no catch-up for this workflow", {
        workflowId: entry.def.id,
        code: err.code,
        error: err.message,
      });
    }
    if (this.#entries.get(entry.def.id) !== entry || entry.gen !== gen || this.#signal?.aborted) return;
    this.#planFrom(entry, last);
  }

  // --- planning and firing ---------------------------------------------------------------------

  /**
   * Fire what is due after `last` (the latest occurrence already handled, or null for none) and
   * queue the next occurrence. Occurrences due within `missGraceMs` fire late; older ones follow
   * the workflow's catch-up policy.
   */
  #planFrom(entry: Entry, last: number | null): void {
    const now = this.#clock.now();
    const id = entry.def.id;
    if (last !== null && last < now) {
      // (last, graceEnd] is missed: the catch-up policy decides; (graceEnd, now] fires late.
      const graceEnd = now - this.#missGraceMs - 1;
      const firstMissed = last < graceEnd ? entry.schedule.nextAfter(last) : null;
      if (firstMissed !== null && firstMissed <= graceEnd) {
        const { policy, max } = entry.def.catchUp;
        const fire = entry.schedule.latest(last, graceEnd, policy === "skip" ? 0 : policy === "once" ? 1 : max);
        const firstFired = fire[0];
        if (firstFired !== firstMissed) {
          const from = new Date(firstMissed).toISOString();
          const until = new Date(firstFired === undefined ? graceEnd : firstFired - 1).toISOString();
          this.#stats.missed++;
          this.logger.warn("occurrences missed while down were not caught up (catch-up policy)", {
            workflowId: id,
            policy,
            from,
            until,
          });
          this.emit("missed", {
            workflowId: id,
            scheduledFor: from,
            reason: `catch-up policy "${policy}": occurrences from ${from} to ${until} not run`,
          });
        }
        for (const t of fire) {
          this.logger.info("catching up a missed occurrence", {
            workflowId: id,
            scheduledFor: new Date(t).toISOString(),
            policy,
          });
          this.#launch(id, t, 1);
        }
      }
      for (const t of entry.schedule.between(Math.max(last, graceEnd), now)) this.#launch(id, t, 1);
    }
    entry.following = null;
    this.#queueNext(entry, entry.schedule.nextAfter(Math.max(now, last ?? now)));
    this.#arm();
    this.#scheduleLookahead();
  }

  /** Queue `next` as the entry's next occurrence (with its jitter); null: the schedule ended. */
  #queueNext(entry: Entry, next: number | null): void {
    entry.next = next;
    if (next === null) {
      this.logger.info("schedule has no further occurrence", { workflowId: entry.def.id });
      return;
    }
    const jitter = entry.def.jitterMs > 0 ? Math.floor(this.#random() * (entry.def.jitterMs + 1)) : 0;
    this.#queue.push({
      at: next + jitter,
      scheduledFor: next,
      workflowId: entry.def.id,
      kind: "fire",
      gen: entry.gen,
      attempt: 1,
      precise: jitter === 0,
    });
    this.#lookahead.add(entry);
  }

  /**
   * After `fired` was sent: queue the entry's next occurrence, from the look-ahead when it was
   * computed. When the process fell behind (the next one is already due), the general
   * {@link #planFrom} fires what is due and applies the catch-up policy.
   */
  #planAfterFire(entry: Entry, fired: number, now: number): void {
    const ahead = entry.following;
    entry.following = null;
    const next = ahead !== null && ahead.after === fired ? ahead.at : entry.schedule.nextAfter(fired);
    if (next !== null && next <= now) {
      this.#planFrom(entry, fired);
      return;
    }
    this.#queueNext(entry, next);
  }

  /** Compute the `following` occurrences of newly queued entries soon, off the send path. */
  #scheduleLookahead(): void {
    if (this.#lookaheadHandle !== null || this.#lookahead.size === 0 || this.#signal?.aborted) return;
    this.#lookaheadHandle = setImmediate(() => this.#runLookahead());
  }

  /**
   * Look-ahead in slices of at most {@link LOOKAHEAD_SLICE_MS}, yielding to I/O in between, and
   * never when a send is due within {@link LOOKAHEAD_GUARD_MS} (the next timer resumes it).
   */
  #runLookahead(): void {
    this.#lookaheadHandle = null;
    if (this.#signal?.aborted) return;
    const sliceEnd = performance.now() + LOOKAHEAD_SLICE_MS;
    for (const entry of this.#lookahead) {
      const head = this.#queue.peek();
      if (head !== undefined && head.at - this.#clock.now() < LOOKAHEAD_GUARD_MS) return;
      if (performance.now() >= sliceEnd) {
        this.#scheduleLookahead();
        return;
      }
      this.#lookahead.delete(entry);
      const next = entry.next;
      if (next === null || entry.following?.after === next || this.#entries.get(entry.def.id) !== entry) continue;
      entry.following = { after: next, at: entry.schedule.nextAfter(next) };
    }
  }

  /** (Re)arm the single timer for the earliest queue item; sleeps are capped by maxSleepMs. */
  #arm(): void {
    if (this.#signal?.aborted) return;
    const head = this.#queue.peek();
    if (head === undefined) {
      if (this.#timer !== null) this.#clock.clearTimer(this.#timer);
      this.#timer = null;
      return;
    }
    const now = this.#clock.now();
    // inside the early window already (a spin gave up): wait for the instant itself
    const early = head.precise && head.at - this.#earlyWakeMs > now ? this.#earlyWakeMs : 0;
    const wakeAt = Math.min(head.at - early, now + this.#maxSleepMs);
    if (this.#timer !== null) {
      if (this.#timerAt <= wakeAt) return; // already waking early enough
      this.#clock.clearTimer(this.#timer);
    }
    this.#timerAt = wakeAt;
    this.#timer = this.#clock.setTimer(() => this.#onTimer(), Math.max(0, wakeAt - now));
  }

  /**
   * Send every due trigger first; plan the next occurrences of the workflows that fired only
   * once the send queue has handed the burst to the socket (`setImmediate` runs after the
   * queue's microtasks): planning never delays a send of the same instant.
   */
  #onTimer(): void {
    this.#timer = null;
    if (this.#signal?.aborted) return;
    let now = this.#clock.now();
    const first = this.#queue.peek();
    if (first?.precise && first.at > now && first.at - now <= this.#earlyWakeMs) now = this.#spinUntil(first.at);
    const fired: { entry: Entry; item: QueueItem }[] = [];
    for (let head = this.#queue.peek(); head !== undefined && head.at <= now; head = this.#queue.peek()) {
      this.#queue.pop();
      if (head.kind === "fire") {
        const entry = this.#entries.get(head.workflowId);
        if (entry === undefined || entry.gen !== head.gen) continue; // rescheduled or removed
        fired.push({ entry, item: head });
      }
      this.#launch(head.workflowId, head.scheduledFor, head.attempt);
    }
    if (fired.length === 0) {
      this.#arm();
      return;
    }
    const lead = (fired[0] as { item: QueueItem }).item;
    this.logger.debug("occurrences sent", {
      count: fired.length,
      scheduledFor: new Date(lead.scheduledFor).toISOString(),
      lastSentAfterMs: this.#clock.now() - lead.at,
    });
    const signal = this.#signal;
    setImmediate(() => this.#afterFire(fired, signal));
  }

  /**
   * Queue the next occurrences of the workflows that just fired, and re-arm. A workflow
   * rescheduled or removed in the meantime (another entry, or another `gen`) is skipped.
   */
  #afterFire(fired: readonly { entry: Entry; item: QueueItem }[], signal: AbortSignal | null): void {
    if (signal !== this.#signal || signal?.aborted) return;
    const now = this.#clock.now();
    for (const { entry, item } of fired) {
      if (this.#entries.get(entry.def.id) === entry && entry.gen === item.gen)
        this.#planAfterFire(entry, item.scheduledFor, now);
    }
    this.#arm();
    this.#scheduleLookahead();
  }

  /**
   * Busy-wait until the clock reads `at` (at most `earlyWakeMs` + 2 ms of real time, so a
   * clock that does not move cannot hang the process). Returns the clock's time.
   */
  #spinUntil(at: number): number {
    const limit = performance.now() + this.#earlyWakeMs + 2;
    let now = this.#clock.now();
    while (now < at && performance.now() < limit) now = this.#clock.now();
    return now;
  }

  /** Send one trigger in the background (concurrently with everything else). */
  #launch(workflowId: string, scheduledFor: number, attempt: number): void {
    const p: Promise<void> = this.#trigger(workflowId, scheduledFor, attempt).then(
      () => {
        this.#inflight.delete(p);
      },
      (e: unknown) => {
        this.#inflight.delete(p);
        this.logger.error("unexpected error while triggering", { workflowId, error: toCdktrError(e).message });
      },
    );
    this.#inflight.add(p);
  }

  /** ISO-8601 form of an instant; the last one is kept (a burst shares its instant). */
  #isoOf(t: number): string {
    if (t !== this.#lastIso.t) this.#lastIso = { t, iso: new Date(t).toISOString() };
    return this.#lastIso.iso;
  }

  async #trigger(workflowId: string, scheduledFor: number, attempt: number): Promise<void> {
    const iso = this.#isoOf(scheduledFor);
    const sentAt = this.#clock.now();
    const result: TriggerResult = await this.runWorkflow(workflowId, {
      idempotencyKey: keyOf(workflowId, iso),
      source: this.source,
      scheduledFor: iso,
      timeoutMs: this.#triggerTimeoutMs,
      retry: false,
    });
    const base = { workflowId, scheduledFor: iso, latenessMs: sentAt - scheduledFor, attempt };
    if (result.success) {
      if (result.skipped) {
        this.#stats.skipped++;
        this.logger.warn("occurrence skipped by the workflow's overlap policy", { ...base, runId: result.runId });
      } else {
        if (result.duplicate) this.#stats.duplicates++;
        else this.#stats.triggered++;
        this.logger.info(result.duplicate ? "occurrence already triggered" : "triggered", {
          ...base,
          runId: result.runId,
          duplicate: result.duplicate,
        });
      }
      return;
    }
    const error = result.error ?? { code: "INTERNAL", message: "unknown failure", retryable: true };
    if (!error.retryable) {
      this.#stats.refused++;
      this.logger.error("trigger refused; occurrence dropped", { ...base, code: error.code, error: error.message });
      if (error.code === "WORKFLOW_NOT_FOUND" && this.#loaded) this.refresh().catch(() => undefined);
      return;
    }
    if (this.#signal?.aborted) return;
    const now = this.#clock.now();
    const delay = Math.min(this.#retryMaxDelayMs, this.#retryInitialDelayMs * 2 ** (attempt - 1));
    if (now + delay - scheduledFor <= this.#missGraceMs) {
      this.#stats.retries++;
      this.logger.warn("trigger failed; retrying", {
        ...base,
        code: error.code,
        error: error.message,
        retryInMs: delay,
      });
      this.#queue.push({
        at: now + delay,
        scheduledFor,
        workflowId,
        kind: "retry",
        gen: 0,
        attempt: attempt + 1,
        precise: false,
      });
      this.#arm();
      return;
    }
    this.#stats.missed++;
    this.logger.error("occurrence missed: trigger kept failing past the grace window", {
      ...base,
      code: error.code,
      error: error.message,
      missGraceMs: this.#missGraceMs,
    });
    this.emit("missed", { workflowId, scheduledFor: iso, reason: `${error.code}: ${error.message}` });
  }
}

function hostOf(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined) return undefined;
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(endpoint);
  return m?.[1];
}

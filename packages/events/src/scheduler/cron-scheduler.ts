import {
  WorkflowsChangedEventSchema,
  backoffDelay,
  systemClock,
  topics,
  toCdktrError,
  type ApiVerbs,
  type Clock,
  type ReplyOf,
  type Subscriber,
  type TimerHandle,
} from "@cdktr/protocol";
import { EventListener, type EventListenerEvents, type EventListenerOptions } from "../listener/event-listener.js";
import { OccurrencePlanner } from "./occurrence-planner.js";
import type { CronSchedulerStats, MissedOccurrence, ScheduledEntry, SchedulerContext } from "./scheduler-types.js";
import { TimerLoop } from "./timer-loop.js";
import { TriggerSender, keyOf } from "./trigger-sender.js";

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
  /**
   * First retry delay of a failed trigger; doubles up to `retryMaxDelayMs`. Each delay is drawn
   * from its upper half with `random` (equal jitter, see `backoffDelay`). @default 500
   */
  retryInitialDelayMs?: number;
  /** Largest retry delay of a failed trigger. @default 8000 */
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
  /** Random source for jitter (occurrence `jitterMs` and retry backoff), in [0, 1). @default Math.random */
  random?: () => number;
  /**
   * Wake this long before a jitter-free occurrence and spin on the clock for the rest, so its
   * triggers leave on the millisecond instead of a timer's usual 1-2 ms late (costs at most
   * this much CPU per distinct occurrence instant). @default 2 with the system clock, 0 with
   * an injected clock
   */
  earlyWakeMs?: number;
}

/** Events of {@link CronScheduler}, on top of {@link EventListenerEvents}. */
export interface CronSchedulerEvents extends EventListenerEvents {
  /** An occurrence was given up after retries, or skipped by the catch-up policy. */
  missed: MissedOccurrence;
  /** Definitions were (re)loaded from the principal. */
  refreshed: { version: number; full: boolean; scheduled: number };
}

/** The local key a {@link CronScheduler} looks for when given none (a `scheduler` key). */
export const SCHEDULER_KEY_NAME = "local-scheduler";

/** Backoff of the first load of definitions while the principal is unreachable. */
const INITIAL_LOAD_BACKOFF = { initialMs: 500, maxMs: 10_000 } as const;

/** The idempotency key of a cron occurrence: `cron:<workflowId>:<ISO-8601 UTC instant>`. */
export function occurrenceKey(workflowId: string, scheduledFor: number | Date): string {
  return keyOf(workflowId, new Date(scheduledFor).toISOString());
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
 *
 * This class loads the definitions; {@link OccurrencePlanner} plans occurrences and catch-up,
 * {@link TimerLoop} wakes up when sends are due and {@link TriggerSender} sends and retries them.
 */
export class CronScheduler extends EventListener<CronSchedulerEvents> {
  readonly #clock: Clock;
  readonly #refreshIntervalMs: number;
  readonly #triggerTimeoutMs: number;
  readonly #subscribeOption: { endpoint: string } | false | undefined;
  readonly #random: () => number;
  readonly #loop: TimerLoop;
  readonly #sender: TriggerSender;
  readonly #planner: OccurrencePlanner;

  readonly #loadErrors = new Set<string>();
  #refreshTimer: TimerHandle | null = null;
  #version: number | null = null;
  #latestAnnounced = -1;
  #loaded = false;
  #refreshing: Promise<void> | null = null;
  #refreshAgain = false;
  #signal: AbortSignal | null = null;
  #subscriber: Subscriber | null = null;
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
    super({ source: "scheduler", keyName: SCHEDULER_KEY_NAME, ...options });
    this.#clock = options.clock ?? systemClock;
    this.#refreshIntervalMs = options.refreshIntervalMs ?? 60_000;
    const missGraceMs = options.missGraceMs ?? 60_000;
    this.#triggerTimeoutMs = options.triggerTimeoutMs ?? 5000;
    this.#subscribeOption = options.subscribe;
    this.#random = options.random ?? Math.random;
    const ctx: SchedulerContext = {
      clock: this.#clock,
      logger: this.logger,
      random: this.#random,
      stats: this.#stats,
      signal: () => this.#signal,
      missed: (m) => this.emit("missed", m),
    };
    this.#loop = new TimerLoop({
      clock: this.#clock,
      maxSleepMs: options.maxSleepMs ?? 60_000,
      earlyWakeMs: Math.max(0, options.earlyWakeMs ?? (this.#clock === systemClock ? 2 : 0)),
      active: () => this.#signal?.aborted !== true,
      onDue: (item) => this.#planner.onDue(item),
      afterDue: () => this.#planner.afterDue(),
    });
    this.#sender = new TriggerSender({
      ctx,
      source: this.source,
      missGraceMs,
      retryInitialDelayMs: options.retryInitialDelayMs ?? 500,
      retryMaxDelayMs: options.retryMaxDelayMs ?? 8000,
      triggerTimeoutMs: this.#triggerTimeoutMs,
      runWorkflow: (workflowId, opts) => this.runWorkflow(workflowId, opts),
      runWorkflows: (triggers, opts) => this.runWorkflows(triggers, opts),
      retry: (item) => {
        this.#loop.push(item);
        this.#loop.arm();
      },
      workflowNotFound: () => {
        if (this.#loaded) this.refresh().catch(() => undefined);
      },
    });
    this.#planner = new OccurrencePlanner({
      ctx,
      missGraceMs,
      triggerTimeoutMs: this.#triggerTimeoutMs,
      principal: () => this.principal,
      loop: this.#loop,
      sender: this.#sender,
      invalidSchedule: (e) => this.emit("error", e),
    });
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
    return this.#planner.scheduled();
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
    this.#loop.stop();
    if (this.#refreshTimer !== null) this.#clock.clearTimer(this.#refreshTimer);
    this.#refreshTimer = null;
    this.#planner.stopLookahead();
    this.#subscriber?.close();
    this.#subscriber = null;
    // in-flight triggers are bounded by triggerTimeoutMs
    await this.#sender.settled();
    this.#loop.clear();
    this.#planner.clear();
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
    for (let attempt = 1; !signal.aborted && !this.#loaded; attempt++) {
      try {
        await this.refresh();
        return;
      } catch (e) {
        const err = toCdktrError(e);
        const delay = backoffDelay(attempt, INITIAL_LOAD_BACKOFF, this.#random);
        this.logger.warn("cannot load workflows from the principal; retrying", {
          code: err.code,
          error: err.message,
          retryInMs: delay,
        });
        await this.#sleep(delay, signal);
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
    const sub = this.openSubscriber(opt, signal, "no workflow announcements");
    if (sub === null) return;
    this.#subscriber = sub;
    sub.subscribe(topics.workflows());
    this.logger.debug("subscribed to workflow announcements", { endpoint: sub.endpoint });
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
      this.logger.info("workflows loaded", { version: reply.version, scheduled: this.#planner.size });
    }
    this.emit("refreshed", { version: reply.version, full: reply.full, scheduled: this.#planner.size });
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
      for (const id of this.#planner.ids()) if (!ids.has(id)) this.#planner.remove(id, "removed");
    }
    for (const id of reply.removed) this.#planner.remove(id, "removed");
    for (const def of reply.workflows) this.#planner.upsert(def);
  }
}

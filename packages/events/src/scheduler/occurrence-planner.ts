import { coerceError, errorMessage, toCdktrError } from "@cdktr/protocol";
import { CronSchedule } from "../cron/cron-schedule.js";
import type { PrincipalRequester } from "../listener/event-listener.js";
import type { TimerLoop } from "./timer-loop.js";
import type { TriggerSender } from "./trigger-sender.js";
import type { Entry, QueueItem, ScheduledEntry, ScheduledWorkflow, SchedulerContext } from "./scheduler-types.js";

/** Options of {@link OccurrencePlanner}. */
export interface OccurrencePlannerOptions {
  ctx: SchedulerContext;
  /** Occurrences due at most this long ago fire late; older ones follow the catch-up policy. */
  missGraceMs: number;
  /** Time the `listRuns` request of a new workflow may take. */
  triggerTimeoutMs: number;
  /** The principal (asked for the latest occurrence it recorded). */
  principal: () => PrincipalRequester;
  loop: TimerLoop;
  sender: TriggerSender;
  /** Report a schedule that cannot be compiled (the scheduler's `error` event). */
  invalidSchedule: (e: Error) => void;
}

/** Longest slice of look-ahead computing before yielding to I/O. */
const LOOKAHEAD_SLICE_MS = 4;
/** No look-ahead computing when the next send is closer than this. */
const LOOKAHEAD_GUARD_MS = 20;

/**
 * The occurrences of the cron scheduler: which workflows are scheduled, the next occurrence of
 * each (queued on the {@link TimerLoop} with its jitter), catch-up after downtime per the
 * workflow's policy, and the occurrence after the next one computed ahead in idle time.
 */
export class OccurrencePlanner {
  readonly #o: OccurrencePlannerOptions;
  readonly #ctx: SchedulerContext;
  readonly #entries = new Map<string, Entry>();
  /** Workflows whose schedule is invalid, with the hash already reported. */
  readonly #invalid = new Map<string, string>();
  /** Entries whose `following` occurrence is to be computed ahead, in idle time. */
  readonly #lookahead = new Set<Entry>();
  #lookaheadHandle: ReturnType<typeof setImmediate> | null = null;
  /** The occurrences fired by the current wake-up of the timer loop. */
  #burst: { entry: Entry; item: QueueItem }[] = [];

  constructor(options: OccurrencePlannerOptions) {
    this.#o = options;
    this.#ctx = options.ctx;
  }

  /** Number of scheduled workflows. */
  get size(): number {
    return this.#entries.size;
  }

  /** Ids of the scheduled workflows. */
  ids(): string[] {
    return [...this.#entries.keys()];
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

  /** Stop computing ahead (the scheduler stops). */
  stopLookahead(): void {
    if (this.#lookaheadHandle !== null) clearImmediate(this.#lookaheadHandle);
    this.#lookaheadHandle = null;
    this.#lookahead.clear();
  }

  /** Forget every scheduled workflow. */
  clear(): void {
    this.#entries.clear();
  }

  /** Unschedule a workflow (`why` is logged). */
  remove(id: string, why: string): void {
    this.#invalid.delete(id);
    if (this.#entries.delete(id)) this.#ctx.logger.info("workflow unscheduled", { workflowId: id, reason: why });
  }

  /**
   * Schedule a new or changed definition: a new workflow catches up from the principal's record,
   * a changed schedule is planned afresh, an unchanged one keeps its queued occurrence.
   */
  upsert(def: ScheduledWorkflow): void {
    const logger = this.#ctx.logger;
    const existing = this.#entries.get(def.id);
    if (def.schedule === null) {
      if (existing !== undefined) this.remove(def.id, "no schedule");
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
        logger.error("invalid schedule: workflow not scheduled", {
          workflowId: def.id,
          schedule: def.schedule,
          error: errorMessage(e),
        });
        this.#o.invalidSchedule(coerceError(e));
      }
      if (existing !== undefined) this.remove(def.id, "invalid schedule");
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
      logger.info("workflow rescheduled", { workflowId: def.id, schedule: def.schedule, timezone: def.timezone });
      this.#planFrom(existing, null);
      return;
    }
    const entry: Entry = { def, schedule, gen: 0, next: null, following: null };
    this.#entries.set(def.id, entry);
    logger.info("workflow scheduled", { workflowId: def.id, schedule: def.schedule, timezone: def.timezone });
    void this.#planNew(entry);
  }

  /**
   * A queue item came due (from the timer loop): send it now. A fired occurrence of a workflow
   * rescheduled or removed since (another entry, or another `gen`) is dropped.
   */
  onDue(item: QueueItem): void {
    if (item.kind === "fire") {
      const entry = this.#entries.get(item.workflowId);
      if (entry === undefined || entry.gen !== item.gen) return; // rescheduled or removed
      this.#burst.push({ entry, item });
    }
    this.#o.sender.launch(item.workflowId, item.scheduledFor, item.attempt);
  }

  /**
   * Every due trigger was sent: plan the next occurrences of the workflows that fired only once
   * the send queue has handed the burst to the socket (`setImmediate` runs after the queue's
   * microtasks), so planning never delays a send of the same instant.
   */
  afterDue(): void {
    const fired = this.#burst;
    if (fired.length === 0) {
      this.#o.loop.arm();
      return;
    }
    this.#burst = [];
    const lead = (fired[0] as { item: QueueItem }).item;
    this.#ctx.logger.debug("occurrences sent", {
      count: fired.length,
      scheduledFor: new Date(lead.scheduledFor).toISOString(),
      lastSentAfterMs: this.#ctx.clock.now() - lead.at,
    });
    const signal = this.#ctx.signal();
    setImmediate(() => this.#afterFire(fired, signal));
  }

  /**
   * Queue the next occurrences of the workflows that just fired, and re-arm. A workflow
   * rescheduled or removed in the meantime (another entry, or another `gen`) is skipped.
   */
  #afterFire(fired: readonly { entry: Entry; item: QueueItem }[], signal: AbortSignal | null): void {
    if (signal !== this.#ctx.signal() || signal?.aborted) return;
    const now = this.#ctx.clock.now();
    for (const { entry, item } of fired) {
      if (this.#entries.get(entry.def.id) === entry && entry.gen === item.gen)
        this.#planAfterFire(entry, item.scheduledFor, now);
    }
    this.#o.loop.arm();
    this.#scheduleLookahead();
  }

  /** A workflow seen for the first time by this process: catch up from the principal's record. */
  async #planNew(entry: Entry): Promise<void> {
    const gen = entry.gen;
    let last: number | null = null;
    try {
      const reply = await this.#o
        .principal()
        .request(
          "listRuns",
          { workflowId: entry.def.id, scheduledOnly: true, order: "desc", limit: 1 },
          { timeoutMs: this.#o.triggerTimeoutMs },
        );
      const s = reply.runs[0]?.scheduledFor;
      if (s !== undefined && s !== null) last = Date.parse(s);
    } catch (e) {
      const err = toCdktrError(e);
      this.#ctx.logger.warn("cannot read the last scheduled run; no catch-up for this workflow", {
        workflowId: entry.def.id,
        code: err.code,
        error: err.message,
      });
    }
    if (this.#entries.get(entry.def.id) !== entry || entry.gen !== gen || this.#ctx.signal()?.aborted) return;
    this.#planFrom(entry, last);
  }

  /**
   * Fire what is due after `last` (the latest occurrence already handled, or null for none) and
   * queue the next occurrence. Occurrences due within `missGraceMs` fire late; older ones follow
   * the workflow's catch-up policy.
   */
  #planFrom(entry: Entry, last: number | null): void {
    const { clock, logger, stats } = this.#ctx;
    const sender = this.#o.sender;
    const now = clock.now();
    const id = entry.def.id;
    if (last !== null && last < now) {
      // (last, graceEnd] is missed: the catch-up policy decides; (graceEnd, now] fires late.
      const graceEnd = now - this.#o.missGraceMs - 1;
      const firstMissed = last < graceEnd ? entry.schedule.nextAfter(last) : null;
      if (firstMissed !== null && firstMissed <= graceEnd) {
        const { policy, max } = entry.def.catchUp;
        const fire = entry.schedule.latest(last, graceEnd, policy === "skip" ? 0 : policy === "once" ? 1 : max);
        const firstFired = fire[0];
        if (firstFired !== firstMissed) {
          const from = new Date(firstMissed).toISOString();
          const until = new Date(firstFired === undefined ? graceEnd : firstFired - 1).toISOString();
          stats.missed++;
          logger.warn("occurrences missed while down were not caught up (catch-up policy)", {
            workflowId: id,
            policy,
            from,
            until,
          });
          this.#ctx.missed({
            workflowId: id,
            scheduledFor: from,
            reason: `catch-up policy "${policy}": occurrences from ${from} to ${until} not run`,
          });
        }
        for (const t of fire) {
          logger.info("catching up a missed occurrence", {
            workflowId: id,
            scheduledFor: new Date(t).toISOString(),
            policy,
          });
          sender.launch(id, t, 1);
        }
      }
      for (const t of entry.schedule.between(Math.max(last, graceEnd), now)) sender.launch(id, t, 1);
    }
    entry.following = null;
    this.#queueNext(entry, entry.schedule.nextAfter(Math.max(now, last ?? now)));
    this.#o.loop.arm();
    this.#scheduleLookahead();
  }

  /** Queue `next` as the entry's next occurrence (with its jitter); null: the schedule ended. */
  #queueNext(entry: Entry, next: number | null): void {
    entry.next = next;
    if (next === null) {
      this.#ctx.logger.info("schedule has no further occurrence", { workflowId: entry.def.id });
      return;
    }
    const jitter = entry.def.jitterMs > 0 ? Math.floor(this.#ctx.random() * (entry.def.jitterMs + 1)) : 0;
    this.#o.loop.push({
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
    if (this.#lookaheadHandle !== null || this.#lookahead.size === 0 || this.#ctx.signal()?.aborted) return;
    this.#lookaheadHandle = setImmediate(() => this.#runLookahead());
  }

  /**
   * Look-ahead in slices of at most {@link LOOKAHEAD_SLICE_MS}, yielding to I/O in between, and
   * never when a send is due within {@link LOOKAHEAD_GUARD_MS} (the next timer resumes it).
   */
  #runLookahead(): void {
    this.#lookaheadHandle = null;
    if (this.#ctx.signal()?.aborted) return;
    const sliceEnd = performance.now() + LOOKAHEAD_SLICE_MS;
    for (const entry of this.#lookahead) {
      const head = this.#o.loop.peek();
      if (head !== undefined && head.at - this.#ctx.clock.now() < LOOKAHEAD_GUARD_MS) return;
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
}

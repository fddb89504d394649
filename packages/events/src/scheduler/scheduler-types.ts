/**
 * The records the parts of the cron scheduler share: the public shapes it reports, and the
 * internal state of a scheduled workflow and of a queued send.
 */
import type { Clock, Logger, WorkflowDefinition } from "@cdktr/protocol";
import type { CronSchedule } from "../cron/cron-schedule.js";

/** The fields of a workflow definition the scheduler reads. */
export type ScheduledWorkflow = Pick<
  WorkflowDefinition,
  "id" | "schedule" | "timezone" | "startTime" | "catchUp" | "jitterMs" | "hash"
>;

/** A trigger attempt whose occurrence is given up (older than the grace window). */
export interface MissedOccurrence {
  workflowId: string;
  scheduledFor: string;
  reason: string;
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

/** A scheduled workflow inside the scheduler (internal). */
export interface Entry {
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

/** A send waiting in the scheduler's queue (internal). */
export interface QueueItem {
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

/** What the parts of one scheduler share (internal). */
export interface SchedulerContext {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Random source in [0, 1) for jitter. */
  readonly random: () => number;
  /** The scheduler's counters, updated in place. */
  readonly stats: CronSchedulerStats;
  /** The signal of the running listening loop; null before the first start. */
  readonly signal: () => AbortSignal | null;
  /** Emit the scheduler's `missed` event. */
  readonly missed: (m: MissedOccurrence) => void;
}

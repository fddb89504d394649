import { backoffDelay, toCdktrError } from "@cdktr/protocol";
import type { RunWorkflowOptions, TriggerResult } from "../listener/event-listener.js";
import type { QueueItem, SchedulerContext } from "./scheduler-types.js";

/** Options of {@link TriggerSender}. */
export interface TriggerSenderOptions {
  ctx: SchedulerContext;
  /** `source` of the triggered runs. */
  source: string;
  /** Retries stop once the occurrence is older than this. */
  missGraceMs: number;
  /** First retry delay; doubles up to `retryMaxDelayMs`, with equal jitter. */
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  /** Time one trigger request may take. */
  triggerTimeoutMs: number;
  /** Send one trigger (the listener's `runWorkflow`). */
  runWorkflow: (workflowId: string, options: RunWorkflowOptions) => Promise<TriggerResult>;
  /** Queue a retry and re-arm the timer. */
  retry: (item: QueueItem) => void;
  /** The principal no longer knows a workflow: reload the definitions. */
  workflowNotFound: () => void;
}

/** The idempotency key of a cron occurrence from its instant already formatted (see `occurrenceKey`). */
export function keyOf(workflowId: string, isoInstant: string): string {
  return `cron:${workflowId}:${isoInstant}`;
}

/**
 * Sends the triggers of the cron scheduler, each in the background with the occurrence's
 * idempotency key, and decides what a failure means: a refusal drops the occurrence, a retryable
 * failure is retried with backoff while the occurrence is within `missGraceMs`, then it is missed.
 */
export class TriggerSender {
  readonly #o: TriggerSenderOptions;
  readonly #inflight = new Set<Promise<void>>();
  #lastIso = { t: Number.NaN, iso: "" };

  constructor(options: TriggerSenderOptions) {
    this.#o = options;
  }

  /** Send one trigger in the background (concurrently with everything else). */
  launch(workflowId: string, scheduledFor: number, attempt: number): void {
    const p: Promise<void> = this.#trigger(workflowId, scheduledFor, attempt).then(
      () => {
        this.#inflight.delete(p);
      },
      (e: unknown) => {
        this.#inflight.delete(p);
        this.#o.ctx.logger.error("unexpected error while triggering", { workflowId, error: toCdktrError(e).message });
      },
    );
    this.#inflight.add(p);
  }

  /** Resolves once every trigger in flight has settled (each is bounded by `triggerTimeoutMs`). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  /** ISO-8601 form of an instant; the last one is kept (a burst shares its instant). */
  #isoOf(t: number): string {
    if (t !== this.#lastIso.t) this.#lastIso = { t, iso: new Date(t).toISOString() };
    return this.#lastIso.iso;
  }

  async #trigger(workflowId: string, scheduledFor: number, attempt: number): Promise<void> {
    const { ctx } = this.#o;
    const { clock, logger, stats } = ctx;
    const iso = this.#isoOf(scheduledFor);
    const sentAt = clock.now();
    const result: TriggerResult = await this.#o.runWorkflow(workflowId, {
      idempotencyKey: keyOf(workflowId, iso),
      source: this.#o.source,
      scheduledFor: iso,
      timeoutMs: this.#o.triggerTimeoutMs,
      retry: false,
    });
    const base = { workflowId, scheduledFor: iso, latenessMs: sentAt - scheduledFor, attempt };
    if (result.success) {
      if (result.skipped) {
        stats.skipped++;
        logger.warn("occurrence skipped by the workflow's overlap policy", { ...base, runId: result.runId });
      } else {
        if (result.duplicate) stats.duplicates++;
        else stats.triggered++;
        logger.info(result.duplicate ? "occurrence already triggered" : "triggered", {
          ...base,
          runId: result.runId,
          duplicate: result.duplicate,
        });
      }
      return;
    }
    const error = result.error ?? { code: "INTERNAL", message: "unknown failure", retryable: true };
    if (!error.retryable) {
      stats.refused++;
      logger.error("trigger refused; occurrence dropped", { ...base, code: error.code, error: error.message });
      if (error.code === "WORKFLOW_NOT_FOUND") this.#o.workflowNotFound();
      return;
    }
    if (ctx.signal()?.aborted) return;
    const now = clock.now();
    const delay = backoffDelay(
      attempt,
      { initialMs: this.#o.retryInitialDelayMs, maxMs: this.#o.retryMaxDelayMs },
      ctx.random,
    );
    if (now + delay - scheduledFor <= this.#o.missGraceMs) {
      stats.retries++;
      logger.warn("trigger failed; retrying", { ...base, code: error.code, error: error.message, retryInMs: delay });
      this.#o.retry({
        at: now + delay,
        scheduledFor,
        workflowId,
        kind: "retry",
        gen: 0,
        attempt: attempt + 1,
        precise: false,
      });
      return;
    }
    stats.missed++;
    logger.error("occurrence missed: trigger kept failing past the grace window", {
      ...base,
      code: error.code,
      error: error.message,
      missGraceMs: this.#o.missGraceMs,
    });
    ctx.missed({ workflowId, scheduledFor: iso, reason: `${error.code}: ${error.message}` });
  }
}

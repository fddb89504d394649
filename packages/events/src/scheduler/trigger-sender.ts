import { backoffDelay, toCdktrError } from "@cdktr/protocol";
import type {
  BatchTrigger,
  RunWorkflowOptions,
  RunWorkflowsOptions,
  TriggerResult,
} from "../listener/event-listener.js";
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
  /** Send many triggers in one request (the listener's `runWorkflows`). */
  runWorkflows: (triggers: BatchTrigger[], options: RunWorkflowsOptions) => Promise<TriggerResult[]>;
  /** Queue a retry and re-arm the timer. */
  retry: (item: QueueItem) => void;
  /** The principal no longer knows a workflow: reload the definitions. */
  workflowNotFound: () => void;
}

/** The idempotency key of a cron occurrence from its instant already formatted (see `occurrenceKey`). */
export function keyOf(workflowId: string, isoInstant: string): string {
  return `cron:${workflowId}:${isoInstant}`;
}

/** One occurrence to send: its workflow, instant and attempt. */
interface Launch {
  workflowId: string;
  scheduledFor: number;
  attempt: number;
}

/**
 * Sends the triggers of the cron scheduler, each with the occurrence's idempotency key, and
 * decides what a failure means: a refusal drops the occurrence, a retryable failure is retried
 * with backoff while the occurrence is within `missGraceMs`, then it is missed. The occurrences
 * launched in one turn of the event loop (those due at the same instant, a catch-up) go in one
 * `runWorkflows` request, stored by the principal together (usually one commit); a lone one goes
 * as `runWorkflow`. A principal that does not know `runWorkflows` (older than this scheduler)
 * gets them one by one from then on.
 */
export class TriggerSender {
  readonly #o: TriggerSenderOptions;
  readonly #inflight = new Set<Promise<void>>();
  #lastIso = { t: Number.NaN, iso: "" };
  /** Launched in this turn, not sent yet. */
  #pending: Launch[] = [];
  /** The principal answered `runWorkflows` with UNKNOWN_VERB: send one by one. */
  #oneByOne = false;

  constructor(options: TriggerSenderOptions) {
    this.#o = options;
  }

  /** Send one trigger in the background (with the others launched in this turn). */
  launch(workflowId: string, scheduledFor: number, attempt: number): void {
    this.#pending.push({ workflowId, scheduledFor, attempt });
    if (this.#pending.length === 1) queueMicrotask(() => this.#flush());
  }

  /** Resolves once every trigger in flight has settled (each is bounded by `triggerTimeoutMs`). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    const sending = batch.length === 1 || this.#oneByOne ? batch.map((l) => this.#sendOne(l)) : [this.#sendMany(batch)];
    for (const s of sending) {
      const p: Promise<void> = s.then(
        () => {
          this.#inflight.delete(p);
        },
        (e: unknown) => {
          this.#inflight.delete(p);
          this.#o.ctx.logger.error("unexpected error while triggering", { error: toCdktrError(e).message });
        },
      );
      this.#inflight.add(p);
    }
  }

  /** ISO-8601 form of an instant; the last one is kept (a burst shares its instant). */
  #isoOf(t: number): string {
    if (t !== this.#lastIso.t) this.#lastIso = { t, iso: new Date(t).toISOString() };
    return this.#lastIso.iso;
  }

  #trigger(l: Launch): BatchTrigger & { idempotencyKey: string; scheduledFor: string } {
    const iso = this.#isoOf(l.scheduledFor);
    return {
      workflowId: l.workflowId,
      idempotencyKey: keyOf(l.workflowId, iso),
      source: this.#o.source,
      scheduledFor: iso,
    };
  }

  async #sendOne(l: Launch): Promise<void> {
    const sentAt = this.#o.ctx.clock.now();
    const { workflowId, ...options } = this.#trigger(l);
    const result = await this.#o.runWorkflow(workflowId, {
      ...options,
      timeoutMs: this.#o.triggerTimeoutMs,
      retry: false,
    });
    this.#handle(l, sentAt, result);
  }

  async #sendMany(batch: Launch[]): Promise<void> {
    const sentAt = this.#o.ctx.clock.now();
    const results = await this.#o.runWorkflows(
      batch.map((l) => this.#trigger(l)),
      { timeoutMs: this.#o.triggerTimeoutMs, retry: false },
    );
    if (results.every((r) => r.error?.code === "UNKNOWN_VERB")) {
      this.#o.ctx.logger.warn("the principal does not know runWorkflows (older version): triggers go one by one");
      this.#oneByOne = true;
      await Promise.all(batch.map((l) => this.#sendOne(l)));
      return;
    }
    batch.forEach((l, i) => {
      const r = results[i];
      if (r !== undefined) this.#handle(l, sentAt, r);
    });
  }

  /** What the result of one occurrence's trigger means: counted, logged, retried or missed. */
  #handle({ workflowId, scheduledFor, attempt }: Launch, sentAt: number, result: TriggerResult): void {
    const { ctx } = this.#o;
    const { clock, logger, stats } = ctx;
    const iso = this.#isoOf(scheduledFor);
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

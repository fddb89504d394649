/**
 * Workflow chaining: start a workflow when a run of another one ends in given states, exactly
 * once per upstream run, across restarts of this listener and failovers of the principal.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from "node:fs";
import { dirname } from "node:path";
import {
  RunEventSchema,
  UsageError,
  backoffDelay,
  errorMessage,
  isTerminalRunStatus,
  toCdktrError,
  topics,
  type BackoffOptions,
  type ChainTrigger,
  type Params,
  type RunRecord,
  type RunStatus,
  type Subscriber,
} from "@cdktr/protocol";
import { EventListener, type EventListenerOptions } from "../listener/event-listener.js";
import { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";

/** One chaining rule: run `workflow` when a run of `after` ends in one of `status`. */
export interface ChainRule {
  /** The upstream workflow. */
  after: string;
  /** The end states that start `workflow` (terminal states only). */
  status: readonly RunStatus[];
  /** The downstream workflow. */
  workflow: string;
  /** Fixed params of the downstream runs. */
  params?: Params;
}

/** Options of {@link RunOutcomeListener}. */
export interface RunOutcomeListenerOptions extends EventListenerOptions {
  /** Ad-hoc rules. */
  rules?: readonly ChainRule[];
  /**
   * Also follow the workflows' own `triggers: [{after, status}]` (loaded from the principal and
   * kept up to date): what the scheduler process does. @default false
   */
  workflowTriggers?: boolean;
  /**
   * File keeping how far the finished runs have been handled, so that a restarted listener
   * catches up with the runs that ended while it was down; null keeps it in memory (a restart then
   * catches up only `lateMarginMs`). Written atomically.
   */
  stateFile: string | null;
  /**
   * The publish channel (run outcomes as they happen); false: only the periodic sweeps.
   * @default the principal's host and `CDKTR_LOGS_PUBLISHING_PORT`, following the leader
   */
  subscribe?: { endpoint: string } | false;
  /** Time between sweeps of the finished runs (the catch-up that makes the channel's losses harmless). @default 10000 */
  sweepIntervalMs?: number;
  /**
   * How far behind the handled mark each sweep looks again: runs whose end is recorded late (an
   * agent's report after a reconnect, clocks apart) within this margin are still found. @default 300000
   */
  lateMarginMs?: number;
  /** Deadline of each trigger. @default 5000 */
  triggerTimeoutMs?: number;
  /** Backoff of sweeps after failures. @default {initialMs: 500, maxMs: 30000} */
  backoff?: BackoffOptions;
}

/** Counters of a {@link RunOutcomeListener}. */
export interface RunOutcomeListenerStats {
  /** Downstream runs created. */
  triggered: number;
  /** Triggers the principal answered with an existing run (already chained before). */
  duplicates: number;
  /** Triggers refused for good (unknown workflow, invalid params...), logged and not retried. */
  refused: number;
  /** Upstream runs whose trigger failed for now and waits for the next sweep. */
  pending: number;
  /** Completed sweeps. */
  sweeps: number;
  /** The handled mark (ISO), or null before the first sweep without a state file. */
  mark: string | null;
  /** Rules in force (ad-hoc and from the workflows). */
  rules: number;
}

const STATE_VERSION = 1;

/**
 * Starts workflows on the outcome of other workflows' runs.
 *
 * - A downstream run gets `upstream: {runId, workflowId, status}` (its tasks see
 *   `CDKTR_UPSTREAM_RUN_ID`, `CDKTR_UPSTREAM_WORKFLOW_ID`, `CDKTR_UPSTREAM_STATUS`) and the
 *   idempotency key `chain:<upstream run id>:<downstream workflow>`: one downstream run per
 *   upstream run and rule, however often the outcome is seen.
 * - Outcomes arrive on the publish channel, and every `sweepIntervalMs` a sweep lists the runs
 *   finished since the handled mark (minus `lateMarginMs`): what the channel lost (a reconnect, a
 *   principal failover) and what ended while this listener was down are found there.
 * - The handled mark moves only past runs whose triggers were accepted (or refused for good), and
 *   is kept in `stateFile`: a listener killed between an upstream run's end and the downstream
 *   trigger triggers it after its restart, once.
 * - Needs a key that may list every run and follow `runs|` topics: role `scheduler` (the local
 *   `local-scheduler` key by default) or `operator`.
 */
export class RunOutcomeListener extends EventListener {
  readonly #adHoc: ChainRule[];
  readonly #followWorkflows: boolean;
  readonly #stateFile: string | null;
  readonly #subscribeOption: { endpoint: string } | false | undefined;
  readonly #sweepMs: number;
  readonly #marginMs: number;
  readonly #timeoutMs: number;
  readonly #backoff: BackoffOptions;
  /** Rules from the workflows' `triggers`, by downstream workflow id. */
  readonly #fromWorkflows = new Map<string, ChainRule[]>();
  #workflowsVersion: number | null = null;
  /** Rules by upstream workflow id. */
  #byUpstream = new Map<string, ChainRule[]>();
  /** `<run id>|<downstream>` handled -> the upstream run's end (ms), pruned below the swept window. */
  readonly #handled = new Map<string, number>();
  /** Upstream runs whose triggers failed for now: run id -> its end (ms). */
  readonly #pending = new Map<string, number>();
  #mark: number | null = null;
  #subscriber: Subscriber | null = null;
  #subscribed = new Set<string>();
  #wake: (() => void) | null = null;
  readonly #stats: Omit<RunOutcomeListenerStats, "pending" | "mark" | "rules"> = {
    triggered: 0,
    duplicates: 0,
    refused: 0,
    sweeps: 0,
  };

  constructor(options: RunOutcomeListenerOptions) {
    super({ ...options, source: options.source ?? "chain", keyName: options.keyName ?? "local-scheduler" });
    this.#adHoc = (options.rules ?? []).map((r) => checkRule(r));
    const cycle = findRuleCycle(this.#adHoc);
    if (cycle !== null)
      throw new UsageError(
        "INVALID_ARGUMENT",
        `RunOutcomeListener: the rules chain in a cycle (${cycle.join(" -> ")}): a run would start the next one forever; remove one of them`,
      );
    this.#followWorkflows = options.workflowTriggers ?? false;
    if (this.#adHoc.length === 0 && !this.#followWorkflows)
      throw new UsageError("INVALID_ARGUMENT", "RunOutcomeListener: give `rules`, or `workflowTriggers: true`");
    this.#stateFile = options.stateFile;
    this.#subscribeOption = options.subscribe;
    this.#sweepMs = options.sweepIntervalMs ?? 10_000;
    this.#marginMs = options.lateMarginMs ?? 300_000;
    this.#timeoutMs = options.triggerTimeoutMs ?? 5000;
    this.#backoff = options.backoff ?? {};
    this.#reindex();
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<RunOutcomeListenerStats> {
    let rules = 0;
    for (const list of this.#byUpstream.values()) rules += list.length;
    return {
      ...this.#stats,
      pending: this.#pending.size,
      mark: this.#mark === null ? null : new Date(this.#mark).toISOString(),
      rules,
    };
  }

  /** Start the next sweep now instead of at the end of the interval (after a leader move, or in tests). */
  sweepNow(): void {
    this.#wake?.();
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    const stored = this.#readMark();
    this.#mark = stored ?? Date.now();
    // Kept from the start: a listener killed before its first sweep found anything still catches
    // up from here after a restart.
    if (stored === null) this.#writeMark(this.#mark);
    this.#startSubscriber(signal);
    let failures = 0;
    while (!signal.aborted) {
      let delay = this.#sweepMs;
      try {
        if (this.#followWorkflows) await this.#loadWorkflowRules();
        this.#resubscribe();
        await this.#sweep(signal);
        failures = 0;
      } catch (e) {
        failures += 1;
        delay = Math.min(this.#sweepMs, backoffDelay(failures, this.#backoff));
        const err = toCdktrError(e);
        this.logger.warn("chaining sweep failed; retrying", { code: err.code, error: err.message, retryInMs: delay });
      }
      if (signal.aborted) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, delay);
        function done(): void {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
        this.#wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
      this.#wake = null;
    }
    this.#subscriber?.close();
    this.#subscriber = null;
  }

  /** List the runs of the followed workflows finished since the mark (minus the margin) and handle each. */
  async #sweep(signal: AbortSignal): Promise<void> {
    const mark = this.#mark ?? Date.now();
    const from = mark - this.#marginMs;
    let latest = mark;
    for (const upstream of [...this.#byUpstream.keys()]) {
      let cursor: string | undefined;
      do {
        if (signal.aborted) return;
        const page = await this.principal.request(
          "listRuns",
          {
            workflowId: upstream,
            finishedSince: new Date(from).toISOString(),
            order: "asc",
            limit: 200,
            ...(cursor === undefined ? {} : { cursor }),
          },
          { timeoutMs: this.#timeoutMs },
        );
        for (const run of page.runs) {
          const end = run.finishedAt === null ? null : Date.parse(run.finishedAt);
          if (end === null) continue;
          await this.#handle(run, end);
          if (end > latest) latest = end;
        }
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
    }
    // The mark never passes a run still waiting for its trigger.
    let next = latest;
    for (const end of this.#pending.values()) next = Math.min(next, end);
    if (next > mark) {
      this.#mark = next;
      this.#writeMark(next);
    }
    for (const [key, end] of this.#handled) if (end < (this.#mark ?? next) - this.#marginMs) this.#handled.delete(key);
    this.#stats.sweeps += 1;
  }

  /** Trigger every rule `run` matches (once per rule). */
  async #handle(run: RunRecord, end: number): Promise<void> {
    const rules = this.#byUpstream.get(run.workflowId);
    if (rules === undefined || !isTerminalRunStatus(run.status)) return;
    let waiting = false;
    for (const rule of rules) {
      if (!rule.status.includes(run.status)) continue;
      const handledKey = `${run.runId}|${rule.workflow}`;
      if (this.#handled.has(handledKey)) continue;
      const result = await this.runWorkflow(rule.workflow, {
        ...(rule.params !== undefined ? { params: rule.params } : {}),
        idempotencyKey: scopedIdempotencyKey("chain:", `${run.runId}:${rule.workflow}`),
        upstream: { runId: run.runId, workflowId: run.workflowId, status: run.status },
        timeoutMs: this.#timeoutMs,
        retry: false,
      });
      const log = { upstreamRunId: run.runId, upstream: run.workflowId, status: run.status, workflow: rule.workflow };
      if (result.success) {
        this.#handled.set(handledKey, end);
        if (result.duplicate) this.#stats.duplicates += 1;
        else {
          this.#stats.triggered += 1;
          this.logger.info("chained run triggered", { ...log, runId: result.runId });
        }
      } else if (result.error?.retryable === false) {
        this.#handled.set(handledKey, end);
        this.#stats.refused += 1;
        this.logger.warn("chained run refused by the principal; not retried", {
          ...log,
          code: result.error.code,
          error: result.error.message,
        });
      } else {
        waiting = true;
        this.logger.warn("chained trigger failed; the next sweep retries it", {
          ...log,
          code: result.error?.code,
          error: result.error?.message,
        });
      }
    }
    if (waiting) this.#pending.set(run.runId, end);
    else this.#pending.delete(run.runId);
  }

  async #loadWorkflowRules(): Promise<void> {
    const reply = await this.principal.request(
      "listWorkflows",
      this.#workflowsVersion === null ? {} : { sinceVersion: this.#workflowsVersion },
      { timeoutMs: this.#timeoutMs },
    );
    if (reply.full) this.#fromWorkflows.clear();
    for (const id of reply.removed) this.#fromWorkflows.delete(id);
    for (const wf of reply.workflows) {
      const triggers: readonly ChainTrigger[] = wf.triggers ?? [];
      if (triggers.length === 0) this.#fromWorkflows.delete(wf.id);
      else
        this.#fromWorkflows.set(
          wf.id,
          triggers.map((t) => ({ after: t.after, status: t.status, workflow: wf.id })),
        );
    }
    this.#workflowsVersion = reply.version;
    this.#reindex();
  }

  #reindex(): void {
    const by = new Map<string, ChainRule[]>();
    for (const rule of [...this.#adHoc, ...[...this.#fromWorkflows.values()].flat()]) {
      const list = by.get(rule.after);
      if (list === undefined) by.set(rule.after, [rule]);
      else list.push(rule);
    }
    this.#byUpstream = by;
  }

  #startSubscriber(signal: AbortSignal): void {
    if (this.#subscribeOption === false) return;
    // What was published while following a new leader is lost: a sweep finds it.
    const sub = this.openSubscriber(this.#subscribeOption, signal, "chaining follows the sweeps only", () =>
      this.sweepNow(),
    );
    if (sub === null) return;
    this.#subscriber = sub;
    this.#subscribed = new Set();
    this.#resubscribe();
    void (async () => {
      try {
        for await (const msg of sub) {
          if (signal.aborted) break;
          const parsed = RunEventSchema.safeParse(msg.body);
          if (!parsed.success) continue;
          const run = parsed.data.run;
          if (run.finishedAt === null || !isTerminalRunStatus(run.status)) continue;
          await this.#handle(run, Date.parse(run.finishedAt));
        }
      } catch (e) {
        this.logger.warn("run outcome subscription ended; the sweeps go on", { error: errorMessage(e) });
      }
    })();
  }

  /** Subscribe to `runs|<upstream>|` for exactly the followed upstream workflows. */
  #resubscribe(): void {
    const sub = this.#subscriber;
    if (sub === null) return;
    const want = new Set([...this.#byUpstream.keys()].map((id) => topics.runs(id)));
    const add = [...want].filter((t) => !this.#subscribed.has(t));
    const drop = [...this.#subscribed].filter((t) => !want.has(t));
    if (add.length > 0) sub.subscribe(...add);
    if (drop.length > 0) sub.unsubscribe(...drop);
    this.#subscribed = want;
  }

  #readMark(): number | null {
    if (this.#stateFile === null) return null;
    let text: string;
    try {
      text = readFileSync(this.#stateFile, "utf8");
    } catch (e) {
      if ((e as { code?: unknown }).code === "ENOENT") return null;
      throw new UsageError(
        "INVALID_ARGUMENT",
        `cannot read the chaining state file ${this.#stateFile}: ${errorMessage(e)}; fix its permissions or remove it (the listener then catches up only the last ${this.#marginMs} ms)`,
      );
    }
    try {
      const state = JSON.parse(text) as { version?: unknown; mark?: unknown };
      if (state.version === STATE_VERSION && typeof state.mark === "number" && Number.isFinite(state.mark))
        return state.mark;
    } catch {
      // fall through
    }
    this.logger.warn("the chaining state file is unreadable; starting from now minus the late margin", {
      file: this.#stateFile,
    });
    return null;
  }

  #writeMark(mark: number): void {
    const file = this.#stateFile;
    if (file === null) return;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      const tmp = `${file}.tmp`;
      const fd = openSync(tmp, "w", 0o600);
      try {
        writeFileSync(fd, `${JSON.stringify({ version: STATE_VERSION, mark })}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    } catch (e) {
      // Not fatal: the mark stays where it was on disk, so a restart sweeps a little more.
      this.logger.warn("cannot write the chaining state file; a restart will re-check more runs", {
        file,
        error: errorMessage(e),
      });
    }
  }
}

/** A cycle of `after -> workflow` edges, as the path `[a, b, a]`, or null. */
export function findRuleCycle(rules: readonly ChainRule[]): string[] | null {
  const next = new Map<string, string[]>();
  for (const r of rules) next.set(r.after, [...(next.get(r.after) ?? []), r.workflow]);
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (id: string): string[] | null => {
    if (state.get(id) === "done") return null;
    if (state.get(id) === "open") return [...path.slice(path.indexOf(id)), id];
    state.set(id, "open");
    path.push(id);
    for (const n of next.get(id) ?? []) {
      const c = visit(n);
      if (c !== null) return c;
    }
    path.pop();
    state.set(id, "done");
    return null;
  };
  for (const id of next.keys()) {
    const c = visit(id);
    if (c !== null) return c;
  }
  return null;
}

function checkRule(r: ChainRule): ChainRule {
  if (r.after === "" || r.workflow === "")
    throw new UsageError("INVALID_ARGUMENT", "RunOutcomeListener: a rule needs `after` and `workflow`");
  if (r.after === r.workflow)
    throw new UsageError(
      "INVALID_ARGUMENT",
      `RunOutcomeListener: a rule cannot start \`${r.workflow}\` after its own runs (a cycle)`,
    );
  if (r.status.length === 0 || r.status.some((s) => !isTerminalRunStatus(s)))
    throw new UsageError(
      "INVALID_ARGUMENT",
      `RunOutcomeListener: the rule after \`${r.after}\` must list end states (COMPLETED, FAILED, CRASHED, CANCELLED, SKIPPED), got ${JSON.stringify(r.status)}`,
    );
  return { ...r, status: [...r.status] };
}

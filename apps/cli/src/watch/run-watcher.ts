import {
  coerceError,
  isCdktrError,
  topics,
  type ApiVerbs,
  type LogLine,
  type ReplyOf,
  type RequestOf,
  type RunRecord,
  type TaskRunRecord,
  type ClientKey,
  type LeaderWatch,
} from "@cdktr/protocol";
import { CliError } from "../errors.js";
import { LiveFeed, type FeedEvent } from "./live-feed.js";
import { LogSequencer } from "./log-sequencer.js";
import { isNewerRun, isNewerTask, isTerminalRun, missedRunStates, missedTaskStates } from "./states.js";

/** The part of `PrincipalClient` the watchers use. */
export interface WatchClient {
  getRun(runId: string): Promise<ReplyOf<ApiVerbs, "getRun">>;
  queryLogs(req?: RequestOf<ApiVerbs, "queryLogs">): Promise<ReplyOf<ApiVerbs, "queryLogs">>;
}

/** Options of {@link RunWatcher}. */
export interface RunWatcherOptions {
  readonly client: WatchClient;
  /** `tcp://host:port` of the principal's publish channel. */
  readonly publishEndpoint: string;
  /** Several principals: the feed moves to each new leader's publish endpoint (polling fills the gap). */
  readonly leaderWatch?: LeaderWatch | undefined;
  readonly workflowId: string;
  /** Also stream the run's log lines. */
  readonly follow: boolean;
  /** A run state we had not seen yet. */
  readonly onRun?: (run: RunRecord) => void;
  /** A task state (or attempt) we had not seen yet. */
  readonly onTask?: (task: TaskRunRecord) => void;
  /** The next log line of a task, in sequence order, each exactly once. */
  readonly onLog?: (line: LogLine) => void;
  /** Lines that never arrived (after the final reconciliation). */
  readonly onMissing?: (count: number) => void;
  /** Reconciliation poll period. @default 1000 */
  readonly pollIntervalMs?: number;
  /** How long after the run ends to wait for late log lines. @default 3000 */
  readonly finalLogWaitMs?: number;
  /** The principal stopped answering (called once per outage); watching goes on. */
  readonly onUnreachable?: (error: Error) => void;
  /** The principal answers again after an outage. */
  readonly onReachable?: () => void;
  /** Give up when the principal has not answered for this long. @default 60000 */
  readonly unreachableGiveUpMs?: number;
  /** The key of the publish-channel subscription; null for plaintext. @default the local operator key (or CDKTR_KEY_FILE) */
  readonly key?: ClientKey | null;
  /**
   * What to subscribe to. `"workflow"`: the workflow's topics at once, before the run exists
   * (nothing is missed from the trigger on); for keys that may receive them (operator, reader,
   * or no authentication). `"run"`: only the run's own topics, from the moment {@link watch}
   * names it; for keys that may receive only the runs they triggered (trigger, scheduler: the
   * principal refuses the workflow's topics), whatever came before is read by polling.
   * @default "workflow"
   */
  readonly subscribe?: "workflow" | "run";
}

const PAGE = 1000;
/** Re-read this much before the newest line seen, for lines stored late with earlier times. */
const OVERLAP_MS = 2000;

/**
 * Follows one run live without missing a transition or a line: subscribe first (before the run
 * exists: events are held until {@link watch} names the run; or, for a key that may only receive
 * its own runs, to the run's topics once it is named), then read the current state, then
 * reconcile by polling; log lines are put back in per-task sequence order and holes are filled
 * by querying the principal.
 */
export class RunWatcher {
  readonly #o: RunWatcherOptions;
  readonly #feed: LiveFeed;
  readonly #held: FeedEvent[] = [];
  readonly #seq = new LogSequencer();
  readonly #tasks = new Map<string, TaskRunRecord>();
  #run: RunRecord | undefined;
  #runId: string | undefined;
  #watermark: number | null = null;
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(options: RunWatcherOptions) {
    this.#o = options;
    this.#feed = new LiveFeed({
      endpoint: options.publishEndpoint,
      topics: options.subscribe === "run" ? [] : this.#topics(),
      onEvent: (e) => this.#onEvent(e),
      ...(options.key === undefined ? {} : { key: options.key }),
      ...(options.leaderWatch === undefined ? {} : { leaderWatch: options.leaderWatch }),
    });
  }

  /** The workflow's topics, or with a run id that run's. */
  #topics(runId?: string): string[] {
    const wf = this.#o.workflowId;
    return [topics.runs(wf, runId), topics.tasks(wf, runId), ...(this.#o.follow ? [topics.logs(wf, runId)] : [])];
  }

  /** The latest state seen. */
  get run(): RunRecord | undefined {
    return this.#run;
  }

  /** The latest state of every task seen. */
  get tasks(): TaskRunRecord[] {
    return [...this.#tasks.values()];
  }

  #onEvent(e: FeedEvent): void {
    if (this.#runId === undefined) {
      if (this.#held.length < 100_000) this.#held.push(e);
      return;
    }
    this.#apply(e);
  }

  #apply(e: FeedEvent): void {
    switch (e.kind) {
      case "run":
        if (e.run.runId === this.#runId) this.#applyRun(e.run);
        break;
      case "task":
        if (e.task.runId === this.#runId) this.#applyTask(e.task);
        break;
      case "log":
        if (e.line.runId === this.#runId && this.#o.follow) {
          this.#seq.add(e.line);
          this.#flushLogs();
        }
        break;
    }
  }

  #applyRun(run: RunRecord): void {
    if (!isNewerRun(this.#run, run)) return;
    for (const missed of missedRunStates(this.#run, run)) this.#o.onRun?.(missed);
    this.#run = run;
    this.#o.onRun?.(run);
    if (isTerminalRun(run)) this.#wake?.();
  }

  #applyTask(task: TaskRunRecord): void {
    const prev = this.#tasks.get(task.taskId);
    if (!isNewerTask(prev, task)) return;
    for (const missed of missedTaskStates(prev, task)) this.#o.onTask?.(missed);
    this.#tasks.set(task.taskId, task);
    this.#o.onTask?.(task);
  }

  #flushLogs(): void {
    for (const line of this.#seq.drain()) this.#o.onLog?.(line);
  }

  /**
   * Follow `runId` until it reaches a final state; resolves with that final record. Rejects when
   * the principal cannot be reached, or `signal` aborts.
   */
  async watch(runId: string, signal?: AbortSignal): Promise<RunRecord> {
    this.#runId = runId;
    if (this.#o.subscribe === "run") this.#feed.subscribe(...this.#topics(runId));
    for (const e of this.#held.splice(0)) this.#apply(e);
    const pollMs = this.#o.pollIntervalMs ?? 1000;
    const giveUpMs = this.#o.unreachableGiveUpMs ?? 60_000;
    let failingSince: number | null = null;
    for (;;) {
      signal?.throwIfAborted();
      try {
        await this.#reconcile();
        if (failingSince !== null) this.#o.onReachable?.();
        failingSince = null;
      } catch (e) {
        // A restarting principal is not the run's end: keep watching for a while.
        if (!isCdktrError(e) || !e.retryable || e.code === "CLOSED") throw e;
        if (failingSince === null) {
          failingSince = Date.now();
          this.#o.onUnreachable?.(coerceError(e));
        } else if (Date.now() - failingSince > giveUpMs) {
          throw e;
        }
      }
      if (this.#run !== undefined && isTerminalRun(this.#run)) break;
      await this.#sleep(pollMs, signal);
    }
    if (this.#o.follow) await this.#finalLogs(signal);
    const run = this.#run;
    if (run === undefined) throw new CliError(`run ${runId} vanished`);
    return run;
  }

  async #reconcile(): Promise<void> {
    const runId = this.#runId;
    if (runId === undefined) return;
    const { run, tasks } = await this.#o.client.getRun(runId);
    // Task states first: a final run state is reported after its tasks' final states.
    for (const t of tasks) this.#applyTask(t);
    if (this.#o.follow) await this.#reconcileLogs();
    this.#applyRun(run);
  }

  async #reconcileLogs(): Promise<void> {
    const runId = this.#runId;
    if (runId === undefined) return;
    const since = this.#watermark === null ? undefined : new Date(this.#watermark - OVERLAP_MS).toISOString();
    await this.#queryInto({ runId, ...(since === undefined ? {} : { since }) });
    for (const gap of this.#seq.gaps()) {
      await this.#queryInto({ runId, taskId: gap.taskId, ...(gap.since === null ? {} : { since: gap.since }) });
    }
    this.#flushLogs();
  }

  async #queryInto(req: RequestOf<ApiVerbs, "queryLogs">): Promise<void> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.#o.client.queryLogs({
        ...req,
        order: "asc",
        limit: PAGE,
        ...(cursor === undefined ? {} : { cursor }),
      });
      for (const line of page.lines) {
        this.#seq.add(line);
        const t = Date.parse(line.time);
        if (req.taskId === undefined && (this.#watermark === null || t > this.#watermark)) this.#watermark = t;
      }
      if (page.nextCursor === null || page.lines.length === 0) break;
      cursor = page.nextCursor;
    }
  }

  async #finalLogs(signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + (this.#o.finalLogWaitMs ?? 3000);
    // At least two passes a little apart: lines acknowledged just after the final state.
    for (let pass = 0; ; pass++) {
      signal?.throwIfAborted();
      await this.#reconcileLogs();
      if (pass >= 1 && this.#seq.gaps().length === 0) break;
      if (Date.now() >= deadline) break;
      await this.#sleep(300, signal);
    }
    const rest = this.#seq.releaseAll();
    for (const line of rest.lines) this.#o.onLog?.(line);
    if (rest.missing > 0) this.#o.onMissing?.(rest.missing);
  }

  #sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#wake = undefined;
        resolve();
      };
      const onAbort = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        reject(signal?.reason instanceof Error ? signal.reason : new CliError("aborted", 130));
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Stop listening (idempotent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    await this.#feed.close();
  }
}

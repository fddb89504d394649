/**
 * Load helpers: a closed loop keeping N async operations in flight, a bounded-concurrency
 * runner, and a watcher of run events published by the principal.
 */
import { errorMessage, Subscriber, topics, type ClientKey, type RunRecord } from "@cdktr/protocol";
import { nowMs, sleep } from "./stats.js";

/** Result of {@link closedLoop}. */
export interface ClosedLoopResult {
  completed: number;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  perSecond: number;
  latencies: number[];
}

/**
 * Keep `concurrency` calls of `op` in flight for `durationMs` (calls started before the end
 * are awaited and counted). `op(i)` gets a running index.
 */
export async function closedLoop(
  concurrency: number,
  durationMs: number,
  op: (i: number) => Promise<unknown>,
): Promise<ClosedLoopResult> {
  const start = nowMs();
  const stopAt = start + durationMs;
  let next = 0;
  let completed = 0;
  let errors = 0;
  let firstError: string | null = null;
  let end = start;
  const latencies: number[] = [];
  const worker = async (): Promise<void> => {
    while (nowMs() < stopAt) {
      const i = next++;
      const t0 = nowMs();
      try {
        await op(i);
        const t = nowMs();
        latencies.push(t - t0);
        completed++;
        end = Math.max(end, t);
      } catch (e) {
        errors++;
        firstError ??= errorMessage(e);
        if (errors > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = end - start;
  return { completed, errors, firstError, elapsedMs, perSecond: (completed * 1000) / elapsedMs, latencies };
}

/** Run `count` calls of `op` with at most `concurrency` in flight. Rejects on the first error. */
export async function runBounded(
  count: number,
  concurrency: number,
  op: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) await op(i);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

const TERMINAL = new Set(["COMPLETED", "FAILED", "CRASHED", "CANCELLED", "SKIPPED"]);

/** Follows `RunEvent`s on the principal's publish channel and records when runs end. */
export class RunWatcher {
  private readonly sub: Subscriber;
  /** runId -> [final status, epoch ms the event arrived]. */
  readonly finished = new Map<string, { status: string; at: number; run: RunRecord }>();
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];
  private loop: Promise<void>;

  /**
   * @param key the subscription's key (the principal's `local-operator`, `PrincipalHandle.key`),
   *   null for a principal with authentication off; never looked up in the bench process's HOME
   */
  constructor(publishPort: number, key: ClientKey | null, workflowId?: string) {
    this.sub = new Subscriber({ endpoint: `tcp://127.0.0.1:${publishPort}`, key });
    this.sub.connect();
    this.sub.subscribe(workflowId === undefined ? topics.runs() : topics.runs(workflowId));
    this.loop = this.consume();
  }

  /** Give the subscription time to reach the publisher (ZeroMQ slow joiner). */
  async settle(ms = 300): Promise<void> {
    await sleep(ms);
  }

  private async consume(): Promise<void> {
    try {
      for await (const msg of this.sub) {
        const body = msg.body as { run?: RunRecord };
        const run = body.run;
        if (run === undefined || !TERMINAL.has(run.status)) continue;
        if (!this.finished.has(run.runId)) this.finished.set(run.runId, { status: run.status, at: nowMs(), run });
        const ready = this.waiters.filter((w) => w.pred());
        this.waiters = this.waiters.filter((w) => !ready.includes(w));
        for (const w of ready) w.resolve();
      }
    } catch {
      // closed
    }
  }

  /** Resolve when `pred` holds (checked after each terminal event), or reject after `timeoutMs`. */
  waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== entry);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const entry = {
        pred,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(entry);
    });
  }

  close(): void {
    this.sub.close();
    void this.loop;
  }
}

/**
 * The soak's steady load: every 0.3 to 1.2 s a trigger with its own idempotency key, through the
 * API (with a `trigger`-role key) or the signed webhook, sent again with the same key after a
 * retryable failure until acknowledged (at most 120 s).
 */
import { signWebhookRequest, webhookTriggerPath } from "@cdktr/events/webhook";
import { isCdktrError, type PrincipalClient } from "@cdktr/protocol";
import { Prng } from "./prng.js";
import { sleep } from "./supervised.js";

/** One trigger of the load: sent until acknowledged (same key each time). */
interface Trigger {
  key: string;
  workflowId: string;
  via: "api" | "webhook";
}

/** Options of {@link TriggerLoad}. */
export interface TriggerLoadOptions {
  /** Seed of the load's choices (workflow, path, pauses) and of its keys. */
  seed: number;
  /** Client of the API triggers (a `trigger`-role key). */
  client: PrincipalClient;
  /** The webhook listener's base URL now (it changes when the listeners restart). */
  hookUrl: () => string;
  /** The webhook's signing secret. */
  secret: string;
}

/** Fires triggers until {@link stop}, and records what became of each. */
export class TriggerLoad {
  readonly #o: TriggerLoadOptions;
  /** Acknowledged triggers: key -> runId. */
  readonly acked = new Map<string, string>();
  /** Triggers refused for good (what and why). */
  readonly refused: string[] = [];
  /** Triggers still not acknowledged after 120 s. */
  readonly neverAcked: string[] = [];
  /** Triggers fired so far. */
  sent = 0;
  readonly #inflight = new Set<Promise<void>>();
  #stopping = false;
  #loop: Promise<void> | null = null;

  constructor(options: TriggerLoadOptions) {
    this.#o = options;
  }

  /** Start firing. */
  start(): void {
    const rng = new Prng(this.#o.seed ^ 0x5eed);
    this.#loop = (async () => {
      while (!this.#stopping) {
        this.sent++;
        const roll = rng.next();
        const workflowId = roll < 0.6 ? "fan" : roll < 0.8 ? "flaky" : "slow";
        const via = rng.next() < 0.3 ? "webhook" : "api";
        this.#fire({ key: `soak-${this.#o.seed}-${this.sent}`, workflowId, via });
        await sleep(rng.int(300, 1200));
      }
    })();
  }

  /** Stop firing and wait for every trigger in flight (each gives up 120 s after it started at the latest). */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#loop;
    await Promise.all([...this.#inflight]);
  }

  async #sendOnce(t: Trigger): Promise<string | "retry" | { refused: string }> {
    if (t.via === "api") {
      try {
        const r = await this.#o.client.runWorkflow(
          { workflowId: t.workflowId, params: { key: t.key }, idempotencyKey: t.key, source: "soak" },
          { retry: false },
        );
        return r.runId;
      } catch (e) {
        if (isCdktrError(e) && !e.retryable) return { refused: `${e.code}: ${e.message}` };
        return "retry";
      }
    }
    const body = JSON.stringify({ key: t.key });
    const path = webhookTriggerPath(t.workflowId);
    const ts = Math.floor(Date.now() / 1000);
    try {
      const res = await fetch(`${this.#o.hookUrl()}${path}`, {
        method: "POST",
        body,
        signal: AbortSignal.timeout(8000),
        headers: {
          "content-type": "application/json",
          "idempotency-key": t.key,
          "x-cdktr-timestamp": String(ts),
          "x-cdktr-signature": signWebhookRequest(this.#o.secret, ts, {
            method: "POST",
            path,
            idempotencyKey: t.key,
            body,
          }),
        },
      });
      const reply = (await res.json()) as { runId?: string; message?: string; code?: string };
      if (res.status === 202 && typeof reply.runId === "string") return reply.runId;
      if (res.status === 503) return "retry";
      return { refused: `HTTP ${res.status} ${reply.code ?? ""}: ${reply.message ?? ""}` };
    } catch {
      return "retry";
    }
  }

  #fire(t: Trigger): void {
    const task = (async () => {
      const giveUpAt = Date.now() + 120_000;
      for (;;) {
        const r = await this.#sendOnce(t);
        if (typeof r === "string" && r !== "retry") {
          this.acked.set(t.key, r);
          return;
        }
        if (typeof r === "object") {
          this.refused.push(`${t.via} ${t.workflowId} ${t.key}: ${r.refused}`);
          return;
        }
        if (Date.now() > giveUpAt) {
          this.neverAcked.push(`${t.via} ${t.workflowId} ${t.key}`);
          return;
        }
        // A webhook signature is per second: a retry signs again with a new timestamp.
        await sleep(t.via === "webhook" ? 1100 : 400);
      }
    })();
    this.#inflight.add(task);
    void task.finally(() => this.#inflight.delete(task));
  }
}

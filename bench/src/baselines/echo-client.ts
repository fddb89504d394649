/**
 * Closed-loop load generator over a raw DEALER: keeps `concurrency` requests framed exactly like
 * the cdktr protocol in flight for `durationMs`, and counts replies.
 */
import { randomUUID } from "node:crypto";
import { curveKeyPair, Dealer } from "zeromq";
import { nowMs } from "../harness/stats.js";

/** Result of a closed-loop run. */
export interface LoadResult {
  completed: number;
  elapsedMs: number;
  perSecond: number;
  /** Request -> reply latency samples in ms. */
  latencies: number[];
}

/** A runWorkflow request body shaped like the one PrincipalClient sends. */
export function runWorkflowBody(workflowId: string): string {
  return JSON.stringify({ workflowId, idempotencyKey: randomUUID(), source: "bench" });
}

/**
 * Drive `endpoint` with `concurrency` in-flight requests for `durationMs`; over CURVE (a fresh
 * client key pair) when `serverKey` is given.
 */
export async function echoLoad(
  endpoint: string,
  concurrency: number,
  durationMs: number,
  serverKey: string | null = null,
): Promise<LoadResult> {
  const client = serverKey === null ? null : curveKeyPair();
  const dealer = new Dealer({
    ...(client === null || serverKey === null
      ? {}
      : { curveServerKey: serverKey, curvePublicKey: client.publicKey, curveSecretKey: client.secretKey }),
    linger: 0,
    receiveHighWaterMark: 10_000,
    sendHighWaterMark: 10_000,
  });
  dealer.connect(endpoint);
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let completed = 0;
  let stopAt = Number.POSITIVE_INFINITY;
  let sending = false;
  const outbox: string[][] = [];
  const pump = async (): Promise<void> => {
    sending = true;
    for (let item = outbox.shift(); item !== undefined; item = outbox.shift()) await dealer.send(item);
    sending = false;
  };
  const sendOne = (): void => {
    const id = randomUUID();
    sentAt.set(id, nowMs());
    outbox.push(["cdktr/1", id, String(Date.now() + 5000), "runWorkflow", runWorkflowBody("bench")]);
    if (!sending) void pump();
  };
  const start = nowMs();
  stopAt = start + durationMs;
  for (let i = 0; i < concurrency; i++) sendOne();
  let end = start;
  while (sentAt.size > 0) {
    const frames = await dealer.receive();
    const id = frames[1]?.toString() ?? "";
    const t0 = sentAt.get(id);
    if (t0 === undefined) continue;
    sentAt.delete(id);
    const t = nowMs();
    latencies.push(t - t0);
    completed++;
    end = t;
    if (t < stopAt) sendOne();
  }
  dealer.close();
  const elapsedMs = end - start;
  return { completed, elapsedMs, perSecond: (completed * 1000) / elapsedMs, latencies };
}

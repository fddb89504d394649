/**
 * 7. Peers on the same machine, same run: BullMQ (Redis) and pg-boss (PostgreSQL), each with
 * trivial jobs and its worker in its own process (as our agent is):
 *   - enqueue -> handler-start latency, one job at a time (worker concurrency 1);
 *   - enqueue rate: 64 `add`/`send` calls in flight, no worker running; BullMQ's `addBulk` of
 *     {@link BULK} jobs, 4 calls in flight (beside our `runWorkflows` batches);
 *   - end-to-end: N jobs enqueued 64 in flight while a worker with concurrency 16 consumes them,
 *     timed to the last handler start.
 * Our figures (trigger -> task start, triggers/s, runs/s) come from scenarios 1-3 of the same
 * run, and are put beside these by `comparePeers`.
 */
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import PgBoss from "pg-boss";
import { closedLoop, runBounded } from "../harness/load.js";
import { startProcess, type Proc } from "../harness/proc.js";
import { naRow, row, type Row } from "../harness/result.js";
import { fmt } from "../harness/table.js";
import { nowMs, sleep, summarize, type Summary } from "../harness/stats.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { errorMessage } from "@cdktr/protocol";

const WORKER = fileURLToPath(new URL("../peers/peer-worker.js", import.meta.url));
const PG_URL = "postgres://postgres@127.0.0.1:5432/test";
const PG_POLL_S = 0.5; // pg-boss's minimum polling interval
/** Jobs per `addBulk` call: the size of our `runWorkflows` batches in scenario 1. */
export const BULK = 100;

/** What a peer exposes to the harness. */
interface PeerDriver {
  name: string;
  enqueue(): Promise<string>;
  /** Enqueue `n` jobs in one call, where the peer has one. */
  enqueueBulk?: (n: number) => Promise<unknown>;
  purge(): Promise<void>;
  close(): Promise<void>;
  workerArgs(concurrency: number): string[];
}

/** Per-peer measurements. */
export interface PeerFigures {
  latency: Summary;
  enqueuePerSecond: number;
  /** Jobs/s enqueued in bulk calls (NaN without one). */
  enqueueBulkPerSecond: number;
  e2ePerSecond: number;
}

/** Starts tracking handler starts printed by a worker process. */
async function startWorker(
  driver: PeerDriver,
  concurrency: number,
  starts: Map<string, number>,
  onStart?: () => void,
): Promise<Proc> {
  return startProcess({
    name: `${driver.name}-worker`,
    args: [WORKER, ...driver.workerArgs(concurrency)],
    keepLines: 20,
    onLine: (line) => {
      if (!line.startsWith("S ")) return;
      const [, id, t] = line.split(" ");
      if (id !== undefined && t !== undefined) {
        starts.set(id, Number(t));
        onStart?.();
      }
    },
  });
}

async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

async function measurePeer(
  ctx: BenchContext,
  driver: PeerDriver,
  latencyN: number,
  e2eN: number,
  durationMs: number,
  jitterMs: number,
): Promise<PeerFigures> {
  await driver.purge();
  // latency
  ctx.log(`${driver.name}: latency over ${latencyN} jobs`);
  const starts = new Map<string, number>();
  let worker = await startWorker(driver, 1, starts);
  const lat: number[] = [];
  try {
    for (let i = 0; i < latencyN + 5; i++) {
      if (jitterMs > 0) await sleep(Math.random() * jitterMs);
      const t0 = nowMs();
      const id = await driver.enqueue();
      await waitFor(() => starts.has(id), 30_000, `${driver.name} job ${id}`);
      if (i >= 5) lat.push((starts.get(id) ?? Number.NaN) - t0);
    }
  } finally {
    await worker.stop();
  }
  // enqueue rate (no worker)
  ctx.log(`${driver.name}: enqueue rate`);
  await driver.purge();
  await closedLoop(64, Math.min(500, durationMs / 3), () => driver.enqueue());
  const enq = await closedLoop(64, durationMs, () => driver.enqueue());
  await driver.purge();
  let enqueueBulkPerSecond = Number.NaN;
  const bulk = driver.enqueueBulk;
  if (bulk !== undefined) {
    ctx.log(`${driver.name}: bulk enqueue rate (${BULK} per call)`);
    enqueueBulkPerSecond = (await closedLoop(4, durationMs, () => bulk(BULK))).perSecond * BULK;
    await driver.purge();
  }
  // end to end with concurrency 16
  ctx.log(`${driver.name}: ${e2eN} jobs end to end`);
  starts.clear();
  const ids: string[] = [];
  worker = await startWorker(driver, 16, starts);
  let e2ePerSecond = Number.NaN;
  try {
    const t0 = nowMs();
    await runBounded(e2eN, 64, async () => {
      ids.push(await driver.enqueue());
    });
    await waitFor(() => ids.every((id) => starts.has(id)), 300_000, `${driver.name} ${e2eN} jobs`);
    const last = Math.max(...ids.map((id) => starts.get(id) ?? 0));
    e2ePerSecond = (e2eN * 1000) / (last - t0);
  } finally {
    await worker.stop();
  }
  await driver.purge();
  return { latency: summarize(lat), enqueuePerSecond: enq.perSecond, enqueueBulkPerSecond, e2ePerSecond };
}

async function bullmqDriver(): Promise<PeerDriver> {
  const name = `bench-${process.pid}`;
  const queue = new Queue(name, { connection: { host: "127.0.0.1", port: 6379 } });
  await queue.waitUntilReady();
  return {
    name: "BullMQ",
    enqueue: async () => (await queue.add("j", { n: 1 }, { removeOnComplete: true, removeOnFail: true })).id ?? "",
    enqueueBulk: (n) =>
      queue.addBulk(
        Array.from({ length: n }, () => ({
          name: "j",
          data: { n: 1 },
          opts: { removeOnComplete: true, removeOnFail: true },
        })),
      ),
    purge: async () => {
      await queue.obliterate({ force: true });
    },
    close: async () => {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    },
    workerArgs: (c) => ["bullmq", name, String(c)],
  };
}

async function pgbossDriver(): Promise<PeerDriver> {
  const name = `bench_${process.pid}`;
  const boss = new PgBoss({ connectionString: PG_URL, schema: "pgboss_bench", max: 70 });
  boss.on("error", () => undefined);
  await boss.start();
  await boss.createQueue(name).catch(() => undefined);
  return {
    name: "pg-boss",
    enqueue: async () => {
      const id = await boss.send(name, { n: 1 });
      if (id === null) throw new Error("pg-boss send returned null");
      return id;
    },
    purge: async () => {
      await boss.purgeQueue(name);
    },
    close: async () => {
      await boss.deleteQueue(name).catch(() => undefined);
      await boss.stop({ graceful: false, wait: true });
    },
    workerArgs: (c) => ["pgboss", name, String(c), String(PG_POLL_S)],
  };
}

export const peers: Scenario = {
  id: "peers",
  title: "7. Peers (BullMQ on Redis, pg-boss on PostgreSQL)",
  needs: [],
  async run(ctx) {
    const durationMs = ctx.quick ? 1500 : 5000;
    const details: Record<string, unknown> = {};
    const rows: Row[] = [];
    const plan: [string, () => Promise<PeerDriver>, number, number, number][] = [
      ["bullmq", bullmqDriver, ctx.quick ? 100 : 1000, ctx.quick ? 300 : 2000, 0],
      // pg-boss polls (>= 0.5 s): few latency samples, with random spacing so they do not lock onto the poll phase.
      // Its end-to-end rate is bounded by polling (~2 fetches/s per worker), so fewer jobs suffice.
      ["pgboss", pgbossDriver, ctx.quick ? 8 : 30, ctx.quick ? 160 : 1000, 300],
    ];
    for (const [key, make, latencyN, e2eN, jitter] of plan) {
      let driver: PeerDriver | undefined;
      try {
        driver = await make();
        const f = await measurePeer(ctx, driver, latencyN, e2eN, durationMs, jitter);
        details[key] = f;
        ctx.shared.set(`${key}.p50`, f.latency.p50);
        ctx.shared.set(`${key}.p99`, f.latency.p99);
        ctx.shared.set(`${key}.enqueuePerSecond`, f.enqueuePerSecond);
        ctx.shared.set(`${key}.enqueueBulkPerSecond`, f.enqueueBulkPerSecond);
        ctx.shared.set(`${key}.e2ePerSecond`, f.e2ePerSecond);
      } catch (e) {
        const msg = errorMessage(e);
        details[key] = { error: msg };
        rows.push(naRow("7 peers", key, msg.split("\n")[0] ?? msg));
      } finally {
        await driver?.close().catch(() => undefined);
      }
    }
    return { rows, details: { ...details, pgbossPollingIntervalSeconds: PG_POLL_S } };
  },
};

/** Rows putting our figures (scenarios 1-3) beside each peer's (ratio = ours / peer). */
export function comparePeers(shared: Map<string, number>): Row[] {
  const rows: Row[] = [];
  const peersList: [string, string][] = [
    ["bullmq", "BullMQ"],
    ["pgboss", `pg-boss (poll ${PG_POLL_S} s)`],
  ];
  const ours = (k: string): number | null => {
    const v = shared.get(k);
    return v === undefined || !Number.isFinite(v) ? null : v;
  };
  for (const [key, label] of peersList) {
    const peer = (k: string): number | null => ours(`${key}.${k}`);
    if (peer("p50") === null) continue;
    if (key === "bullmq") {
      rows.push(
        row({
          scenario: "7 peers",
          metric: `batch triggers/s (runWorkflows) vs ${label} add/s`,
          unit: "/s",
          ours: ours("trigger.batchPerSecond"),
          baseline: peer("enqueuePerSecond"),
          baselineName: `${label} add (64 in flight)`,
          better: "higher",
          target: "ratio >= 2",
          pass: ratioAtLeast(ours("trigger.batchPerSecond"), peer("enqueuePerSecond"), 2),
          note: `ours: ${BULK} triggers per request, 4 requests in flight; raw SQLite writing the same rows: ${fmt(ours("trigger.rowsFloor"))}/s (scenario 1, (c))`,
        }),
        row({
          scenario: "7 peers",
          metric: `batch triggers/s (runWorkflows) vs ${label} addBulk jobs/s`,
          unit: "/s",
          ours: ours("trigger.batchPerSecond"),
          baseline: peer("enqueueBulkPerSecond"),
          baselineName: `${label} addBulk (${BULK} per call, 4 in flight)`,
          better: "higher",
        }),
      );
    }
    rows.push(
      row({
        scenario: "7 peers",
        metric: `trigger->start p50 vs ${label} enqueue->handler`,
        unit: "ms",
        ours: ours("dispatch.p50"),
        baseline: peer("p50"),
        baselineName: label,
        better: "lower",
        note: "ours spawns a process",
      }),
      row({
        scenario: "7 peers",
        metric: `trigger->start p99 vs ${label}`,
        unit: "ms",
        ours: ours("dispatch.p99"),
        baseline: peer("p99"),
        baselineName: label,
        better: "lower",
      }),
      row({
        scenario: "7 peers",
        metric: `triggers/s vs ${label} enqueue/s`,
        unit: "/s",
        ours: ours("trigger.perSecond"),
        baseline: peer("enqueuePerSecond"),
        baselineName: label,
        better: "higher",
        ...(key === "bullmq"
          ? {
              target: "ratio >= 0.50",
              pass: ratioAtLeast(ours("trigger.perSecond"), peer("enqueuePerSecond"), 0.5),
            }
          : {}),
        note: "64 in flight",
      }),
      row({
        scenario: "7 peers",
        metric: `runs/s vs ${label} jobs/s (concurrency 16)`,
        unit: "/s",
        ours: ours("throughput.perSecond"),
        baseline: peer("e2ePerSecond"),
        baselineName: label,
        better: "higher",
        note: "ours spawns a process per run",
      }),
    );
  }
  return rows;
}

/** ours / baseline >= min, false when either is missing. */
function ratioAtLeast(ours: number | null, baseline: number | null, min: number): boolean {
  return ours !== null && baseline !== null && baseline > 0 && ours / baseline >= min;
}

/**
 * Worker process of a peer queue (its own process, like our agent):
 *
 *   node peer-worker.js bullmq <queue> <concurrency>
 *   node peer-worker.js pgboss <queue> <concurrency> <pollingIntervalSeconds>
 *
 * For each job it prints `S <jobId> <epoch ms>` at handler start (the time is taken first thing
 * in the handler). The handler does nothing else. Prints a JSON `ready` line once consuming.
 */
import { Worker } from "bullmq";
import PgBoss from "pg-boss";
import { coerceError, errorMessage } from "@cdktr/protocol";

const [kind, queue = "bench", concArg = "1", pollArg = "0.5"] = process.argv.slice(2);
const concurrency = Number(concArg);

function now(): number {
  return performance.timeOrigin + performance.now();
}

let out: string[] = [];
let flushScheduled = false;
function record(id: string, t: number): void {
  out.push(`S ${id} ${t.toFixed(3)}`);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      const text = `${out.join("\n")}\n`;
      out = [];
      process.stdout.write(text);
    });
  }
}

async function main(): Promise<void> {
  let close: () => Promise<void>;
  if (kind === "bullmq") {
    const worker = new Worker(
      queue,
      async (job) => {
        record(job.id ?? "?", now());
      },
      {
        connection: { host: "127.0.0.1", port: 6379 },
        concurrency,
        removeOnComplete: { count: 0 },
        removeOnFail: { count: 0 },
      },
    );
    await worker.waitUntilReady();
    close = () => worker.close();
  } else if (kind === "pgboss") {
    const boss = new PgBoss({
      connectionString: "postgres://postgres@127.0.0.1:5432/test",
      schema: "pgboss_bench",
      max: concurrency + 2,
    });
    boss.on("error", (e: unknown) => process.stderr.write(`pg-boss error: ${errorMessage(e)}\n`));
    await boss.start();
    await boss.createQueue(queue).catch(() => undefined);
    for (let i = 0; i < concurrency; i++) {
      await boss.work(queue, { batchSize: 1, pollingIntervalSeconds: Number(pollArg) }, async (jobs) => {
        const t = now();
        for (const j of jobs) record(j.id, t);
      });
    }
    close = () => boss.stop({ graceful: false, wait: true });
  } else {
    throw new Error(`unknown peer ${String(kind)}`);
  }
  process.stdout.write(`${JSON.stringify({ message: "ready", kind, queue, concurrency })}\n`);
  const stop = (): void => {
    void close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`peer worker failed: ${coerceError(e).stack ?? errorMessage(e)}\n`);
  process.exit(1);
});

/**
 * 8. Log flood: trigger acknowledgement latency with and without a flood of log lines from one
 * agent key (issue 13: triggers never wait behind logs). One principal; first triggers alone
 * (the baseline, same run, same principal), then the same triggers while 4 senders, each like an
 * agent's log shipper (its own agent id and run, one 2,000-line `logBatch` in flight), send
 * 1,000,000 lines (quick: 200,000) as fast as the principal takes them. Batches refused by the
 * per-agent ingest bound (`RESOURCE_EXHAUSTED`) are resent after the shipper's backoff. Every
 * line is counted back. The senders run in their own process (`baselines/log-flooder.ts`), so their
 * work never delays the replies this process times. Trigger and ping latencies are both reported: ping touches no store, so
 * the part of a trigger's wait that is the event loop (parsing, publishing) shows apart from the
 * commit lanes. Target: trigger ack p99 under the flood < 2x the p99 without.
 */
import { fileURLToPath } from "node:url";
import type { PrincipalClient } from "@cdktr/protocol";
import { startPrincipal, type PrincipalHandle } from "../harness/cdktr.js";
import { startProcess } from "../harness/proc.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { row } from "../harness/result.js";
import { nowMs, sleep, summarize } from "../harness/stats.js";
import { fmt } from "../harness/table.js";
import { profileFlags, type Scenario } from "../scenario.js";

const FLOODER = fileURLToPath(new URL("../baselines/log-flooder.js", import.meta.url));

/** Senders, each as an agent's log shipper: its own agent id and run, one batch in flight. */
const SENDERS = 4;
/** The agent's default batch size. */
const LINES_PER_BATCH = 2000;

/** Sequential triggers until `until()` says stop (at least `min`); their ack latencies in ms. */
async function triggerLatencies(client: PrincipalClient, min: number, until: () => boolean): Promise<number[]> {
  const out: number[] = [];
  while (out.length < min || !until()) {
    const t0 = nowMs();
    await client.runWorkflow({ workflowId: "bench", source: "bench-flood" });
    out.push(nowMs() - t0);
    await sleep(5);
  }
  return out;
}

interface Sender {
  agentId: string;
  runId: string;
  token: string;
}

/** A run of `bench` leased to a fresh agent id, with its token, so its log lines are accepted. */
async function leasedRun(client: PrincipalClient, agentId: string): Promise<Sender> {
  await client.registerAgent({ agentId, host: "bench", capacity: 1, labels: [], version: "bench", runningRuns: [] });
  const { runId } = await client.runWorkflow({ workflowId: "bench", source: "bench-setup" });
  const work = await client.fetchWork({ agentId, waitMs: 2000, freeSlots: 1 });
  if (work.assignment === null) throw new Error("log-flood: no assignment for the flood's run");
  await client.confirmAssignment({ agentId, runId, token: work.assignment.token });
  return { agentId, runId, token: work.assignment.token };
}

/**
 * Start the flood in its own process ({@link FLOODER}): `perSender` lines from each sender.
 * Resolves once it is connected and sending, with the promise of its result.
 */
async function startFlood(
  principal: PrincipalHandle,
  senders: readonly Sender[],
  perSender: number,
): Promise<{ result: Promise<{ refused: number; stored: number }> }> {
  const spec = {
    endpoint: `tcp://127.0.0.1:${principal.logsPort}`,
    key: principal.key,
    senders,
    perSender,
    linesPerBatch: LINES_PER_BATCH,
  };
  const flooder = await startProcess({
    name: "log-flooder",
    args: [FLOODER],
    env: { FLOODER_SPEC: JSON.stringify(spec) },
  });
  const result = (async () => {
    const line = await flooder.waitForLine((_l, json) => json?.message === "done", 600_000);
    await flooder.exited;
    return JSON.parse(line) as { refused: number; stored: number };
  })();
  return { result };
}

export const logFlood: Scenario = {
  id: "log-flood",
  title: "11. Trigger acks during a log flood (one agent key)",
  needs: ["principal"],
  async run(ctx) {
    const total = ctx.quick ? 200_000 : 1_000_000;
    const S = "11 log flood";
    const wfDir = makeTempDir("wf-flood");
    writeWorkflow(wfDir, "bench", { cmd: "true", args: [] });
    const principal = await startPrincipal({
      workflowDir: wfDir,
      clientTimeoutMs: 120_000,
      ...profileFlags(ctx, "log-flood", "principal"),
    });
    try {
      const client = principal.client;
      const senders: Sender[] = [];
      for (let i = 1; i <= SENDERS; i++) senders.push(await leasedRun(client, `bench-flood-${i}`));
      ctx.log("triggers without a flood");
      await triggerLatencies(client, 50, () => true); // warm-up
      const quiet = summarize(await triggerLatencies(client, ctx.quick ? 200 : 500, () => true));
      const rssBefore = principal.proc.rss();
      ctx.log(`triggers during a flood of ${total} log lines`);
      let done = false;
      const t0 = nowMs();
      const flooding = (await startFlood(principal, senders, total / SENDERS)).result.finally(() => {
        done = true;
      });
      const pingClient = principal.fixture.connect({ timeoutMs: 120_000 });
      const pings: number[] = [];
      const pinging = (async () => {
        while (!done) {
          const p0 = nowMs();
          await pingClient.ping();
          pings.push(nowMs() - p0);
          await sleep(5);
        }
      })();
      const busy = summarize(await triggerLatencies(client, 20, () => done));
      await pinging;
      const ping = summarize(pings);
      const { refused, stored } = await flooding;
      const floodMs = nowMs() - t0;
      const peakGrowthMb = (principal.proc.peakRss() - rssBefore) / (1024 * 1024);
      // Count every line back.
      let counted = 0;
      for (const { runId } of senders) {
        let cursor: string | undefined;
        do {
          const page = await client.queryLogs({ runId, limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
          counted += page.lines.length;
          cursor = page.nextCursor ?? undefined;
        } while (cursor !== undefined);
      }
      const ratio = busy.p99 / quiet.p99;
      return {
        rows: [
          row({
            scenario: S,
            metric: "trigger ack p99 during the flood",
            unit: "ms",
            ours: busy.p99,
            baseline: quiet.p99,
            baselineName: "trigger ack p99 without a flood, same principal",
            better: "lower",
            target: "ratio < 2",
            pass: ratio < 2,
            note: `${busy.n} triggers during ${fmt(total)} lines in ${fmt(floodMs / 1000)} s; p50 ${fmt(busy.p50)} vs ${fmt(quiet.p50)} ms, max ${fmt(busy.max)} ms; ping (no store) p50 ${fmt(ping.p50)} p99 ${fmt(ping.p99)} ms`,
          }),
          row({
            scenario: S,
            metric: "log lines lost / duplicated in the flood",
            unit: "lines",
            ours: Math.abs(total - counted) + Math.abs(total - stored),
            better: "lower",
            target: "= 0",
            pass: counted === total && stored === total,
            note: `sent ${fmt(total)}, acked as stored ${fmt(stored)}, read back ${fmt(counted)}; ${refused} batches refused (RESOURCE_EXHAUSTED) and resent`,
          }),
          row({
            scenario: S,
            metric: "principal peak RSS growth during the flood",
            unit: "MB",
            ours: peakGrowthMb,
            better: "lower",
            note: "VmHWM after the flood minus RSS before it",
          }),
        ],
        details: { total, quiet, busy, ping, refused, stored, counted, floodMs, peakGrowthMb, ratio },
      };
    } finally {
      await principal.stop();
    }
  },
};

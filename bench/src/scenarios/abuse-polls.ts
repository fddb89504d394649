/**
 * 8. Abuse: 60,000 parked `fetchWork` long-polls from one agent key (issue 13). A separate
 * process registers an agent of capacity 4 and pipelines N polls; the principal parks at most the
 * agent's free slots and answers the rest at once. Meanwhile the bench pings the principal
 * every 10 ms. Figures: ping p99 during the flood against ping p99 of the same principal idle
 * (same run), and the principal's RSS growth (peak during the flood minus idle). Targets: ping
 * p99 < 100 ms, RSS growth < 200 MB.
 */
import { join } from "node:path";
import { POLL_FLOOD_SCRIPT } from "@cdktr/test-utils";
import { startPrincipal } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { startProcess } from "../harness/proc.js";
import { row } from "../harness/result.js";
import { nowMs, sleep, summarize } from "../harness/stats.js";
import { profileFlags, type Scenario } from "../scenario.js";

const MB = 1024 * 1024;

/** Ping every `everyMs` until `until()` says stop; the latencies in ms. */
async function pingWhile(ping: () => Promise<unknown>, until: () => boolean, everyMs: number): Promise<number[]> {
  const samples: number[] = [];
  while (!until()) {
    const t0 = nowMs();
    await ping();
    samples.push(nowMs() - t0);
    await sleep(everyMs);
  }
  return samples;
}

export const abusePolls: Scenario = {
  id: "abuse-polls",
  title: "8. Abuse: parked long-polls from one agent key",
  needs: ["principal"],
  async run(ctx) {
    const N = ctx.quick ? 20_000 : 60_000;
    const S = "8 abuse-polls";
    const wfDir = makeTempDir("wf-abuse-polls");
    writeWorkflow(wfDir, "hello", { cmd: "true", args: [] });
    const principal = await startPrincipal({ workflowDir: wfDir, ...profileFlags(ctx, "abuse-polls", "principal") });
    try {
      const ping = (): Promise<unknown> => principal.client.ping();
      await ping();
      ctx.log("abuse-polls: ping p99 of the idle principal (baseline)");
      const idleEnd = nowMs() + (ctx.quick ? 1500 : 3000);
      const idle = await pingWhile(ping, () => nowMs() > idleEnd, 10);
      const rssIdle = principal.proc.rss();
      ctx.log(`abuse-polls: ${N} pipelined fetchWork polls from one agent key`);
      let done = false;
      const flood = await startProcess({
        name: "poll-flood",
        args: [POLL_FLOOD_SCRIPT],
        waitReady: false,
        env: {
          FLOOD_AGENT: "greedy",
          FLOOD_COUNT: String(N),
          FLOOD_CAPACITY: "4",
          FLOOD_WAIT_MS: "20000",
          FLOOD_PORT: String(principal.apiPort),
          FLOOD_KEY_FILE: join(principal.fixture.keysDir, "local-agent.json"),
        },
        onLine: (_line, json) => {
          if (json?.["message"] === "status" && json["answered"] === N) done = true;
        },
      });
      const t0 = nowMs();
      let peak = rssIdle;
      const sampler = setInterval(() => {
        peak = Math.max(peak, principal.proc.rss());
      }, 50);
      let during: number[];
      try {
        during = await pingWhile(ping, () => done || nowMs() - t0 > 120_000, 10);
      } finally {
        clearInterval(sampler);
        await flood.stop("SIGKILL", 1000).catch(() => undefined);
      }
      const floodMs = nowMs() - t0;
      const idleS = summarize(idle);
      const duringS = summarize(during);
      const growthMb = (peak - rssIdle) / MB;
      return {
        rows: [
          row({
            scenario: S,
            metric: `ping p99 during ${N} parked polls`,
            unit: "ms",
            ours: duringS.p99,
            baseline: idleS.p99,
            baselineName: "ping p99 of the same principal idle",
            better: "lower",
            target: "ours < 100 ms",
            pass: duringS.p99 < 100,
          }),
          row({
            scenario: S,
            metric: `principal RSS growth during ${N} parked polls`,
            unit: "MB",
            ours: growthMb,
            baseline: rssIdle / MB,
            baselineName: "RSS of the idle principal",
            better: "lower",
            target: "ours < 200 MB",
            pass: growthMb < 200,
          }),
        ],
        details: { polls: N, floodMs, answeredAll: done, idle: idleS, during: duringS, rssIdle, rssPeak: peak },
      };
    } finally {
      await principal.stop();
    }
  },
};

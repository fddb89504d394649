/**
 * 3. End-to-end throughput: N runs of a one-task workflow running `true`, one agent with
 * concurrency 16, triggers sent 64 in flight; timed from the first trigger to the last run's
 * COMPLETED event. Baseline: node spawning `true` directly, 16 at a time.
 */
import { spawn } from "node:child_process";
import { startAgent, startPrincipal } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { RunWatcher, runBounded } from "../harness/load.js";
import { row } from "../harness/result.js";
import { nowMs } from "../harness/stats.js";
import { profileFlags, type Scenario } from "../scenario.js";

function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("true", [], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.resume();
    child.stderr.resume();
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`true exited ${code}`))));
  });
}

export const throughput: Scenario = {
  id: "throughput",
  title: "3. End-to-end throughput (agent concurrency 16)",
  needs: ["principal", "agent"],
  async run(ctx) {
    const n = ctx.quick ? 300 : 2000;
    const S = "3 throughput";
    ctx.log(`baseline: ${n} spawns of true, 16 at a time`);
    await runBounded(50, 16, spawnTrue);
    const b0 = nowMs();
    await runBounded(n, 16, spawnTrue);
    const basePerSec = (n * 1000) / (nowMs() - b0);

    ctx.log(`ours: ${n} runs`);
    const wfDir = makeTempDir("wf-throughput");
    writeWorkflow(wfDir, "tput", { cmd: "true", args: [] });
    const principal = await startPrincipal({
      workflowDir: wfDir,
      ...profileFlags(ctx, "throughput", "principal"),
    });
    let oursPerSec = Number.NaN;
    const statuses: Record<string, number> = {};
    let triggerMs = 0;
    try {
      const agent = await startAgent(principal, { concurrency: 16, ...profileFlags(ctx, "throughput", "agent") });
      const watcher = new RunWatcher(principal.publishPort, principal.key, "tput");
      try {
        await watcher.settle();
        const t0 = nowMs();
        const ids = new Set<string>();
        await runBounded(n, 64, async () => {
          const r = await principal.client.runWorkflow({ workflowId: "tput", source: "bench" });
          ids.add(r.runId);
        });
        triggerMs = nowMs() - t0;
        const timeoutMs = 120_000 + n * 100;
        // The watcher follows this workflow only, on a fresh principal: n terminal events = done.
        await watcher.waitUntil(() => watcher.finished.size >= n, timeoutMs, `${n} runs to finish`);
        const last = Math.max(...[...ids].map((id) => watcher.finished.get(id)?.at ?? 0));
        oursPerSec = (n * 1000) / (last - t0);
        for (const id of ids) {
          const s = watcher.finished.get(id)?.status ?? "?";
          statuses[s] = (statuses[s] ?? 0) + 1;
        }
      } finally {
        watcher.close();
        await agent.stop();
      }
    } finally {
      await principal.stop();
    }
    ctx.shared.set("throughput.perSecond", oursPerSec);
    const completed = statuses.COMPLETED ?? 0;
    return {
      rows: [
        row({
          scenario: S,
          metric: "runs/s (one task `true`)",
          unit: "/s",
          ours: oursPerSec,
          baseline: basePerSec,
          baselineName: "node spawn of `true`, 16 at a time",
          better: "higher",
          // Issue 15: at least 0.85x of raw spawn (the earlier benchmark issue asked for 0.50x).
          target: "ratio >= 0.85",
          pass: oursPerSec / basePerSec >= 0.85 && completed === n,
          note: completed === n ? `${n} COMPLETED` : `statuses ${JSON.stringify(statuses)}`,
        }),
      ],
      details: { n, basePerSec, oursPerSec, statuses, triggerPhaseMs: triggerMs },
    };
  },
};

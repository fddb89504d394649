/**
 * 2. Dispatch latency: an idle agent; trigger -> first task process started, where the task
 * records its own start (`sh -c 'date +%s%N >> F'`), one run at a time. Baseline: node spawning
 * the same command directly (detached, piped stdio, like the agent does).
 */
import { spawn } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startAgent, startPrincipal } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { row } from "../harness/result.js";
import { fmt } from "../harness/table.js";
import { nowMs, sleep, summarize } from "../harness/stats.js";
import { profileFlags, type Scenario } from "../scenario.js";

/** The last line of `file` once it has more than `size` bytes, as epoch ms. */
async function waitStamp(file: string, size: number, timeoutMs: number): Promise<{ ms: number; size: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = statSync(file);
    if (st.size > size) {
      const text = readFileSync(file, "utf8");
      if (text.endsWith("\n")) {
        const lines = text.trimEnd().split("\n");
        const last = lines[lines.length - 1] ?? "";
        return { ms: Number(BigInt(last) / 1000n) / 1000, size: st.size };
      }
    }
    if (Date.now() > deadline) throw new Error(`no start stamp in ${file} after ${timeoutMs} ms`);
    await sleep(1);
  }
}

function spawnOnce(file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", `date +%s%N >> ${file}`], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.resume();
    child.stderr.resume();
    child.on("error", reject);
    child.on("close", () => resolve());
  });
}

export const dispatchLatency: Scenario = {
  id: "dispatch",
  title: "2. Dispatch latency (trigger -> task process started)",
  needs: ["principal", "agent"],
  async run(ctx) {
    const n = ctx.quick ? 100 : 1000;
    const S = "2 dispatch";
    const dir = makeTempDir("dispatch");

    ctx.log(`baseline: ${n} direct spawns`);
    const baseFile = join(dir, "baseline.txt");
    writeFileSync(baseFile, "");
    const base: number[] = [];
    let size = 0;
    for (let i = 0; i < n + 10; i++) {
      const t0 = nowMs();
      await spawnOnce(baseFile);
      const stamp = await waitStamp(baseFile, size, 5000);
      size = stamp.size;
      if (i >= 10) base.push(stamp.ms - t0);
    }

    ctx.log(`ours: ${n} runs one at a time`);
    const wfDir = makeTempDir("wf-dispatch");
    const oursFile = join(dir, "ours.txt");
    writeFileSync(oursFile, "");
    writeWorkflow(wfDir, "latency", { cmd: "sh", args: ["-c", `date +%s%N >> ${oursFile}`] });
    const principal = await startPrincipal({
      workflowDir: wfDir,
      ...profileFlags(ctx, "dispatch", "principal"),
    });
    const ours: number[] = [];
    const ackMs: number[] = [];
    const phases = {
      commit: [] as number[],
      confirm: [] as number[],
      spawn: [] as number[],
      taskReported: [] as number[],
    };
    try {
      const agent = await startAgent(principal, { concurrency: 4, ...profileFlags(ctx, "dispatch", "agent") });
      try {
        size = 0;
        for (let i = 0; i < n + 10; i++) {
          const t0 = nowMs();
          const reply = await principal.client.runWorkflow({ workflowId: "latency", source: "bench" });
          const t1 = nowMs();
          const stamp = await waitStamp(oursFile, size, 15_000);
          size = stamp.size;
          if (i >= 10) {
            ours.push(stamp.ms - t0);
            ackMs.push(t1 - t0);
          }
          // idle again: wait for the run to finish before the next trigger
          const end = Date.now() + 15_000;
          for (;;) {
            const { run, tasks } = await principal.client.getRun(reply.runId);
            if (run.status === "COMPLETED" || run.status === "FAILED" || run.status === "CRASHED") {
              // Where the time goes (ms-resolution record times): trigger -> commit -> run RUNNING (confirmed) -> task stamp.
              if (i >= 10 && run.startedAt !== null) {
                const created = Date.parse(run.createdAt);
                const started = Date.parse(run.startedAt);
                phases.commit.push(created - t0);
                phases.confirm.push(started - created);
                phases.spawn.push(stamp.ms - started);
                const taskStarted = tasks[0]?.startedAt;
                if (taskStarted !== null && taskStarted !== undefined)
                  phases.taskReported.push(Date.parse(taskStarted) - started);
              }
              break;
            }
            if (Date.now() > end) throw new Error(`run ${reply.runId} still ${run.status} after 15 s`);
            await sleep(2);
          }
          await sleep(5);
        }
      } finally {
        await agent.stop();
      }
    } finally {
      await principal.stop();
    }
    const b = summarize(base);
    const o = summarize(ours);
    ctx.shared.set("dispatch.p50", o.p50);
    ctx.shared.set("dispatch.p99", o.p99);
    return {
      rows: [
        row({
          scenario: S,
          metric: "trigger -> task start p50",
          unit: "ms",
          ours: o.p50,
          baseline: b.p50,
          baselineName: "node spawn of the same command",
          better: "lower",
          target: "overhead <= 1 ms",
          pass: o.p50 - b.p50 <= 1,
          note: `overhead ${(o.p50 - b.p50).toFixed(2)} ms; p50 of phases: commit ${fmt(summarize(phases.commit).p50)}, to RUNNING ${fmt(summarize(phases.confirm).p50)}, then task ${fmt(summarize(phases.spawn).p50)} ms`,
        }),
        row({
          scenario: S,
          metric: "trigger -> task start p99",
          unit: "ms",
          ours: o.p99,
          baseline: b.p99,
          baselineName: "node spawn of the same command",
          better: "lower",
          target: "overhead <= 5 ms",
          pass: o.p99 - b.p99 <= 5,
          note: `overhead ${(o.p99 - b.p99).toFixed(2)} ms`,
        }),
      ],
      details: {
        n,
        baseline: b,
        ours: o,
        triggerAck: summarize(ackMs),
        phases: {
          "trigger sent -> createdAt (commit)": summarize(phases.commit),
          "createdAt -> run startedAt (fetch + confirm committed)": summarize(phases.confirm),
          "run startedAt -> task's own stamp (spawn)": summarize(phases.spawn),
          "run startedAt -> task startedAt (agent's report)": summarize(phases.taskReported),
        },
      },
    };
  },
};

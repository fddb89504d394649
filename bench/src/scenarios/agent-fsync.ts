/**
 * 8. Cost of the agent's fsync (`CDKTR_AGENT_FSYNC`): the status outbox journal, the log spool and
 * the process-group records are fsynced once per turn of the event loop. Two loads, each on an
 * agent with fsync on (the default) and on one with it off, alternating (on, off, off, on) so a
 * drifting machine weighs on both alike: (a) the log pipeline of scenario 5 (one task printing N
 * lines; the principal is up, so lines go straight to it and only status updates and the task's
 * process-group record are written), and (b) fan-out runs of many one-line tasks (every task
 * writes two status updates and a record: the journal's worst case). Baseline: the same agent with
 * fsync off; cost = `off / on - 1`.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { workflowYaml } from "@cdktr/test-utils";
import { startAgent, startPrincipal } from "../harness/cdktr.js";
import { makeTempDir } from "../harness/fs.js";
import { RunWatcher } from "../harness/load.js";
import { row } from "../harness/result.js";
import { nowMs, sleep } from "../harness/stats.js";
import type { Scenario } from "../scenario.js";

const FAN_WIDTH = 20;

export const agentFsync: Scenario = {
  id: "fsync",
  title: "9. Agent fsync cost (outbox, spool and process-group records)",
  needs: ["principal", "agent"],
  async run(ctx) {
    const S = "9 fsync";
    const lines = ctx.quick ? 50_000 : 300_000;
    const fanRuns = ctx.quick ? 5 : 20;
    const wfDir = makeTempDir("wf-fsync");
    writeFileSync(
      join(wfDir, "fsync-logs.yml"),
      workflowYaml({ name: "fsync-logs", tasks: { seq: { cmd: "seq", args: ["1", String(lines)] } } }),
    );
    const tasks = Object.fromEntries(
      Array.from({ length: FAN_WIDTH }, (_, i) => [`t${i}`, { cmd: "true", args: [] as string[] }]),
    );
    writeFileSync(join(wfDir, "fsync-fan.yml"), workflowYaml({ name: "fsync-fan", tasks }));
    const perMode = {
      on: { lines: [] as number[], tasks: [] as number[] },
      off: { lines: [] as number[], tasks: [] as number[] },
    };
    for (const mode of ["on", "off", "off", "on"] as const) {
      ctx.log(`agent with CDKTR_AGENT_FSYNC=${mode}: ${lines} log lines, ${fanRuns} runs of ${FAN_WIDTH} tasks`);
      // A principal per round: no long-poll or lease of a previous round's agent in the way.
      const principal = await startPrincipal({ workflowDir: wfDir });
      try {
        const agent = await startAgent(principal, { concurrency: 4, env: { CDKTR_AGENT_FSYNC: mode } });
        const logsWatch = new RunWatcher(principal.publishPort, principal.key, "fsync-logs");
        const fanWatch = new RunWatcher(principal.publishPort, principal.key, "fsync-fan");
        try {
          await logsWatch.settle();
          // (a) the log pipeline, until the last line is queryable
          const t0 = nowMs();
          const { runId } = await principal.client.runWorkflow({ workflowId: "fsync-logs", source: "bench" });
          await logsWatch.waitUntil(() => logsWatch.finished.has(runId), 600_000, "the log run to finish");
          for (const deadline = Date.now() + 300_000; ; await sleep(5)) {
            const page = await principal.client.queryLogs({ runId, order: "desc", limit: 20 });
            if (page.lines.some((l) => l.stream === "stdout" && l.line === String(lines))) break;
            if (Date.now() > deadline) throw new Error("the last line never became queryable");
          }
          perMode[mode].lines.push((lines * 1000) / (nowMs() - t0));
          // (b) fan-out runs, all triggered at once
          const t1 = nowMs();
          const ids: string[] = [];
          for (let r = 0; r < fanRuns; r++) {
            ids.push((await principal.client.runWorkflow({ workflowId: "fsync-fan", source: "bench" })).runId);
          }
          await fanWatch.waitUntil(() => ids.every((id) => fanWatch.finished.has(id)), 600_000, "the fan-out runs");
          const bad = ids.filter((id) => fanWatch.finished.get(id)?.status !== "COMPLETED");
          if (bad.length > 0) throw new Error(`${bad.length} fan-out runs did not complete`);
          perMode[mode].tasks.push((fanRuns * FAN_WIDTH * 1000) / (nowMs() - t1));
        } finally {
          logsWatch.close();
          fanWatch.close();
          await agent.stop();
        }
      } finally {
        await principal.stop();
      }
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const lOn = mean(perMode.on.lines);
    const lOff = mean(perMode.off.lines);
    const tOn = mean(perMode.on.tasks);
    const tOff = mean(perMode.off.tasks);
    const pct = (on: number, off: number): string => `${((off / on - 1) * 100).toFixed(1)} %`;
    return {
      rows: [
        row({
          scenario: S,
          metric: "log lines/s, fsync on",
          unit: "/s",
          ours: lOn,
          baseline: lOff,
          baselineName: "same agent, CDKTR_AGENT_FSYNC=off",
          better: "higher",
          note: `cost ${pct(lOn, lOff)}; ${lines} lines, principal up (spool unused)`,
        }),
        row({
          scenario: S,
          metric: "tasks/s (fan-out), fsync on",
          unit: "/s",
          ours: tOn,
          baseline: tOff,
          baselineName: "same agent, CDKTR_AGENT_FSYNC=off",
          better: "higher",
          note: `cost ${pct(tOn, tOff)}; ${fanRuns} runs of ${FAN_WIDTH} tasks, 4 at a time`,
        }),
      ],
      details: { lines, fanRuns, fanWidth: FAN_WIDTH, perMode },
    };
  },
};

/**
 * 4. Scheduler precision: W workflows each firing every second (`* * * * * *`) for D seconds,
 * principal + scheduler processes, no agent (runs stay QUEUED). Lateness = the principal's commit
 * time of the run (`createdAt`) minus `scheduledFor`; also the scheduler's own send lateness
 * when its trigger log line carries it. Duplicates and misses are counted over every
 * (workflow, second) of the window. Baseline: timer lateness of a bare node process arming one
 * timer per second (machine noise of the same run).
 */
import { fileURLToPath } from "node:url";
import { startPrincipal, startScheduler } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import type { LogRecord } from "../harness/proc.js";
import { startProcess } from "../harness/proc.js";
import { row } from "../harness/result.js";
import { sleep, summarize } from "../harness/stats.js";
import { profileFlags, type Scenario } from "../scenario.js";

const TIMER_BASELINE = fileURLToPath(new URL("../baselines/timer-lateness.js", import.meta.url));

async function timerBaseline(count: number, seconds: number): Promise<number[]> {
  let result: number[] = [];
  const p = await startProcess({
    name: "timer-baseline",
    args: [TIMER_BASELINE, String(count), String(seconds)],
    waitReady: false,
    keepLines: 2,
    onLine: (_line, json) => {
      if (json?.message === "done") result = json.lateness as number[];
    },
  });
  await p.exited;
  await p.stop();
  return result;
}

/** The send lateness of a scheduler `triggered` log record (`latenessMs`: send time - scheduledFor). */
function sendLateness(json: LogRecord): { at: number; late: number } | undefined {
  if (json.message !== "triggered") return undefined;
  const v = json.latenessMs;
  const sf = json.scheduledFor;
  return typeof v === "number" && typeof sf === "string" ? { at: Date.parse(sf), late: v } : undefined;
}

export const schedulerPrecision: Scenario = {
  id: "scheduler",
  title: "4. Scheduler precision (every workflow every second)",
  needs: ["principal", "scheduler"],
  async run(ctx) {
    const W = ctx.quick ? 100 : 500;
    const D = ctx.quick ? 8 : 30;
    const S = "4 scheduler";
    ctx.log(`baseline: timer lateness, ${W} occurrences/s for ${Math.min(D, 5)} s`);
    const base = summarize(await timerBaseline(W, Math.min(D, 5)));

    ctx.log(`ours: ${W} workflows every second for ${D} s`);
    const wfDir = makeTempDir("wf-sched");
    for (let i = 0; i < W; i++)
      writeWorkflow(wfDir, `s${String(i).padStart(4, "0")}`, { cron: "* * * * * *", cmd: "true", args: [] });
    const principal = await startPrincipal({
      workflowDir: wfDir,
      ...profileFlags(ctx, "scheduler", "principal"),
    });
    const sendLate: { at: number; late: number }[] = [];
    let triggerLines = 0;
    let errorLines = 0;
    const runs: { workflowId: string; scheduledFor: string; createdAt: string }[] = [];
    let windowStart = 0;
    let windowEnd = 0;
    try {
      const scheduler = await startScheduler(principal, {
        ...profileFlags(ctx, "scheduler", "scheduler"),
        onLine: (_line, json) => {
          if (json === undefined) return;
          const late = sendLateness(json);
          if (late !== undefined) {
            triggerLines++;
            sendLate.push(late);
          }
          if (json.level === "error") errorLines++;
        },
      });
      try {
        // The first full second after the scheduler is up (and has loaded W workflows) opens the window.
        await sleep(1500);
        windowStart = Math.ceil(Date.now() / 1000) * 1000;
        await sleep(windowStart - Date.now() + D * 1000);
        windowEnd = windowStart + D * 1000; // exclusive
      } finally {
        await scheduler.stop();
      }
      await sleep(500);
      let cursor: string | undefined;
      do {
        const page = await principal.client.listRuns({
          source: "scheduler",
          limit: 1000,
          ...(cursor !== undefined ? { cursor } : {}),
        });
        for (const r of page.runs)
          if (r.scheduledFor !== null)
            runs.push({ workflowId: r.workflowId, scheduledFor: r.scheduledFor, createdAt: r.createdAt });
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
    } finally {
      await principal.stop();
    }
    const perKey = new Map<string, number>();
    const lateness: number[] = [];
    for (const r of runs) {
      const k = `${r.workflowId}@${r.scheduledFor}`;
      perKey.set(k, (perKey.get(k) ?? 0) + 1);
      const sf = Date.parse(r.scheduledFor);
      if (sf >= windowStart && sf < windowEnd) lateness.push(Date.parse(r.createdAt) - sf);
    }
    let duplicates = 0;
    for (const c of perKey.values()) if (c > 1) duplicates += c - 1;
    let misses = 0;
    for (let i = 0; i < W; i++) {
      const id = `s${String(i).padStart(4, "0")}`;
      for (let t = windowStart; t < windowEnd; t += 1000) {
        if (!perKey.has(`${id}@${new Date(t).toISOString()}`)) misses++;
      }
    }
    const expected = W * D;
    const lat = summarize(lateness);
    const send = summarize(sendLate.filter((x) => x.at >= windowStart && x.at < windowEnd).map((x) => x.late));
    const rows = [
      row({
        scenario: S,
        metric: "lateness (commit - scheduledFor) p50",
        unit: "ms",
        ours: lat.p50,
        baseline: base.p50,
        baselineName: "bare node timer lateness",
        better: "lower",
      }),
      row({
        scenario: S,
        metric: "lateness (commit - scheduledFor) p99",
        unit: "ms",
        ours: lat.p99,
        baseline: base.p99,
        baselineName: "bare node timer lateness",
        better: "lower",
        target: "<= 10 ms",
        pass: lat.p99 <= 10,
      }),
      row({
        scenario: S,
        metric: "lateness (commit - scheduledFor) max",
        unit: "ms",
        ours: lat.max,
        baseline: base.max,
        baselineName: "bare node timer lateness",
        better: "lower",
      }),
      row({
        scenario: S,
        metric: "duplicates",
        unit: "runs",
        ours: duplicates,
        better: "lower",
        target: "= 0",
        pass: duplicates === 0,
      }),
      row({
        scenario: S,
        metric: "misses",
        unit: "occurrences",
        ours: misses,
        better: "lower",
        target: "= 0",
        pass: misses === 0,
        note: `${expected} expected in the window, ${lateness.length} found`,
      }),
    ];
    if (send.n > 0) {
      rows.push(
        row({
          scenario: S,
          metric: "scheduler send lateness p50",
          unit: "ms",
          ours: send.p50,
          baseline: base.p50,
          baselineName: "bare node timer lateness",
          better: "lower",
        }),
        row({
          scenario: S,
          metric: "scheduler send lateness p99",
          unit: "ms",
          ours: send.p99,
          baseline: base.p99,
          baselineName: "bare node timer lateness",
          better: "lower",
        }),
      );
    }
    return {
      rows,
      details: {
        workflows: W,
        seconds: D,
        expected,
        found: lateness.length,
        duplicates,
        misses,
        lateness: lat,
        sendLateness: send,
        triggerLines,
        errorLines,
        baseline: base,
      },
    };
  },
};

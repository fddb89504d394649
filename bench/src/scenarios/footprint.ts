/**
 * 6. Footprint: principal RSS and load time (spawn -> `ready`) with F workflow files and R runs
 * in history (inserted through the API beforehand: a workflow with `max_active_runs: 1` and
 * `overlap: skip`, so all but one of them are terminal SKIPPED records), and the time to pick up
 * one changed file among the F. The files are dated an hour back, as a deployment's workflow files
 * are when a principal restarts (a file written within seconds of being read is read again: the
 * loader's racy-clean rule). Baselines: a bare node process that reads and YAML-parses the same
 * files (time, RSS), and `fs.watch` noticing the same write. Targets (issue 15): load time and RSS
 * at most 1.5x of the baseline's.
 */
import { utimesSync, watch, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startPrincipal } from "../harness/cdktr.js";
import { makeTempDir, oneTaskWorkflow, writeWorkflow } from "../harness/fs.js";
import { runBounded } from "../harness/load.js";
import { startProcess } from "../harness/proc.js";
import { row } from "../harness/result.js";
import { nowMs, sleep, summarize } from "../harness/stats.js";
import { profileFlags, type Scenario } from "../scenario.js";

const YAML_LOAD = fileURLToPath(new URL("../baselines/yaml-load.js", import.meta.url));

function fileId(i: number): string {
  // 100 files per sub-directory, like a real tree
  return `team${String(Math.floor(i / 100)).padStart(3, "0")}/wf${String(i).padStart(5, "0")}`;
}

/** ms from writing `file` to fs.watch reporting it. */
async function fsWatchPickup(dir: string, file: string, text: string): Promise<number> {
  return new Promise((resolve) => {
    const w = watch(dir, { recursive: true });
    const t0 = nowMs();
    w.on("change", () => {
      w.close();
      resolve(nowMs() - t0);
    });
    writeFileSync(file, text);
  });
}

export const footprint: Scenario = {
  id: "footprint",
  title: "6. Footprint (many workflow files, long history)",
  needs: ["principal"],
  async run(ctx) {
    const F = ctx.quick ? 2000 : 10_000;
    const R = ctx.quick ? 10_000 : 100_000;
    const S = "6 footprint";
    const wfDir = makeTempDir("wf-footprint");
    const anHourAgo = new Date(Date.now() - 3_600_000);
    for (let i = 0; i < F; i++) {
      const file = writeWorkflow(wfDir, fileId(i), {
        cmd: "sh",
        args: ["-c", `echo workflow ${i}`],
        description: `generated workflow ${i}`,
        ...(i % 10 === 0 ? { cron: "0 0 3 * * *" } : {}),
      });
      utimesSync(file, anHourAgo, anHourAgo);
    }
    writeWorkflow(wfDir, "history", { cmd: "true", args: [], extra: ["max_active_runs: 1", "overlap: skip"] });

    ctx.log(`baseline: node reading + parsing ${F + 1} YAML files`);
    const base = await startProcess({ name: "yaml-load", args: [YAML_LOAD, wfDir] });
    const baseLoadMs = base.readyAt - base.spawnedAt;
    await sleep(500);
    const baseRss = base.rss();
    await base.stop();

    ctx.log(`ours: inserting ${R} runs through the API`);
    const dbPath = join(makeTempDir("db-footprint"), "cdktr.db");
    const first = await startPrincipal({ workflowDir: wfDir, dbPath, readyTimeoutMs: 300_000 });
    const firstLoadMs = first.proc.readyAt - first.proc.spawnedAt;
    const i0 = nowMs();
    try {
      await runBounded(R, 64, () => first.client.runWorkflow({ workflowId: "history", source: "bench" }));
    } finally {
      await first.stop();
    }
    const insertMs = nowMs() - i0;

    ctx.log("ours: restart with the full history");
    const principal = await first.restart(profileFlags(ctx, "footprint", "principal"));
    const loadMs = principal.proc.readyAt - principal.proc.spawnedAt;
    const pickups: number[] = [];
    const basePickups: number[] = [];
    let rssReady = 0;
    let rssSettled = 0;
    let peak = 0;
    let listed = 0;
    try {
      rssReady = principal.proc.rss();
      const wf = await principal.client.listWorkflows();
      listed = wf.workflows.length;
      await sleep(2000);
      rssSettled = principal.proc.rss();
      const trials = ctx.quick ? 3 : 5;
      for (let t = 0; t < trials; t++) {
        const i = (t * 997 + 123) % F;
        const id = fileId(i).replaceAll("/", ".");
        const file = join(wfDir, `${fileId(i)}.yml`);
        const desc = `changed ${t} ${Date.now()}`;
        const t0 = nowMs();
        writeFileSync(file, oneTaskWorkflow(id, { cmd: "sh", args: ["-c", `echo workflow ${i}`], description: desc }));
        const deadline = Date.now() + 30_000;
        for (;;) {
          const { workflow } = await principal.client.getWorkflow(id);
          if (workflow.description === desc) break;
          if (Date.now() > deadline) throw new Error(`change of ${id} not picked up in 30 s`);
          await sleep(2);
        }
        pickups.push(nowMs() - t0);
        await sleep(300);
        // baseline: fs.watch on a write of the same size to a scratch copy
        const scratch = makeTempDir("watch");
        basePickups.push(
          await fsWatchPickup(
            scratch,
            join(scratch, "x.yml"),
            oneTaskWorkflow(id, { cmd: "sh", args: [], description: desc }),
          ),
        );
      }
      peak = principal.proc.peakRss();
    } finally {
      await principal.stop();
    }
    const MB = 1024 * 1024;
    const pick = summarize(pickups);
    const basePick = summarize(basePickups);
    return {
      rows: [
        row({
          scenario: S,
          metric: `load time (${F} files, ${R} runs)`,
          unit: "ms",
          ours: loadMs,
          baseline: baseLoadMs,
          baselineName: "node reading + YAML-parsing the files",
          better: "lower",
          target: "ratio <= 1.50",
          pass: loadMs / baseLoadMs <= 1.5,
          note: `${listed} workflows listed; cold first start ${firstLoadMs.toFixed(0)} ms`,
        }),
        row({
          scenario: S,
          metric: "RSS after ready (+2 s)",
          unit: "MB",
          ours: rssSettled / MB,
          baseline: baseRss / MB,
          baselineName: "node holding the parsed files",
          better: "lower",
          target: "ratio <= 1.50",
          pass: rssSettled / baseRss <= 1.5,
          note: `at ready ${(rssReady / MB).toFixed(0)} MB, peak ${(peak / MB).toFixed(0)} MB`,
        }),
        row({
          scenario: S,
          metric: "pick up 1 changed file (median)",
          unit: "ms",
          ours: pick.p50,
          baseline: basePick.p50,
          baselineName: "fs.watch event",
          better: "lower",
          note: `max ${pick.max.toFixed(0)} ms over ${pick.n}`,
        }),
      ],
      details: {
        files: F,
        runs: R,
        insertMs,
        insertPerSecond: (R * 1000) / insertMs,
        firstLoadMs,
        loadMs,
        baseLoadMs,
        rssReady,
        rssSettled,
        peakRss: peak,
        baseRss,
        pickups,
        basePickups,
        listed,
      },
    };
  },
};

/**
 * `npm run bench [-- --quick] [-- --only trigger,dispatch] [-- --profile trigger] [-- --update-readme]`
 *
 * Runs every scenario against the real built processes, prints one table (every figure next to
 * a baseline measured in the same run) and writes `bench/results/latest.json` (and
 * `latest.md`). `--quick` is the reduced version (under 2 minutes). `--profile <ids>` runs the
 * principal of those scenarios under `node --cpu-prof` (profiles in bench/results/profiles).
 * `--update-readme` replaces the table in bench/README.md (full runs).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, hostname, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { missingApps } from "./harness/cdktr.js";
import { removeTempDirs } from "./harness/fs.js";
import { killAllSync, stopAll } from "./harness/proc.js";
import { naRow, row, type Row, type ScenarioResult } from "./harness/result.js";
import { nowMs } from "./harness/stats.js";
import { renderTable } from "./harness/table.js";
import type { BenchContext, Scenario } from "./scenario.js";
import { abuseFrames } from "./scenarios/abuse-frames.js";
import { abusePolls } from "./scenarios/abuse-polls.js";
import { agentFsync } from "./scenarios/agent-fsync.js";
import { dispatchLatency } from "./scenarios/dispatch-latency.js";
import { footprint } from "./scenarios/footprint.js";
import { logFlood } from "./scenarios/log-flood.js";
import { logPipeline } from "./scenarios/log-pipeline.js";
import { dashboardRunsPage } from "./scenarios/dashboard-runs-page.js";
import { comparePeers, peers } from "./scenarios/peers.js";
import { schedulerPrecision } from "./scenarios/scheduler-precision.js";
import { throughput } from "./scenarios/throughput.js";
import { triggerAcceptance } from "./scenarios/trigger-acceptance.js";
import { coerceError, errorMessage } from "@cdktr/protocol";

const SCENARIOS: Scenario[] = [
  triggerAcceptance,
  dispatchLatency,
  throughput,
  schedulerPrecision,
  logPipeline,
  footprint,
  peers,
  abusePolls,
  agentFsync,
  abuseFrames,
  logFlood,
  dashboardRunsPage,
];
const BENCH_DIR = fileURLToPath(new URL("../", import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, "results");

function argValue(args: string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const a = args[i] ?? "";
  return a.includes("=") ? a.slice(a.indexOf("=") + 1) : args[i + 1];
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const only = argValue(args, "--only")
    ?.split(",")
    .filter((s) => s !== "");
  const profile = new Set(
    argValue(args, "--profile")
      ?.split(",")
      .filter((s) => s !== "") ?? [],
  );
  const unknown = (only ?? []).concat([...profile]).filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown scenario id(s): ${unknown.join(", ")}; known: ${SCENARIOS.map((s) => s.id).join(", ")}\n`,
    );
    return 2;
  }
  const profileDir = profile.size > 0 ? join(RESULTS_DIR, "profiles") : null;
  if (profileDir !== null) mkdirSync(profileDir, { recursive: true });
  const ctx: BenchContext = {
    quick,
    shared: new Map(),
    profile,
    profileDir,
    logLines: argValue(args, "--log-lines") !== undefined ? Number(argValue(args, "--log-lines")) : null,
    log: (m) => process.stderr.write(`  ${m}\n`),
  };
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  const results: ScenarioResult[] = [];
  for (const s of SCENARIOS) {
    if (only !== undefined && !only.includes(s.id)) continue;
    process.stderr.write(`[bench] ${s.title}${quick ? " (quick)" : ""}\n`);
    const t0 = nowMs();
    const missing = missingApps(...s.needs);
    if (missing !== null) {
      results.push({
        id: s.id,
        title: s.title,
        rows: [naRow(s.id, s.title, missing)],
        details: {},
        skipped: missing,
        durationMs: 0,
      });
      continue;
    }
    try {
      const r = await s.run(ctx);
      results.push({ id: s.id, title: s.title, rows: r.rows, details: r.details, durationMs: nowMs() - t0 });
    } catch (e) {
      const msg = errorMessage(e);
      process.stderr.write(`  failed: ${msg}\n`);
      results.push({
        id: s.id,
        title: s.title,
        rows: [naRow(s.id, s.title, (msg.split("\n")[0] ?? msg).slice(0, 200))],
        details: { error: msg },
        skipped: msg,
        durationMs: nowMs() - t0,
      });
    } finally {
      await stopAll();
      removeTempDirs();
    }
    process.stderr.write(`  done in ${((nowMs() - t0) / 1000).toFixed(1)} s\n`);
  }
  const dispatchResult = results.find((r) => r.id === "dispatch" && r.skipped === undefined);
  const bullP50 = ctx.shared.get("bullmq.p50");
  if (dispatchResult !== undefined && bullP50 !== undefined) {
    dispatchResult.rows.push(
      row({
        scenario: "2 dispatch",
        metric: "trigger -> task start p50 vs BullMQ enqueue -> handler p50",
        unit: "ms",
        ours: ctx.shared.get("dispatch.p50") ?? null,
        baseline: bullP50,
        baselineName: "BullMQ, same run (scenario 7)",
        better: "lower",
      }),
    );
  }
  const peerRows = comparePeers(ctx.shared);
  const peerResult = results.find((r) => r.id === "peers");
  if (peerResult !== undefined) peerResult.rows.unshift(...peerRows);
  const rows: Row[] = results.flatMap((r) => r.rows);
  const table = renderTable(rows);
  const totalS = (Date.now() - started.getTime()) / 1000;
  const header = `cdktr bench ${quick ? "(quick) " : ""}${started.toISOString()} on ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}, ${totalS.toFixed(0)} s, load average ${loadAtStart.toFixed(1)} at start / ${(loadavg()[0] ?? 0).toFixed(1)} at end`;
  process.stdout.write(`\n${header}\n\n${table}\n`);
  const failed = rows.filter((r) => r.pass === false).length;
  process.stdout.write(
    `\n${failed === 0 ? "every stated target met" : `${failed} target(s) missed`}; results in bench/results/latest.json\n`,
  );

  mkdirSync(RESULTS_DIR, { recursive: true });
  const doc = {
    date: started.toISOString(),
    quick,
    durationS: totalS,
    machine: {
      host: hostname(),
      cpus: cpus().length,
      model: cpus()[0]?.model ?? "",
      loadavgAtStart: loadAtStart,
      loadavgAtEnd: loadavg(),
      node: process.version,
    },
    rows,
    scenarios: results,
  };
  writeFileSync(join(RESULTS_DIR, "latest.json"), `${JSON.stringify(doc, null, 2)}\n`);
  writeFileSync(join(RESULTS_DIR, "latest.md"), `${header}\n\n${table}\n`);
  if (args.includes("--update-readme")) {
    const readme = join(BENCH_DIR, "README.md");
    const text = readFileSync(readme, "utf8");
    const start = "<!-- bench:table:start -->";
    const end = "<!-- bench:table:end -->";
    const a = text.indexOf(start);
    const b = text.indexOf(end);
    if (a >= 0 && b > a) {
      writeFileSync(readme, `${text.slice(0, a + start.length)}\n${header}\n\n${table}\n${text.slice(b)}`);
    } else {
      process.stderr.write("README.md has no bench:table markers; not updated\n");
    }
  }
  return 0;
}

process.on("exit", killAllSync);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    killAllSync();
    removeTempDirs();
    process.exit(130);
  });
}
main().then(
  (code) => {
    process.exitCode = code;
    // zeromq sockets and redis/pg pools may hold the loop: exit once written.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (e: unknown) => {
    process.stderr.write(`bench failed: ${coerceError(e).stack ?? errorMessage(e)}\n`);
    killAllSync();
    process.exit(1);
  },
);

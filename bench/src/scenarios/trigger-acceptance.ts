/**
 * 1. Trigger acceptance: 64 `runWorkflow` requests kept in flight (an ack means the run is
 * committed) against (a) a bare DEALER -> ROUTER echo and (b) the echo plus the same SQLite
 * group commit per batch, each server in its own process; and the cost of security: the same
 * load on a principal with CURVE and keys (the default) and on one with `CDKTR_AUTH=off`.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { echoLoad } from "../baselines/echo-client.js";
import type { PrincipalClient } from "@cdktr/protocol";
import { startPrincipal, type PrincipalHandle } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { type ClosedLoopResult, closedLoop } from "../harness/load.js";
import { startProcess } from "../harness/proc.js";
import { row, type Row } from "../harness/result.js";
import { summarize } from "../harness/stats.js";
import { fmt, percent } from "../harness/table.js";
import { profileFlags, type BenchContext, type Scenario } from "../scenario.js";

const ECHO_SERVER = fileURLToPath(new URL("../baselines/echo-server.js", import.meta.url));
const CONCURRENCY = 64;

async function baseline(mode: "echo" | "sqlite", durationMs: number): Promise<ReturnType<typeof echoLoad>> {
  const args = [ECHO_SERVER, mode];
  if (mode === "sqlite") args.push(join(makeTempDir("echo-db"), "echo.db"));
  const server = await startProcess({ name: `echo-${mode}`, args });
  try {
    const endpoint = String(server.ready.endpoint);
    await echoLoad(endpoint, CONCURRENCY, Math.min(500, durationMs / 3)); // warm-up
    return await echoLoad(endpoint, CONCURRENCY, durationMs);
  } finally {
    await server.stop();
  }
}

/** A principal on a one-workflow directory, with authentication `auth`. */
async function startOurs(ctx: BenchContext, auth: "on" | "off"): Promise<PrincipalHandle> {
  const wfDir = makeTempDir(`wf-trigger-${auth}`);
  writeWorkflow(wfDir, "bench", { cmd: "true", args: [] });
  // Only the measured configuration (CURVE on) is profiled.
  return startPrincipal({
    workflowDir: wfDir,
    auth,
    ...(auth === "on" ? profileFlags(ctx, "trigger", "principal") : {}),
  });
}

/** Runs of `source`, counted page by page. */
async function countRuns(client: PrincipalClient, source: string): Promise<number> {
  let n = 0;
  let cursor: string | undefined;
  do {
    const page = await client.listRuns({ source, limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
    n += page.runs.length;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return n;
}

/** Several rounds of a closed loop as one: totals, rate over the summed time, all latencies. */
function combine(results: readonly ClosedLoopResult[]): ClosedLoopResult {
  const completed = results.reduce((a, r) => a + r.completed, 0);
  const elapsedMs = results.reduce((a, r) => a + r.elapsedMs, 0);
  return {
    completed,
    errors: results.reduce((a, r) => a + r.errors, 0),
    firstError: results.find((r) => r.firstError !== null)?.firstError ?? null,
    elapsedMs,
    perSecond: (completed * 1000) / elapsedMs,
    latencies: results.flatMap((r) => r.latencies),
  };
}

export const triggerAcceptance: Scenario = {
  id: "trigger",
  title: "1. Trigger acceptance (64 in flight)",
  needs: ["principal"],
  async run(ctx) {
    const durationMs = ctx.quick ? 1500 : 5000;
    const S = "1 trigger";
    ctx.log("baseline (a): zeromq echo");
    const echo = await baseline("echo", durationMs);
    ctx.log("baseline (b): echo + sqlite group commit");
    const echoDb = await baseline("sqlite", durationMs);

    // Ours, as users run it (CURVE and keys on), and with CDKTR_AUTH=off for the cost of
    // security: two principals up at once, measured in alternating rounds (on, off, off, on, ...)
    // so that a drifting machine load weighs on both alike.
    ctx.log("ours: principal runWorkflow, CURVE on and off in alternating rounds");
    const modes = ["on", "off"] as const;
    const principals = { on: await startOurs(ctx, "on"), off: await startOurs(ctx, "off") };
    const rounds = ctx.quick ? 2 : 4;
    const measured = { on: [] as ClosedLoopResult[], off: [] as ClosedLoopResult[] };
    const stored = { on: 0, off: 0 };
    try {
      for (const mode of modes) {
        const client = principals[mode].client;
        await client.ping();
        await closedLoop(CONCURRENCY, Math.min(500, durationMs / 3), () =>
          client.runWorkflow({ workflowId: "bench", source: "bench-warmup" }),
        );
      }
      for (let r = 0; r < rounds; r++) {
        for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
          const client = principals[mode].client;
          measured[mode].push(
            await closedLoop(CONCURRENCY, durationMs / rounds, () =>
              client.runWorkflow({ workflowId: "bench", source: "bench" }),
            ),
          );
        }
      }
      // Every acknowledged trigger must be stored: count the runs of this source.
      for (const mode of modes) stored[mode] = await countRuns(principals[mode].client, "bench");
    } finally {
      await Promise.all(modes.map((m) => principals[m].stop()));
    }
    const ours = combine(measured.on);
    const plain = combine(measured.off);
    const lat = summarize(ours.latencies);
    ctx.shared.set("trigger.perSecond", ours.perSecond);
    ctx.shared.set("trigger.p50", lat.p50);
    ctx.shared.set("trigger.p99", lat.p99);
    const rows: Row[] = [
      row({
        scenario: S,
        metric: "triggers/s vs bare echo (a)",
        unit: "/s",
        ours: ours.perSecond,
        baseline: echo.perSecond,
        baselineName: "zmq DEALER->ROUTER echo",
        better: "higher",
        target: "ratio >= 0.60",
        pass: ours.perSecond / echo.perSecond >= 0.6,
        note:
          ours.errors > 0
            ? `${ours.errors} errors: ${ours.firstError ?? ""}`
            : `CURVE on; ${ours.completed} acked, ${stored.on} stored`,
      }),
      row({
        scenario: S,
        metric: "triggers/s vs echo+SQLite (b)",
        unit: "/s",
        ours: ours.perSecond,
        baseline: echoDb.perSecond,
        baselineName: "echo + SQLite group commit (FULL)",
        better: "higher",
      }),
      row({
        scenario: S,
        metric: "ack latency p50",
        unit: "ms",
        ours: lat.p50,
        baseline: summarize(echoDb.latencies).p50,
        baselineName: "echo + SQLite group commit",
        better: "lower",
      }),
      row({
        scenario: S,
        metric: "ack latency p99",
        unit: "ms",
        ours: lat.p99,
        baseline: summarize(echoDb.latencies).p99,
        baselineName: "echo + SQLite group commit",
        better: "lower",
      }),
    ];
    const plainLat = summarize(plain.latencies);
    // The cost of security: how much longer each trigger takes with CURVE (1 / throughput).
    const cost = plain.perSecond / ours.perSecond - 1;
    rows.push(
      row({
        scenario: S,
        metric: "cost of security: triggers/s CURVE on vs off",
        unit: "/s",
        ours: ours.perSecond,
        baseline: plain.perSecond,
        baselineName: "the same principal with CDKTR_AUTH=off",
        better: "higher",
        target: "cost < 15 %",
        pass: cost < 0.15,
        note:
          plain.errors > 0
            ? `${plain.errors} errors with auth off: ${plain.firstError ?? ""}`
            : `cost ${percent(cost)} per trigger; ${rounds} alternating rounds each; ${plain.completed} acked, ${stored.off} stored with auth off`,
      }),
      row({
        scenario: S,
        metric: "cost of security: ack latency p50 on vs off",
        unit: "ms",
        ours: lat.p50,
        baseline: plainLat.p50,
        baselineName: "the same principal with CDKTR_AUTH=off",
        better: "lower",
        note: `p99 ${fmt(lat.p99)} vs ${fmt(plainLat.p99)} ms`,
      }),
    );
    for (const mode of modes) {
      const acked = (mode === "on" ? ours : plain).completed;
      if (stored[mode] !== acked) {
        rows.push(
          row({
            scenario: S,
            metric: `acked but not stored (CURVE ${mode})`,
            unit: "runs",
            ours: acked - stored[mode],
            better: "lower",
            target: "= 0",
            pass: false,
          }),
        );
      }
    }
    return {
      rows,
      details: {
        durationMs,
        concurrency: CONCURRENCY,
        echo: { perSecond: echo.perSecond, completed: echo.completed, latency: summarize(echo.latencies) },
        echoSqlite: { perSecond: echoDb.perSecond, completed: echoDb.completed, latency: summarize(echoDb.latencies) },
        ours: {
          auth: "on",
          perSecond: ours.perSecond,
          completed: ours.completed,
          stored: stored.on,
          errors: ours.errors,
          firstError: ours.firstError,
          latency: lat,
          rounds: measured.on.map((m) => m.perSecond),
        },
        authOff: {
          perSecond: plain.perSecond,
          completed: plain.completed,
          stored: stored.off,
          errors: plain.errors,
          firstError: plain.firstError,
          latency: plainLat,
          rounds: measured.off.map((m) => m.perSecond),
        },
        costOfSecurity: cost,
      },
    };
  },
};

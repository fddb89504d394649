/**
 * 1. Trigger acceptance: 64 `runWorkflow` requests kept in flight (an ack means the run is
 * committed) against (a) a bare DEALER -> ROUTER echo and (b) the echo plus the same SQLite
 * group commit per batch, each server in its own process.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { echoLoad } from "../baselines/echo-client.js";
import { startPrincipal } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { type ClosedLoopResult, closedLoop } from "../harness/load.js";
import { startProcess } from "../harness/proc.js";
import { row, type Row } from "../harness/result.js";
import { summarize } from "../harness/stats.js";
import { profileFlags, type Scenario } from "../scenario.js";

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

    ctx.log("ours: principal runWorkflow");
    const wfDir = makeTempDir("wf-trigger");
    writeWorkflow(wfDir, "bench", { cmd: "true", args: [] });
    const principal = await startPrincipal({
      workflowDir: wfDir,
      ...profileFlags(ctx, "trigger", "principal"),
    });
    let ours: ClosedLoopResult;
    let stored = 0;
    try {
      await principal.client.ping();
      await closedLoop(CONCURRENCY, Math.min(500, durationMs / 3), () =>
        principal.client.runWorkflow({ workflowId: "bench", source: "bench-warmup" }),
      );
      ours = await closedLoop(CONCURRENCY, durationMs, () =>
        principal.client.runWorkflow({ workflowId: "bench", source: "bench" }),
      );
      // Every acknowledged trigger must be stored: count the runs of this source.
      let cursor: string | undefined;
      do {
        const page = await principal.client.listRuns({
          source: "bench",
          limit: 1000,
          ...(cursor !== undefined ? { cursor } : {}),
        });
        stored += page.runs.length;
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
    } finally {
      await principal.stop();
    }
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
            : `${ours.completed} acked, ${stored} stored`,
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
    if (stored !== ours.completed) {
      rows.push(
        row({
          scenario: S,
          metric: "acked but not stored",
          unit: "runs",
          ours: ours.completed - stored,
          better: "lower",
          target: "= 0",
          pass: false,
        }),
      );
    }
    return {
      rows,
      details: {
        durationMs,
        concurrency: CONCURRENCY,
        echo: { perSecond: echo.perSecond, completed: echo.completed, latency: summarize(echo.latencies) },
        echoSqlite: { perSecond: echoDb.perSecond, completed: echoDb.completed, latency: summarize(echoDb.latencies) },
        ours: {
          perSecond: ours.perSecond,
          completed: ours.completed,
          stored,
          errors: ours.errors,
          firstError: ours.firstError,
          latency: lat,
        },
      },
    };
  },
};

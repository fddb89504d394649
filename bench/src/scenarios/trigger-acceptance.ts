/**
 * 1. Trigger acceptance: 64 `runWorkflow` requests kept in flight (an ack means the run is
 * committed) against (a) a bare DEALER -> ROUTER echo (and (a') the same over CURVE, the floor of
 * the encrypted wire) and (b) the echo plus the same SQLite
 * group commit per batch, each server in its own process; the cost of security: the same
 * load on a principal with CURVE and keys (the default) and on one with `CDKTR_AUTH=off`; and
 * the same load on a principal whose store is the machine's PostgreSQL (`CDKTR_DATABASE_URL`);
 * and batches: `runWorkflows` of {@link BULK} triggers, 4 requests in flight, on the CURVE-on
 * principal (compared with BullMQ's `add` and `addBulk` in scenario 7), against (c) raw SQLite
 * writing the same rows in the principal's file, 100 triggers per transaction: the storage floor.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { echoLoad } from "../baselines/echo-client.js";
import { triggerRowsFloor } from "../baselines/trigger-rows.js";
import type { PrincipalClient } from "@cdktr/protocol";
import { startPrincipal, type PrincipalHandle } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { createBenchSchema, type BenchSchema } from "../harness/postgres.js";
import { type ClosedLoopResult, closedLoop } from "../harness/load.js";
import { startProcess } from "../harness/proc.js";
import { row, type Row } from "../harness/result.js";
import { summarize } from "../harness/stats.js";
import { fmt, percent } from "../harness/table.js";
import { profileFlags, type BenchContext, type Scenario } from "../scenario.js";
import { BULK } from "./peers.js";

const ECHO_SERVER = fileURLToPath(new URL("../baselines/echo-server.js", import.meta.url));
const CONCURRENCY = 64;

async function baseline(mode: "echo" | "curve" | "sqlite", durationMs: number): Promise<ReturnType<typeof echoLoad>> {
  const args = [ECHO_SERVER, mode];
  if (mode === "sqlite") args.push(join(makeTempDir("echo-db"), "echo.db"));
  const server = await startProcess({ name: `echo-${mode}`, args });
  try {
    const endpoint = String(server.ready.endpoint);
    const serverKey = typeof server.ready.serverKey === "string" ? server.ready.serverKey : null;
    await echoLoad(endpoint, CONCURRENCY, Math.min(500, durationMs / 3), serverKey); // warm-up
    return await echoLoad(endpoint, CONCURRENCY, durationMs, serverKey);
  } finally {
    await server.stop();
  }
}

/** The principals measured: SQLite with CURVE on (as users run it) and off, PostgreSQL with CURVE on. */
type Mode = "on" | "off" | "pg";

/** A principal on a one-workflow directory, with authentication `auth` (and PostgreSQL at `databaseUrl`). */
async function startOurs(ctx: BenchContext, auth: "on" | "off", databaseUrl?: string): Promise<PrincipalHandle> {
  const wfDir = makeTempDir(`wf-trigger-${databaseUrl === undefined ? auth : "pg"}`);
  writeWorkflow(wfDir, "bench", { cmd: "true", args: [] });
  // Only the measured configuration (CURVE on, SQLite) is profiled.
  return startPrincipal({
    workflowDir: wfDir,
    auth,
    ...(databaseUrl === undefined ? {} : { env: { CDKTR_DATABASE_URL: databaseUrl } }),
    ...(auth === "on" && databaseUrl === undefined ? profileFlags(ctx, "trigger", "principal") : {}),
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

/** The rows comparing the principal on PostgreSQL with the same principal on SQLite (both CURVE on). */
function postgresRows(S: string, sqlite: ClosedLoopResult, onPg: ClosedLoopResult, stored: number): Row[] {
  const pgLat = summarize(onPg.latencies);
  const sqliteLat = summarize(sqlite.latencies);
  return [
    row({
      scenario: S,
      metric: "triggers/s on PostgreSQL vs SQLite",
      unit: "/s",
      ours: onPg.perSecond,
      baseline: sqlite.perSecond,
      baselineName: "the same principal on SQLite (CURVE on)",
      better: "higher",
      target: "ratio >= 0.50",
      pass: onPg.perSecond / sqlite.perSecond >= 0.5,
      note:
        onPg.errors > 0
          ? `${onPg.errors} errors: ${onPg.firstError ?? ""}`
          : `CDKTR_DATABASE_URL on 127.0.0.1:5432; ${onPg.completed} acked, ${stored} stored`,
    }),
    row({
      scenario: S,
      metric: "ack latency p50 on PostgreSQL vs SQLite",
      unit: "ms",
      ours: pgLat.p50,
      baseline: sqliteLat.p50,
      baselineName: "the same principal on SQLite (CURVE on)",
      better: "lower",
      note: `p99 ${fmt(pgLat.p99)} vs ${fmt(sqliteLat.p99)} ms`,
    }),
  ];
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
    ctx.log("baseline (a'): zeromq echo over CURVE");
    const echoCurve = await baseline("curve", durationMs);
    ctx.log("baseline (b): echo + sqlite group commit");
    const echoDb = await baseline("sqlite", durationMs);

    // Ours, as users run it (CURVE and keys on), and with CDKTR_AUTH=off for the cost of
    // security: two principals up at once, measured in alternating rounds (on, off, off, on, ...)
    // so that a drifting machine load weighs on both alike.
    ctx.log("ours: principal runWorkflow, CURVE on and off, and on PostgreSQL, in alternating rounds");
    const modes: readonly Mode[] = ["on", "off", "pg"];
    const schema: BenchSchema = await createBenchSchema("cdktr_bench_trigger");
    const principals: Record<Mode, PrincipalHandle> = {
      on: await startOurs(ctx, "on"),
      off: await startOurs(ctx, "off"),
      pg: await startOurs(ctx, "on", schema.url),
    };
    const rounds = ctx.quick ? 2 : 4;
    const measured: Record<Mode, ClosedLoopResult[]> = { on: [], off: [], pg: [] };
    const stored: Record<Mode, number> = { on: 0, off: 0, pg: 0 };
    let batch: ClosedLoopResult | null = null;
    let batchStored = 0;
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
      // Batches on the principal as users run it.
      const onClient = principals.on.client;
      const items = (source: string) => Array.from({ length: BULK }, () => ({ workflowId: "bench", source }));
      await closedLoop(4, Math.min(500, durationMs / 3), () => onClient.runWorkflows(items("bench-warmup")));
      batch = await closedLoop(4, durationMs, async () => {
        const { results } = await onClient.runWorkflows(items("bench-batch"));
        const refused = results.find((r) => !r.ok);
        if (refused !== undefined && !refused.ok) throw new Error(`${refused.error.code}: ${refused.error.message}`);
      });
      batchStored = await countRuns(onClient, "bench-batch");
      // Every acknowledged trigger must be stored: count the runs of this source.
      for (const mode of modes) stored[mode] = await countRuns(principals[mode].client, "bench");
    } finally {
      await Promise.all(modes.map((m) => principals[m].stop()));
      await schema.drop();
    }
    ctx.log(`baseline (c): raw SQLite writing a trigger's rows, ${BULK} per transaction, in the principal's file`);
    const rowsFloor = triggerRowsFloor(principals.on.dbPath, BULK, durationMs);
    ctx.shared.set("trigger.rowsFloor", rowsFloor);
    const ours = combine(measured.on);
    const plain = combine(measured.off);
    const onPg = combine(measured.pg);
    const lat = summarize(ours.latencies);
    ctx.shared.set("trigger.perSecond", ours.perSecond);
    ctx.shared.set("trigger.p50", lat.p50);
    ctx.shared.set("trigger.p99", lat.p99);
    const batchPerSecond = batch === null ? Number.NaN : batch.perSecond * BULK;
    ctx.shared.set("trigger.batchPerSecond", batchPerSecond);
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
        metric: "triggers/s vs CURVE echo (a')",
        unit: "/s",
        ours: ours.perSecond,
        baseline: echoCurve.perSecond,
        baselineName: "zmq DEALER->ROUTER echo over CURVE",
        better: "higher",
        note: `the encrypted wire's floor; CURVE echo / bare echo ${(echoCurve.perSecond / echo.perSecond).toFixed(2)}x`,
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
    rows.push(...postgresRows(S, ours, onPg, stored.pg));
    if (batch !== null) {
      rows.push(
        row({
          scenario: S,
          metric: `batch triggers/s (runWorkflows of ${BULK}) vs single`,
          unit: "/s",
          ours: batchPerSecond,
          baseline: ours.perSecond,
          baselineName: "runWorkflow, 64 in flight (CURVE on)",
          better: "higher",
          note:
            batch.errors > 0
              ? `${batch.errors} errors: ${batch.firstError ?? ""}`
              : `4 requests in flight; ${batch.completed * BULK} acked, ${batchStored} stored; request latency p50 ${fmt(summarize(batch.latencies).p50)} ms`,
        }),
      );
      rows.push(
        row({
          scenario: S,
          metric: `batch triggers/s vs raw SQLite writing the same rows (c)`,
          unit: "/s",
          ours: batchPerSecond,
          baseline: rowsFloor,
          baselineName: `better-sqlite3, ${BULK} triggers per transaction`,
          better: "higher",
          note: "per trigger: idempotency key lookup, run row, history line, key row; the principal's file, schema and pragmas; no wire: the storage floor",
        }),
      );
      if (batchStored !== batch.completed * BULK) {
        rows.push(
          row({
            scenario: S,
            metric: "acked but not stored (runWorkflows)",
            unit: "runs",
            ours: batch.completed * BULK - batchStored,
            better: "lower",
            target: "= 0",
            pass: false,
          }),
        );
      }
    }
    for (const mode of modes) {
      const acked = { on: ours, off: plain, pg: onPg }[mode].completed;
      if (stored[mode] !== acked) {
        rows.push(
          row({
            scenario: S,
            metric: `acked but not stored (${mode === "pg" ? "PostgreSQL" : `CURVE ${mode}`})`,
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
        postgres: {
          perSecond: onPg.perSecond,
          completed: onPg.completed,
          stored: stored.pg,
          errors: onPg.errors,
          firstError: onPg.firstError,
          latency: summarize(onPg.latencies),
          rounds: measured.pg.map((m) => m.perSecond),
        },
      },
    };
  },
};

/**
 * 5. Log pipeline: one task writes N lines (`seq 1 N`); lines per second from the trigger until
 * the last line is queryable, then every line is read back page by page and checked (lost and
 * duplicated lines must be 0). Baseline: the same lines inserted straight into SQLite
 * (WAL, synchronous=FULL) in transactions of 2,000 lines, the agent's batch size.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { startAgent, startPrincipal } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { RunWatcher } from "../harness/load.js";
import { row } from "../harness/result.js";
import { nowMs, sleep } from "../harness/stats.js";
import { profileFlags, type Scenario } from "../scenario.js";

function sqliteBaseline(n: number, batch: number): number {
  const db = new Database(join(makeTempDir("log-db"), "logs.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`CREATE TABLE logs (run_id TEXT NOT NULL, task_id TEXT NOT NULL, seq INTEGER NOT NULL, time TEXT NOT NULL,
    stream TEXT NOT NULL, level TEXT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (run_id, task_id, seq)) WITHOUT ROWID`);
  const stmt = db.prepare("INSERT OR IGNORE INTO logs VALUES (?, ?, ?, ?, 'stdout', 'info', ?)");
  const insert = db.transaction((from: number, to: number) => {
    const time = new Date().toISOString();
    for (let s = from; s <= to; s++) stmt.run("01936f0e-7c8a-7b3e-9d2f-3a4b5c6d7e8f", "t", s, time, String(s));
  });
  const t0 = nowMs();
  for (let from = 1; from <= n; from += batch) insert(from, Math.min(n, from + batch - 1));
  const ms = nowMs() - t0;
  db.close();
  return (n * 1000) / ms;
}

export const logPipeline: Scenario = {
  id: "logs",
  title: "5. Log pipeline (one task, many lines)",
  needs: ["principal", "agent"],
  async run(ctx) {
    const n = ctx.logLines ?? (ctx.quick ? 100_000 : 1_000_000);
    const S = "5 logs";
    ctx.log(`baseline: ${n} lines into SQLite`);
    const basePerSec = sqliteBaseline(n, 2000);

    ctx.log(`ours: a task printing ${n} lines`);
    const wfDir = makeTempDir("wf-logs");
    writeWorkflow(wfDir, "logs", { cmd: "seq", args: ["1", String(n)] });
    const principal = await startPrincipal({
      workflowDir: wfDir,
      ...profileFlags(ctx, "logs", "principal"),
    });
    let oursPerSec = Number.NaN;
    let runStatus = "?";
    let lost = n;
    let duplicated = 0;
    let extra = 0;
    let verifyMs = 0;
    let queryableMs = 0;
    try {
      const agent = await startAgent(principal, { concurrency: 1, ...profileFlags(ctx, "logs", "agent") });
      const watcher = new RunWatcher(principal.publishPort, principal.key, "logs");
      try {
        await watcher.settle();
        const t0 = nowMs();
        const { runId } = await principal.client.runWorkflow({ workflowId: "logs", source: "bench" });
        await watcher.waitUntil(() => watcher.finished.has(runId), 600_000, "the log run to finish");
        runStatus = watcher.finished.get(runId)?.status ?? "?";
        // Until the last stdout line is queryable.
        const last = String(n);
        const deadline = Date.now() + 300_000;
        for (;;) {
          const page = await principal.client.queryLogs({ runId, order: "desc", limit: 20 });
          if (page.lines.some((l) => l.stream === "stdout" && l.line === last)) break;
          if (Date.now() > deadline) throw new Error("the last line never became queryable");
          await sleep(5);
        }
        queryableMs = nowMs() - t0;
        oursPerSec = (n * 1000) / queryableMs;
        // Read everything back and check each number 1..n exactly once.
        ctx.log("verifying every line");
        const v0 = nowMs();
        const seen = new Uint8Array(n + 1);
        let cursor: string | undefined;
        do {
          const page = await principal.client.queryLogs({
            runId,
            order: "asc",
            limit: 1000,
            ...(cursor !== undefined ? { cursor } : {}),
          });
          for (const l of page.lines) {
            if (l.stream !== "stdout") continue;
            const v = Number(l.line);
            if (!Number.isInteger(v) || v < 1 || v > n) {
              extra++;
              continue;
            }
            if (seen[v] === 1) duplicated++;
            seen[v] = 1;
          }
          cursor = page.nextCursor ?? undefined;
        } while (cursor !== undefined);
        lost = 0;
        for (let v = 1; v <= n; v++) if (seen[v] !== 1) lost++;
        verifyMs = nowMs() - v0;
      } finally {
        watcher.close();
        await agent.stop();
      }
    } finally {
      await principal.stop();
    }
    ctx.shared.set("logs.perSecond", oursPerSec);
    return {
      rows: [
        row({
          scenario: S,
          metric: "lines/s until all queryable",
          unit: "/s",
          ours: oursPerSec,
          baseline: basePerSec,
          baselineName: "SQLite inserts, 2,000-line transactions",
          better: "higher",
          note: `${n} lines, run ${runStatus}`,
        }),
        row({
          scenario: S,
          metric: "lines lost / duplicated",
          unit: "lines",
          ours: lost + duplicated,
          better: "lower",
          target: "= 0",
          pass: lost === 0 && duplicated === 0,
          note: `lost ${lost}, duplicated ${duplicated}, foreign ${extra}`,
        }),
      ],
      details: { n, basePerSec, oursPerSec, queryableMs, runStatus, lost, duplicated, foreign: extra, verifyMs },
    };
  },
};

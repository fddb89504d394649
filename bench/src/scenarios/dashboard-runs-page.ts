/**
 * 12. The dashboard's runs page with a long history: time from navigating to `/` to the first
 * run row on screen, in Debian's headless Chromium, with R runs stored (100,000; 10,000 quick),
 * and the JSON API's first page (unfiltered, by workflow, by a status few runs have). The runs
 * are inserted through the API beforehand (`runWorkflows` batches of a workflow with
 * `max_active_runs: 1` and `overlap: skip`: all but one are terminal SKIPPED records). Baseline:
 * the same page of the same dashboard build on a principal with 100 runs, measured in the same
 * run. Target (issue 16): the first page renders in under 1 s with 100,000 runs (p90), and the
 * ratio stays near 1 (paging does not slow down with history).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { browserMissing, launchChromium } from "@cdktr/test-utils/browser";
import type { Browser } from "playwright-core";
import { type PrincipalHandle, startDashboard, startPrincipal } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { runBounded } from "../harness/load.js";
import { naRow, row, type Row } from "../harness/result.js";
import { nowMs, summarize } from "../harness/stats.js";
import type { Scenario } from "../scenario.js";

const S = "12 dashboard";
const BATCH = 1000;

/** Insert `n` runs of `history` (terminal SKIPPED records but the first), in batches. */
async function fill(principal: PrincipalHandle, n: number): Promise<void> {
  const batches = Math.ceil(n / BATCH);
  await runBounded(batches, 4, (b) =>
    principal.client.runWorkflows(
      Array.from({ length: Math.min(BATCH, n - b * BATCH) }, () => ({ workflowId: "history", source: "bench" })),
    ),
  );
}

interface PageFigures {
  render: number[];
  apiFirst: number[];
  apiWorkflow: number[];
  apiStatus: number[];
}

/** Measure `trials` cold page loads (new context each) and API pages on a dashboard at `url`. */
async function measure(browser: Browser, url: string, trials: number): Promise<PageFigures> {
  const out: PageFigures = { render: [], apiFirst: [], apiWorkflow: [], apiStatus: [] };
  const timed = async (path: string, into: number[]): Promise<void> => {
    const t0 = nowMs();
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { runs?: unknown[] };
    if (!res.ok || !Array.isArray(body.runs)) throw new Error(`${path}: HTTP ${res.status}`);
    into.push(nowMs() - t0);
  };
  for (let i = 0; i < trials + 1; i++) {
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    const t0 = nowMs();
    await page.goto(`${url}/`);
    await page.locator('[data-testid="run-row"]').first().waitFor({ timeout: 30_000 });
    const ms = nowMs() - t0;
    await context.close();
    if (i > 0) out.render.push(ms); // the first load warms the server's caches and the disk
    await timed("/api/runs?limit=50", out.apiFirst);
    await timed("/api/runs?limit=50&workflow=history", out.apiWorkflow);
    await timed("/api/runs?limit=50&status=RUNNING", out.apiStatus);
  }
  return out;
}

export const dashboardRunsPage: Scenario = {
  id: "dashboard",
  title: "12. Dashboard runs page with a long history",
  needs: ["principal", "dashboard"],
  async run(ctx) {
    const missing = (() => {
      try {
        return browserMissing();
      } catch (e) {
        return String(e);
      }
    })();
    if (missing !== null) return { rows: [naRow(S, "runs page first render", missing)], details: {} };
    const R = ctx.quick ? 10_000 : 100_000;
    const SMALL = 100;
    const trials = ctx.quick ? 5 : 15;
    const wfDir = makeTempDir("wf-dashboard");
    writeWorkflow(wfDir, "history", { cmd: "true", args: [], extra: ["max_active_runs: 1", "overlap: skip"] });
    writeWorkflow(wfDir, "other", { cmd: "true", args: [] });
    const browser = await launchChromium();
    const figures: Record<string, PageFigures> = {};
    try {
      for (const [label, n] of [
        ["baseline", SMALL],
        ["ours", R],
      ] as const) {
        ctx.log(`${label}: a principal with ${n} runs`);
        const principal = await startPrincipal({ workflowDir: wfDir, readyTimeoutMs: 300_000 });
        try {
          const i0 = nowMs();
          await fill(principal, n);
          ctx.log(`${label}: ${n} runs inserted in ${Math.round(nowMs() - i0)} ms; measuring ${trials} page loads`);
          const tokensFile = join(makeTempDir("dash-tokens"), "dashboard-tokens.json");
          writeFileSync(tokensFile, JSON.stringify({ version: 1, tokens: [] }));
          const dashboard = await startDashboard(principal, { tokensFile });
          try {
            figures[label] = await measure(browser, dashboard.url.replace(/\/$/, ""), trials);
          } finally {
            await dashboard.proc.stop("SIGTERM", 10_000);
          }
        } finally {
          await principal.stop();
        }
      }
    } finally {
      await browser.close();
    }
    const ours = figures.ours;
    const base = figures.baseline;
    if (ours === undefined || base === undefined) throw new Error("no figures");
    const rows: Row[] = [];
    const render = summarize(ours.render);
    const baseRender = summarize(base.render);
    rows.push(
      row({
        scenario: S,
        metric: `runs page first render p50 (${R} runs)`,
        unit: "ms",
        ours: render.p50,
        baseline: baseRender.p50,
        baselineName: `the same page with ${SMALL} runs`,
        better: "lower",
        target: "< 1000 ms",
        pass: render.p50 < 1000,
      }),
      row({
        scenario: S,
        metric: `runs page first render p90 (${R} runs)`,
        unit: "ms",
        ours: render.p90,
        baseline: baseRender.p90,
        baselineName: `the same page with ${SMALL} runs`,
        better: "lower",
        target: "< 1000 ms",
        pass: render.p90 < 1000,
      }),
    );
    for (const [metric, key] of [
      ["GET /api/runs first page p50", "apiFirst"],
      ["GET /api/runs by workflow p50", "apiWorkflow"],
      ["GET /api/runs by a rare status p50", "apiStatus"],
    ] as const) {
      rows.push(
        row({
          scenario: S,
          metric: `${metric} (${R} runs)`,
          unit: "ms",
          ours: summarize(ours[key]).p50,
          baseline: summarize(base[key]).p50,
          baselineName: `the same request with ${SMALL} runs`,
          better: "lower",
        }),
      );
    }
    return {
      rows,
      details: {
        runs: R,
        trials,
        ours: {
          render,
          apiFirst: summarize(ours.apiFirst),
          apiWorkflow: summarize(ours.apiWorkflow),
          apiStatus: summarize(ours.apiStatus),
        },
        baseline: {
          render: baseRender,
          apiFirst: summarize(base.apiFirst),
          apiWorkflow: summarize(base.apiWorkflow),
          apiStatus: summarize(base.apiStatus),
        },
      },
    };
  },
};

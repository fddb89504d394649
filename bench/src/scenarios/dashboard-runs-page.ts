/**
 * 12. The dashboard's runs page with a long history: time from navigating to `/` to the first
 * run row on screen, in Debian's headless Chromium, with R runs stored (100,000; 10,000 quick):
 * a first visit (a new browser context, nothing cached) and a return visit (a new page of one
 * context: the script from the cache); and the JSON API's first page (unfiltered, by workflow, by
 * a status few runs have). The runs are inserted through the API beforehand (`runWorkflows`
 * batches of a workflow with `max_active_runs: 1` and `overlap: skip`: all but one are terminal
 * SKIPPED records). Baselines, same run: a static 50-row HTML page without script, visited the
 * same way (the browser's own cost), and the same dashboard on a principal with 100 runs.
 * Targets (issue 16): the first page renders in under 1 s with 100,000 runs, and no slower than
 * with 100 (paging does not slow down with history).
 */
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { browserMissing, launchChromium } from "@cdktr/test-utils/browser";
import type { Browser, BrowserContext } from "playwright-core";
import { type PrincipalHandle, startDashboard, startPrincipal } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { runBounded } from "../harness/load.js";
import { naRow, row, type Row } from "../harness/result.js";
import { nowMs, summarize } from "../harness/stats.js";
import type { Scenario } from "../scenario.js";

const S = "12 dashboard";
const BATCH = 1000;
/** A laptop screen. */
const VIEWPORT = { viewport: { width: 1366, height: 768 } };

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
  /** A new browser context each time: nothing cached (a first visit). */
  cold: number[];
  /** New pages of one context: the script and styles come from the browser's cache (a return visit). */
  warm: number[];
  apiFirst: number[];
  apiWorkflow: number[];
  apiStatus: number[];
}

/** ms from `goto(url)` to the first element matching `selector` on screen, in `context`. */
async function firstRender(context: BrowserContext, url: string, selector: string): Promise<number> {
  const page = await context.newPage();
  try {
    const t0 = nowMs();
    await page.goto(url);
    await page.locator(selector).first().waitFor({ timeout: 30_000 });
    return nowMs() - t0;
  } finally {
    await page.close();
  }
}

/** {@link firstRender} in a new browser context (nothing cached), closed afterwards. */
async function firstVisit(browser: Browser, url: string, selector: string): Promise<number> {
  const context = await browser.newContext(VIEWPORT);
  try {
    return await firstRender(context, url, selector);
  } finally {
    await context.close();
  }
}

/** Measure `trials` cold and warm page loads and API pages on a dashboard at `url` (after one discarded warm-up). */
async function measure(browser: Browser, url: string, trials: number): Promise<PageFigures> {
  const out: PageFigures = { cold: [], warm: [], apiFirst: [], apiWorkflow: [], apiStatus: [] };
  const timed = async (path: string, into: number[]): Promise<void> => {
    const t0 = nowMs();
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { runs?: unknown[] };
    if (!res.ok || !Array.isArray(body.runs)) throw new Error(`${path}: HTTP ${res.status}`);
    into.push(nowMs() - t0);
  };
  const row = '[data-testid="run-row"]';
  const returning = await browser.newContext(VIEWPORT);
  try {
    for (let i = 0; i < trials + 1; i++) {
      const cold = await firstVisit(browser, `${url}/`, row);
      const warm = await firstRender(returning, `${url}/`, row);
      if (i === 0) continue; // the first loads warm the server's caches and the disk
      out.cold.push(cold);
      out.warm.push(warm);
      await timed("/api/runs?limit=50", out.apiFirst);
      await timed("/api/runs?limit=50&workflow=history", out.apiWorkflow);
      await timed("/api/runs?limit=50&status=RUNNING", out.apiStatus);
    }
  } finally {
    await returning.close();
  }
  return out;
}

/** A static page with a 50-row table and no script, served by node:http: the browser's own cost of a first visit. */
async function staticPageBaseline(browser: Browser, trials: number): Promise<number[]> {
  const rows = Array.from({ length: 50 }, (_, i) => `<tr class="r"><td>run ${i}</td><td>COMPLETED</td></tr>`).join("");
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>runs</title></head><body><table>${rows}</table></body></html>`;
  const server = createServer((_req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const out: number[] = [];
  try {
    for (let i = 0; i < trials + 1; i++) {
      const ms = await firstVisit(browser, `http://127.0.0.1:${port}/`, "tr.r");
      if (i > 0) out.push(ms);
    }
  } finally {
    server.close();
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
    let staticPage: number[] = [];
    try {
      ctx.log(`baseline: a static 50-row page, ${trials} first visits`);
      staticPage = await staticPageBaseline(browser, trials);
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
    const cold = summarize(ours.cold);
    const warm = summarize(ours.warm);
    const smallCold = summarize(base.cold);
    const smallWarm = summarize(base.warm);
    const plain = summarize(staticPage);
    rows.push(
      row({
        scenario: S,
        metric: `runs page, first visit, p50 (${R} runs)`,
        unit: "ms",
        ours: cold.p50,
        baseline: plain.p50,
        baselineName: "a static 50-row HTML page, no script (the browser's own cost)",
        better: "lower",
        target: "< 1000 ms",
        pass: cold.p50 < 1000,
      }),
      row({
        scenario: S,
        metric: `runs page, first visit, p90 (${R} runs)`,
        unit: "ms",
        ours: cold.p90,
        baseline: plain.p90,
        baselineName: "a static 50-row HTML page, no script",
        better: "lower",
        target: "< 1000 ms",
        pass: cold.p90 < 1000,
      }),
      row({
        scenario: S,
        metric: `runs page, first visit, p50: ${R} runs against ${SMALL}`,
        unit: "ms",
        ours: cold.p50,
        baseline: smallCold.p50,
        baselineName: `the same page with ${SMALL} runs`,
        better: "lower",
        target: "ratio <= 1.2 (no slower with history)",
        pass: cold.p50 <= 1.2 * smallCold.p50,
      }),
      row({
        scenario: S,
        metric: `runs page, return visit (cached script), p50 (${R} runs)`,
        unit: "ms",
        ours: warm.p50,
        baseline: smallWarm.p50,
        baselineName: `the same page with ${SMALL} runs`,
        better: "lower",
        target: "< 1000 ms",
        pass: warm.p50 < 1000,
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
        staticPage: plain,
        ours: {
          cold,
          warm,
          apiFirst: summarize(ours.apiFirst),
          apiWorkflow: summarize(ours.apiWorkflow),
          apiStatus: summarize(ours.apiStatus),
        },
        baseline: {
          cold: smallCold,
          warm: smallWarm,
          apiFirst: summarize(base.apiFirst),
          apiWorkflow: summarize(base.apiWorkflow),
          apiStatus: summarize(base.apiStatus),
        },
      },
    };
  },
};

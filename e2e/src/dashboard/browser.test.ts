/**
 * The dashboard in a real browser: Debian's headless Chromium (playwright-core) on a real
 * dashboard process, principal and agent. Every page is screenshotted (CDKTR_SCREENSHOTS_DIR, or
 * e2e/results/dashboard-screenshots; `CDKTR_UPDATE_DOC_IMAGES=1` also refreshes the three in
 * docs/images that README.md shows).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import {
  cleanup,
  runCli,
  startAgent,
  startDashboard,
  startPrincipal,
  waitFor,
  type PrincipalFixture,
  type DashboardHandle,
} from "@cdktr/test-utils";
import { browserMissing, launchChromium } from "@cdktr/test-utils/browser";

/**
 * The browser's globals, typed for the functions that run in the page (this package compiles
 * without the DOM library): `(globalThis as unknown as BrowserGlobals).getComputedStyle(el)`.
 */
interface BrowserGlobals {
  getComputedStyle(el: unknown): { color: string; backgroundColor: string };
  innerWidth: number;
  document: { documentElement: { scrollWidth: number }; activeElement: { textContent: string | null } | null };
}

const skip = browserMissing();
const work = mkdtempSync(join(tmpdir(), "cdktr-dash-browser-"));
/** Where the screenshots go (git-ignored e2e/results by default), kept after the run. */
const shots =
  process.env.CDKTR_SCREENSHOTS_DIR ?? new URL("../../results/dashboard-screenshots/", import.meta.url).pathname;
const marker = join(work, "retry-marker");
const counter = (task: string): string => join(work, `${task}.count`);
const countOf = (task: string): number =>
  existsSync(counter(task))
    ? readFileSync(counter(task), "utf8")
        .split("\n")
        .filter((l) => l !== "").length
    : 0;
/** A task that appends its id to its counter file, then runs `then`. */
const counted = (task: string, then = "true"): string =>
  `config: !Subprocess\n      cmd: sh\n      args: ["-c", "echo ${task} >> '${counter(task)}'; ${then}"]`;

const WORKFLOWS: Record<string, string> = {
  "greet.yml": `name: Greet
description: Says hello to someone
params:
  who: { type: string, description: "Whom to greet" }
  times: { type: number, default: 1 }
tasks:
  hello:
    name: Say hello
    config: !Subprocess
      cmd: echo
      args: ["hello", "{{ params.who }}"]
`,
  "nightly.yml": `name: Nightly report
description: Builds the nightly report at 03:00, Paris time
cron: "0 0 3 * * *"
timezone: Europe/Paris
tasks:
  report:
    name: Report
    config: !Subprocess
      cmd: echo
      args: ["report"]
`,
  "fail.yml": readFileSync(new URL("../../../examples/workflows/fail.yml", import.meta.url), "utf8"),
  "ticker.yml": `name: Ticker
description: Writes a coloured line, then a tick every 200 ms for two minutes
tasks:
  ticker:
    name: Tick
    config: !Subprocess
      cmd: sh
      args: ["-c", "printf '\\\\033[31mred alert\\\\033[0m bell:\\\\007 end\\\\n'; i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
`,
  "retry.yml": `name: Retry
description: b fails until the marker file exists; c follows b; a and d do not care
tasks:
  a:
    name: A
    ${counted("a")}
  b:
    name: B
    depends: [a]
    ${counted("b", `test -e '${marker}'`)}
  c:
    name: C
    depends: [b]
    ${counted("c")}
  d:
    name: D
    ${counted("d")}
`,
};

describe("the dashboard in a browser", { skip: skip ?? false, timeout: 240_000 }, () => {
  let principal: PrincipalFixture;
  let dashboard: DashboardHandle;
  let browser: Browser;
  let url: string;
  const tokens: Record<string, string> = {};
  const tokensFile = join(work, "dashboard-tokens.json");

  before(async () => {
    mkdirSync(shots, { recursive: true });
    principal = await startPrincipal({ workflows: WORKFLOWS });
    await startAgent(principal);
    for (const [name, role] of [
      ["alice", "operator"],
      ["bob", "reader"],
    ] as const) {
      const made = await runCli(["dashboard", "token", "create", name, "--role", role, "--json"], {
        env: { ...principal.clientEnv, CDKTR_DASHBOARD_TOKENS_FILE: tokensFile },
      });
      assert.equal(made.code, 0, made.stderr);
      tokens[name] = (JSON.parse(made.stdout) as { token: string }).token;
    }
    dashboard = await startDashboard(principal, {
      env: { CDKTR_DASHBOARD_TOKENS_FILE: tokensFile, CDKTR_DASHBOARD_SIGNIN_PER_MINUTE: "1000" },
    });
    url = dashboard.url.replace(/\/$/, "");
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  /** A new browser context (its own cookies), signed in with `who`'s token unless null. */
  async function open(who: "alice" | "bob" | null, viewport = { width: 1366, height: 768 }): Promise<Page> {
    const context: BrowserContext = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    if (who !== null) {
      await page.goto(`${url}/signin`);
      await page.getByTestId("signin-token").fill(tokens[who] ?? "");
      await page.getByTestId("signin-submit").click();
      await page.getByTestId("session").filter({ hasText: who }).waitFor();
    }
    return page;
  }

  const shot = (page: Page, name: string, fullPage = false): Promise<Buffer> =>
    page.screenshot({ path: join(shots, `${name}.png`), fullPage });

  const row = (page: Page, runId: string, status?: string): ReturnType<Page["locator"]> =>
    page.locator(
      `[data-testid="run-row"][data-run-id="${runId}"]${status === undefined ? "" : `[data-status="${status}"]`}`,
    );

  /** The log tail's lines of the tasks' stdout (the agent's own lines quote the command). */
  const stdout = (page: Page): ReturnType<Page["locator"]> =>
    page.locator('[data-testid="log-line"][data-stream="stdout"]');

  const node = (page: Page, taskId: string): ReturnType<Page["locator"]> =>
    page.locator(`[data-testid="task-node"][data-task-id="${taskId}"]`);

  it("trigger from the workflow page with a param: the run's row turns COMPLETED without a reload, attributed to the person", async () => {
    const page = await open("alice");
    await page.getByTestId("nav-workflows").click();
    await page.locator('[data-testid="workflow-row"][data-workflow-id="greet"]').waitFor();
    await page.goto(`${url}/workflows/greet`);
    await page.getByTestId("trigger-form").waitFor();
    await page.locator('[name="param-who"]').fill("Ada Lovelace");
    await page.getByTestId("trigger-submit").click();
    const link = page.getByTestId("trigger-result").locator("a");
    await link.waitFor();
    const runId = (await link.getAttribute("href"))?.split("/").pop() ?? "";
    assert.ok(runId !== "", "the result links to the new run");
    // The workflow page's last runs update live: the row appears and turns COMPLETED in place.
    await row(page, runId, "COMPLETED").waitFor();
    await shot(page, "workflow");
    const { run } = await principal.client.getRun(runId);
    assert.equal(run.status, "COMPLETED");
    assert.equal(run.params.who, "Ada Lovelace");
    assert.equal(run.triggeredBy, "local-dashboard:alice");
    assert.equal(run.source, "dashboard");
    // The runs page shows it too (its first page), and the run page names who triggered it.
    await page.getByTestId("nav-runs").click();
    await row(page, runId, "COMPLETED").waitFor();
    await page.goto(`${url}/runs/${runId}`);
    await page.getByTestId("run-triggered-by").filter({ hasText: "local-dashboard:alice" }).waitFor();
    await stdout(page).filter({ hasText: "hello Ada Lovelace" }).waitFor();
    await page.context().close();
  });

  it("the fail example: the failed task is red, the skipped one grey, the independent one green", async () => {
    const runId = await principal.run("fail");
    await principal.waitForRun(runId);
    const page = await open(null);
    await page.goto(`${url}/runs/${runId}`);
    await page.locator('[data-testid="run-status"][data-status="FAILED"]').waitFor();
    await node(page, "boom").and(page.locator('[data-status="FAILED"]')).waitFor();
    await node(page, "after").and(page.locator('[data-status="SKIPPED"]')).waitFor();
    await node(page, "independent").and(page.locator('[data-status="COMPLETED"]')).waitFor();
    const colour = (taskId: string): Promise<[number, number, number]> =>
      node(page, taskId).evaluate((el) => {
        const bg = (globalThis as unknown as BrowserGlobals).getComputedStyle(el).backgroundColor;
        const m = /rgba?\((\d+), (\d+), (\d+)/.exec(bg) ?? [];
        return [Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number];
      });
    const [r, g, b] = await colour("boom");
    assert.ok(r > 150 && r > g + 60 && r > b + 60, `the failed task is red: rgb(${r}, ${g}, ${b})`);
    const [sr, sg, sb] = await colour("after");
    assert.ok(Math.max(sr, sg, sb) - Math.min(sr, sg, sb) < 30, `the skipped task is grey: rgb(${sr}, ${sg}, ${sb})`);
    await page.getByTestId("gantt").waitFor();
    assert.ok((await page.getByTestId("gantt-bar").count()) >= 2, "a bar per task that ran");
    await stdout(page).filter({ hasText: "about to fail" }).waitFor();
    await shot(page, "run-failed", true);
    // An anonymous visitor on loopback reads, but is offered no write.
    assert.equal(await page.getByTestId("retry-failed-button").count(), 0);
    assert.equal(await page.getByTestId("rerun-button").count(), 0);
    await page.context().close();
  });

  it("the log tail shows a running task's lines as they are written, with colours rendered and control characters neutralised; cancel stops the run", async () => {
    const runId = await principal.run("ticker");
    const page = await open("alice");
    await page.goto(`${url}/runs/${runId}`);
    const lines = page.getByTestId("log-line");
    await lines.filter({ hasText: "tick 2" }).waitFor();
    const seen = await lines.count();
    // New lines arrive while the page stays open (no reload): the tail grows by live events.
    await waitFor(async () => (await lines.count()) >= seen + 5, { timeoutMs: 30_000, what: "five more lines, live" });
    const red = stdout(page).filter({ hasText: "red alert" });
    const text = (await red.textContent()) ?? "";
    assert.ok(!text.includes("\u001b"), "no raw escape character on the page");
    assert.ok(!text.includes("\u0007"), "no raw BEL on the page");
    assert.match(text, /bell:.+end/, "the BEL is shown as a visible symbol");
    const redColour = await red
      .locator("span", { hasText: "red alert" })
      .last()
      .evaluate((el) => (globalThis as unknown as BrowserGlobals).getComputedStyle(el).color);
    assert.match(redColour, /rgb\((1[5-9]\d|2\d\d), \d{1,2}, \d{1,2}\)/, `ANSI red is rendered red: ${redColour}`);
    // Search narrows the tail; the task node is RUNNING meanwhile.
    await page.getByTestId("log-search").fill("tick 3");
    await waitFor(async () => (await lines.filter({ hasNotText: "tick 3" }).count()) === 0, {
      timeoutMs: 10_000,
      what: "only matching lines",
    });
    await page.getByTestId("log-search").fill("");
    await node(page, "ticker").and(page.locator('[data-status="RUNNING"]')).waitFor();
    await shot(page, "run");
    await page.getByTestId("cancel-button").click();
    await page.locator('[data-testid="run-status"][data-status="CANCELLED"]').waitFor({ timeout: 60_000 });
    const final = await principal.waitForRun(runId);
    assert.equal(final.run.status, "CANCELLED");
    assert.equal(final.tasks.find((t) => t.taskId === "ticker")?.status, "CANCELLED");
    await page.context().close();
  });

  it("re-run from the failed tasks runs only the failed task and its dependents; the others are recorded as reused", async () => {
    const source = await principal.run("retry");
    const failed = await principal.waitForRun(source);
    assert.equal(failed.run.status, "FAILED");
    assert.deepEqual([countOf("a"), countOf("b"), countOf("c"), countOf("d")], [1, 1, 0, 1]);
    writeFileSync(marker, "");
    const page = await open("alice");
    await page.goto(`${url}/runs/${source}`);
    await page.getByTestId("retry-failed-button").click();
    await page.waitForURL((u) => u.pathname.startsWith("/runs/") && !u.pathname.endsWith(source));
    const retryId = page.url().split("/").pop() ?? "";
    await page.locator('[data-testid="run-status"][data-status="COMPLETED"]').waitFor({ timeout: 60_000 });
    await node(page, "a").and(page.locator('[data-status="REUSED"]')).waitFor();
    await node(page, "d").and(page.locator('[data-status="REUSED"]')).waitFor();
    await node(page, "b").and(page.locator('[data-status="COMPLETED"]')).waitFor();
    await node(page, "c").and(page.locator('[data-status="COMPLETED"]')).waitFor();
    await page
      .getByTestId("run-retry-of")
      .filter({ hasText: source.slice(0, 8) })
      .waitFor();
    await shot(page, "run-retry");
    const retry = await principal.client.getRun(retryId);
    assert.equal(retry.run.retryOf, source);
    const byTask = Object.fromEntries(retry.tasks.map((t) => [t.taskId, t]));
    assert.equal(byTask.a?.reusedFrom, source);
    assert.equal(byTask.d?.reusedFrom, source);
    assert.equal(byTask.b?.reusedFrom ?? null, null);
    assert.deepEqual([countOf("a"), countOf("b"), countOf("c"), countOf("d")], [1, 2, 1, 1], "only b and c ran again");
    await page.context().close();
  });

  it("a reader sees no write button, and a forged POST is refused (reader, anonymous, foreign origin)", async () => {
    const runId = await principal.run("ticker");
    const page = await open("bob");
    await page.goto(`${url}/runs/${runId}`);
    await page.getByTestId("log-line").first().waitFor();
    assert.equal(await page.getByTestId("cancel-button").count(), 0, "no cancel for a reader");
    assert.equal(await page.getByTestId("rerun-button").count(), 0);
    const status = await page.evaluate(
      (id) =>
        fetch(`/api/runs/${id}/cancel`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: "{}",
        }).then((r) => r.status),
      runId,
    );
    assert.equal(status, 403, "a reader's POST is refused");
    const anonymous = await fetch(`${url}/api/runs/${runId}/cancel`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    assert.equal(anonymous.status, 401, "no anonymous write, ever");
    // An operator's cookie sent from another origin (cross-site request forgery) is refused too.
    const alice = await open("alice");
    const cookie = (await alice.context().cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
    const forged = await fetch(`${url}/api/runs/${runId}/cancel`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Origin: "http://evil.example", Cookie: cookie },
      body: "{}",
    });
    assert.equal(forged.status, 403, "a foreign origin is refused");
    assert.equal((await principal.client.getRun(runId)).run.status, "RUNNING", "nothing was cancelled");
    await principal.client.cancelRun(runId);
    await page.context().close();
    await alice.context().close();
  });

  it("the agents page and the phone layout", async () => {
    const page = await open(null);
    await page.goto(`${url}/agents`);
    await page.locator('[data-testid="agent-row"][data-status="ACTIVE"]').waitFor();
    await shot(page, "agents");
    await page.goto(`${url}/signin`);
    await page.getByTestId("signin-token").waitFor();
    await shot(page, "signin");
    const phone = await open(null, { width: 390, height: 844 });
    await phone.goto(`${url}/`);
    await phone.getByTestId("runs-table").waitFor();
    const overflow = await phone.evaluate(() => {
      const g = globalThis as unknown as BrowserGlobals;
      return g.document.documentElement.scrollWidth - g.innerWidth;
    });
    assert.ok(overflow <= 1, `the page itself does not scroll sideways on a phone (${overflow} px)`);
    await shot(phone, "runs-phone");
    // Keyboard: the skip link and the navigation are reachable with Tab.
    await phone.keyboard.press("Tab");
    const focused = await phone.evaluate(
      () => (globalThis as unknown as BrowserGlobals).document.activeElement?.textContent ?? "",
    );
    assert.ok(focused.length > 0, "Tab focuses something visible");
    await page.goto(`${url}/`);
    await page.getByTestId("runs-table").waitFor();
    await shot(page, "runs");
    await page.goto(`${url}/workflows`);
    const nightly = page.locator('[data-testid="workflow-row"][data-workflow-id="nightly"]');
    await nightly.getByTestId("next-occurrences").waitFor();
    await page
      .locator('[data-testid="workflow-row"][data-workflow-id="retry"] [data-testid="last-runs"] [data-status]')
      .first()
      .waitFor();
    await shot(page, "workflows");
    await page.context().close();
    await phone.context().close();
    if (process.env.CDKTR_UPDATE_DOC_IMAGES === "1") {
      const docs = new URL("../../../docs/images/", import.meta.url).pathname;
      mkdirSync(docs, { recursive: true });
      for (const [from, to] of [
        ["runs", "runs"],
        ["run-failed", "run"],
        ["workflows", "workflows"],
      ])
        copyFileSync(join(shots, `${from}.png`), join(docs, `dashboard-${to}.png`));
    }
  });
});

/**
 * The dashboard's HTTP API end to end: a real principal and agent, the dashboard as a process
 * (its `local-dashboard` key), tokens made in its tokens file, requests over real sockets.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createToken, revokeToken } from "@cdktr/dashboard";
import {
  cleanup,
  startDashboard,
  startStack,
  waitFor,
  workflowYaml,
  type DashboardHandle,
  type Stack,
} from "@cdktr/test-utils";
import { call, cookieOf, openSse, type HttpAnswer } from "./http-client.js";

const WORKFLOWS = {
  "greet.yml": workflowYaml({
    name: "Greet",
    description: "says hello to someone",
    header: ["params:", "  who: { type: string }", "  times: { type: number, default: 1 }"],
    tasks: {
      say: { cmd: "sh", args: ["-c", 'for i in 1 2 3; do echo "hello $CDKTR_PARAM_WHO line $i"; done'] },
      after: { cmd: "echo", args: ["done"], depends: ["say"] },
    },
  }),
  "sleepy.yml": workflowYaml({ name: "Sleepy", tasks: { nap: { cmd: "sleep", args: ["60"] } } }),
  "hourly.yml": workflowYaml({ name: "Hourly", cron: "0 0 * * * *", tasks: { t: { cmd: "true" } } }),
  "boom.yml": workflowYaml({
    name: "Boom",
    tasks: { boom: { cmd: "sh", args: ["-c", "echo failing; exit 3"] }, next: { depends: ["boom"] } },
  }),
};

const TERMINAL = new Set(["COMPLETED", "FAILED", "CRASHED", "CANCELLED", "SKIPPED"]);

interface RunJson {
  runId: string;
  workflowId: string;
  status: string;
  source: string;
  triggeredBy: string | null;
  params: Record<string, unknown>;
  retryOf?: string | null;
}

function body<T>(a: HttpAnswer, status = 200): T {
  assert.equal(a.status, status, `expected ${status}, got ${a.status}: ${a.text}`);
  return a.json as T;
}

function errorCode(a: HttpAnswer): string {
  return (a.json as { error?: { code?: string } } | undefined)?.error?.code ?? `(no error code: ${a.text})`;
}

let stack: Stack;
let dash: DashboardHandle;
let operatorToken: string;
let readerToken: string;
let operatorCookie: string;
let readerCookie: string;

async function signIn(base: string, token: string): Promise<string> {
  const a = await call(base, "/api/session", { method: "POST", json: { token } });
  assert.equal(a.status, 200, a.text);
  return cookieOf(a);
}

function write(base: string, target: string, cookie: string | null, json: unknown = {}): Promise<HttpAnswer> {
  return call(base, target, { method: "POST", json, headers: cookie === null ? {} : { Cookie: cookie } });
}

async function waitRunEnd(runId: string): Promise<RunJson> {
  let last: RunJson | undefined;
  await waitFor(
    async () => {
      const a = await call(dash.url, `/api/runs/${runId}`);
      last = body<{ run: RunJson }>(a).run;
      return TERMINAL.has(last.status);
    },
    { timeoutMs: 30_000, what: `the end of run ${runId}` },
  );
  return last as RunJson;
}

describe("dashboard API", () => {
  before(async () => {
    stack = await startStack({ workflows: WORKFLOWS });
    const tokensFile = join(stack.principal.home, "tokens", "dashboard-tokens.json");
    operatorToken = createToken(tokensFile, "alice", "operator").token;
    readerToken = createToken(tokensFile, "bob", "reader").token;
    dash = await startDashboard(stack.principal, {
      // Tests sign in many times from one address (the limit has its own test below).
      env: { CDKTR_DASHBOARD_TOKENS_FILE: tokensFile, CDKTR_DASHBOARD_SIGNIN_PER_MINUTE: "10000" },
    });
    operatorCookie = await signIn(dash.url, operatorToken);
    readerCookie = await signIn(dash.url, readerToken);
  });
  after(async () => {
    await cleanup();
  });

  it("the ready line names the app and its URL; every answer carries the security headers", async () => {
    assert.equal(dash.service.ready.app, "dashboard");
    assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    for (const target of ["/api/session", "/", "/api/nope"]) {
      const a = await call(dash.url, target);
      assert.match(String(a.headers["content-security-policy"]), /default-src 'self'; script-src 'self'/);
      assert.match(String(a.headers["content-security-policy"]), /frame-ancestors 'none'/);
      assert.equal(a.headers["x-content-type-options"], "nosniff");
      assert.equal(a.headers["referrer-policy"], "no-referrer");
      assert.equal(a.headers["x-frame-options"], "DENY");
    }
  });

  it("session: anonymous on loopback may read; sign-in sets an HttpOnly SameSite=Strict cookie; sign-out clears it", async () => {
    assert.deepEqual(body(await call(dash.url, "/api/session")), {
      signedIn: false,
      name: null,
      role: null,
      canWrite: false,
      signInRequired: false,
    });
    const a = await call(dash.url, "/api/session", { method: "POST", json: { token: operatorToken } });
    const set = String(a.headers["set-cookie"]?.[0]);
    assert.match(set, /^cdktr_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\//);
    assert.deepEqual(a.json, {
      signedIn: true,
      name: "alice",
      role: "operator",
      canWrite: true,
      signInRequired: false,
    });
    const cookie = cookieOf(a);
    assert.equal(
      body<{ name: string }>(await call(dash.url, "/api/session", { headers: { Cookie: cookie } })).name,
      "alice",
    );
    const out = await call(dash.url, "/api/session", { method: "DELETE", headers: { Cookie: cookie } });
    assert.equal(out.status, 204);
    assert.match(String(out.headers["set-cookie"]?.[0]), /Max-Age=0/);
    assert.equal(
      body<{ signedIn: boolean }>(await call(dash.url, "/api/session", { headers: { Cookie: cookie } })).signedIn,
      false,
    );
    const reader = body<{ canWrite: boolean; role: string }>(
      await call(dash.url, "/api/session", { headers: { Cookie: readerCookie } }),
    );
    assert.equal(reader.role, "reader");
    assert.equal(reader.canWrite, false);
  });

  it("trigger with params as an operator: the run completes, records source dashboard and triggeredBy local-dashboard:alice; logs page oldest first", async () => {
    const t = body<{ runId: string; duplicate: boolean; skipped: boolean; status: string }>(
      await write(dash.url, "/api/workflows/greet/run", operatorCookie, { params: { who: "ada" } }),
    );
    assert.equal(t.duplicate, false);
    assert.equal(t.skipped, false);
    const run = await waitRunEnd(t.runId);
    assert.equal(run.status, "COMPLETED");
    assert.equal(run.source, "dashboard");
    assert.equal(run.triggeredBy, "local-dashboard:alice");
    assert.deepEqual(run.params, { who: "ada", times: 1 });

    const detail = body<{ run: RunJson; tasks: { taskId: string; status: string }[]; workflow: { id: string } }>(
      await call(dash.url, `/api/runs/${t.runId}`),
    );
    assert.equal(detail.workflow.id, "greet");
    assert.deepEqual(detail.tasks.map((x) => `${x.taskId}:${x.status}`).sort(), ["after:COMPLETED", "say:COMPLETED"]);

    // Logs: every line of `say`, paged 2 at a time, oldest first.
    let lines: string[] = [];
    await waitFor(async () => {
      const all = body<{ lines: { line: string }[] }>(await call(dash.url, `/api/runs/${t.runId}/logs?task=say`));
      lines = all.lines.map((l) => l.line).filter((l) => l.startsWith("hello"));
      return lines.length === 3;
    });
    assert.deepEqual(lines, ["hello ada line 1", "hello ada line 2", "hello ada line 3"]);
    const paged: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const q: string = `/api/runs/${t.runId}/logs?task=say&limit=2${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
      const page = body<{ lines: { line: string }[]; nextCursor: string | null }>(await call(dash.url, q));
      assert.ok(page.lines.length <= 2);
      paged.push(...page.lines.map((l) => l.line));
      cursor = page.nextCursor;
      if (cursor === null) break;
    }
    assert.deepEqual(
      paged.filter((l) => l.startsWith("hello")),
      lines,
    );

    // Filters: by workflow and status, newest first.
    const listed = body<{ runs: RunJson[]; nextCursor: string | null }>(
      await call(dash.url, "/api/runs?workflow=greet&status=COMPLETED,FAILED&limit=5"),
    );
    assert.ok(listed.runs.some((r) => r.runId === t.runId));
    assert.ok(listed.runs.every((r) => r.workflowId === "greet"));
  });

  it("a trigger with bad params is 400 INVALID_PARAMS with the principal's message; unknown workflow 404", async () => {
    const bad = await write(dash.url, "/api/workflows/greet/run", operatorCookie, { params: { times: "many" } });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(errorCode(bad), "INVALID_PARAMS");
    assert.match(bad.text, /times/);
    const missing = await write(dash.url, "/api/workflows/nope/run", operatorCookie, { params: {} });
    assert.equal(missing.status, 404);
    assert.equal(errorCode(missing), "WORKFLOW_NOT_FOUND");
    const run404 = await call(dash.url, "/api/runs/no-such-run");
    assert.equal(run404.status, 404);
    assert.equal(errorCode(run404), "RUN_NOT_FOUND");
    assert.doesNotMatch(run404.text, /\bat .*\.js:\d+/, "no stack trace");
  });

  it("cancel a running run; rerun makes a new run with the same workflow and params", async () => {
    const t = body<{ runId: string }>(
      await write(dash.url, "/api/workflows/sleepy/run", operatorCookie, { params: {} }),
    );
    await waitFor(
      async () => body<{ run: RunJson }>(await call(dash.url, `/api/runs/${t.runId}`)).run.status === "RUNNING",
      {
        timeoutMs: 20_000,
      },
    );
    const c = body<{ runId: string; status: string; cancelled: boolean }>(
      await write(dash.url, `/api/runs/${t.runId}/cancel`, operatorCookie),
    );
    assert.equal(c.runId, t.runId);
    assert.equal(c.cancelled, true);
    assert.equal((await waitRunEnd(t.runId)).status, "CANCELLED");

    const src = body<{ runId: string }>(
      await write(dash.url, "/api/workflows/greet/run", operatorCookie, { params: { who: "bo" } }),
    );
    await waitRunEnd(src.runId);
    const again = body<{ runId: string; duplicate: boolean }>(
      await write(dash.url, `/api/runs/${src.runId}/rerun`, operatorCookie, { fromFailed: false }),
    );
    assert.notEqual(again.runId, src.runId);
    const rerun = await waitRunEnd(again.runId);
    assert.equal(rerun.workflowId, "greet");
    assert.deepEqual(rerun.params, { who: "bo", times: 1 });
    assert.equal(rerun.triggeredBy, "local-dashboard:alice");
    const bad = await write(dash.url, `/api/runs/${src.runId}/rerun`, operatorCookie, { fromFailed: "yes" });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /fromFailed/);
  });

  it("rerun fromFailed retries the failed run (retryOf is the source run)", async () => {
    const src = body<{ runId: string }>(
      await write(dash.url, "/api/workflows/boom/run", operatorCookie, { params: {} }),
    );
    assert.equal((await waitRunEnd(src.runId)).status, "FAILED");
    const r = body<{ runId: string }>(
      await write(dash.url, `/api/runs/${src.runId}/rerun`, operatorCookie, { fromFailed: true }),
    );
    const detail = body<{ run: RunJson }>(await call(dash.url, `/api/runs/${r.runId}`));
    assert.equal(detail.run.retryOf, src.runId);
  });

  it("workflows: summaries with next occurrences and last runs; one workflow; agents", async () => {
    const list = body<{
      workflows: {
        id: string;
        cron: string | null;
        nextOccurrences: string[];
        lastRuns: { runId: string }[];
        paramCount: number;
        taskCount: number;
      }[];
      errors: unknown[];
    }>(await call(dash.url, "/api/workflows"));
    const hourly = list.workflows.find((w) => w.id === "hourly");
    assert.ok(hourly);
    assert.equal(hourly.nextOccurrences.length, 10);
    for (const t of hourly.nextOccurrences) assert.match(t, /T\d\d:00:00\.000Z$/);
    const greet = list.workflows.find((w) => w.id === "greet");
    assert.ok(greet);
    assert.deepEqual(greet.nextOccurrences, []);
    assert.equal(greet.paramCount, 2);
    assert.equal(greet.taskCount, 2);
    assert.ok(greet.lastRuns.length >= 1 && greet.lastRuns.length <= 10);
    assert.deepEqual(list.errors, []);

    const one = body<{ workflow: { id: string }; nextOccurrences: string[]; lastRuns: RunJson[] }>(
      await call(dash.url, "/api/workflows/greet"),
    );
    assert.equal(one.workflow.id, "greet");
    assert.ok(one.lastRuns.length >= 1 && one.lastRuns.every((r) => r.workflowId === "greet"));
    assert.equal((await call(dash.url, "/api/workflows/nope")).status, 404);

    const agents = body<{ agents: { agentId: string; status: string }[] }>(await call(dash.url, "/api/agents"));
    assert.equal(agents.agents.length, 1);
    assert.equal(agents.agents[0]?.status, "ACTIVE");
  });

  it("live: /api/events delivers run and task events; /api/runs/:id/events delivers that run's log lines", async () => {
    const all = await openSse(dash.url, "/api/events");
    assert.equal(all.status, 200);
    assert.match(String(all.headers["content-type"]), /^text\/event-stream/);
    const t = body<{ runId: string }>(
      await write(dash.url, "/api/workflows/sleepy/run", operatorCookie, { params: {} }),
    );
    const one = await openSse(dash.url, `/api/runs/${t.runId}/events`);
    assert.equal(one.status, 200);
    await all.next((e) => e.event === "run" && (e.data as RunJson).runId === t.runId);
    await all.next((e) => e.event === "task" && (e.data as { task: { runId: string } }).task.runId === t.runId);
    await write(dash.url, `/api/runs/${t.runId}/cancel`, operatorCookie);
    await one.next((e) => e.event === "run" && (e.data as RunJson).status === "CANCELLED");
    await one.next((e) => e.event === "log" && (e.data as { runId: string }).runId === t.runId);
    assert.ok(one.events.every((e) => e.event === "reset" || JSON.stringify(e.data).includes(t.runId)));
    all.close();
    one.close();

    const g = body<{ runId: string }>(
      await write(dash.url, "/api/workflows/greet/run", operatorCookie, { params: { who: "sse" } }),
    );
    const s = await openSse(dash.url, `/api/runs/${g.runId}/events`);
    const line = await s.next(
      (e) =>
        (e.event === "log" && /hello sse/.test((e.data as { line: string }).line)) ||
        (e.event === "run" && TERMINAL.has((e.data as RunJson).status)),
    );
    s.close();
    // A run that ended before its lines reached the stream is fine: the page fetches them.
    assert.ok(line.event === "log" || line.event === "run");
    assert.equal((await call(dash.url, "/api/runs/nope/events")).status, 404);
  });

  it("auth: no anonymous write; a reader may not write; JSON content type and same origin required", async () => {
    const anon = await write(dash.url, "/api/workflows/greet/run", null, { params: { who: "x" } });
    assert.equal(anon.status, 401);
    assert.equal(errorCode(anon), "UNAUTHENTICATED");
    for (const target of ["/api/runs/x/cancel", "/api/runs/x/rerun"]) {
      assert.equal((await write(dash.url, target, null, { fromFailed: false })).status, 401);
    }
    const reader = await write(dash.url, "/api/workflows/greet/run", readerCookie, { params: { who: "x" } });
    assert.equal(reader.status, 403);
    assert.equal(errorCode(reader), "PERMISSION_DENIED");
    const form = await call(dash.url, "/api/workflows/greet/run", {
      method: "POST",
      body: "params=1",
      headers: { Cookie: operatorCookie, "Content-Type": "application/x-www-form-urlencoded" },
    });
    assert.equal(form.status, 415);
    const foreign = await call(dash.url, "/api/workflows/greet/run", {
      method: "POST",
      json: { params: { who: "x" } },
      headers: { Cookie: operatorCookie, Origin: "http://evil.example" },
    });
    assert.equal(foreign.status, 403);
    assert.equal(errorCode(foreign), "FORBIDDEN_ORIGIN");
    const host = new URL(dash.url).host;
    const same = await call(dash.url, "/api/workflows/hourly/run", {
      method: "POST",
      json: { params: {} },
      headers: { Cookie: operatorCookie, Origin: `http://${host}` },
    });
    assert.equal(same.status, 200, same.text);
    const badToken = await call(dash.url, "/api/session", {
      method: "POST",
      json: { token: `cdktr_dash_${"A".repeat(43)}` },
    });
    assert.equal(badToken.status, 401);
    // A page served under another Host name (DNS rebinding) reads nothing anonymously.
    const rebound = await call(dash.url, "/api/runs", { headers: { Host: `evil.example:${new URL(dash.url).port}` } });
    assert.equal(rebound.status, 401);
  });

  it("bounds: 413 for a large body, 400 for malformed JSON naming the problem, 404 and 405 as JSON, 400 for bad query fields", async () => {
    const big = await call(dash.url, "/api/workflows/greet/run", {
      method: "POST",
      body: JSON.stringify({ params: { who: "x".repeat(70 * 1024) } }),
      headers: { Cookie: operatorCookie, "Content-Type": "application/json" },
    });
    assert.equal(big.status, 413);
    const bad = await call(dash.url, "/api/workflows/greet/run", {
      method: "POST",
      body: "{not json",
      headers: { Cookie: operatorCookie, "Content-Type": "application/json" },
    });
    assert.equal(bad.status, 400);
    assert.match(errorCode(bad), /BAD_REQUEST/);
    assert.match(bad.text, /not valid JSON/);
    const unknown = await call(dash.url, "/api/nothing/here");
    assert.equal(unknown.status, 404);
    assert.equal(errorCode(unknown), "NOT_FOUND");
    const method = await call(dash.url, "/api/runs", { method: "DELETE", headers: { Cookie: operatorCookie } });
    assert.equal(method.status, 405);
    assert.equal(method.headers.allow, "GET");
    const q = await call(dash.url, "/api/runs?status=NOPE");
    assert.equal(q.status, 400);
    assert.match(q.text, /query\.status/);
    const lim = await call(dash.url, "/api/runs?limit=abc");
    assert.equal(lim.status, 400);
    assert.match(lim.text, /query\.limit/);
    const capped = body<{ runs: unknown[] }>(await call(dash.url, "/api/runs?limit=100000"));
    assert.ok(capped.runs.length <= 200);
    const extra = await call(dash.url, "/api/runs?bogus=1");
    assert.equal(extra.status, 400);
  });

  it("static: the app, SPA fallback, asset caching, and no way out of the directory", async () => {
    const index = await call(dash.url, "/");
    assert.equal(index.status, 200);
    assert.match(String(index.headers["content-type"]), /^text\/html/);
    assert.equal(index.headers["cache-control"], "no-cache");
    const deep = await call(dash.url, "/runs/some-run");
    assert.equal(deep.status, 200);
    assert.equal(deep.text, index.text);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(index.text)?.[1];
    assert.ok(asset, "index.html names a script under /assets/");
    const js = await call(dash.url, asset);
    assert.equal(js.status, 200);
    assert.match(String(js.headers["content-type"]), /^text\/javascript/);
    assert.equal(js.headers["cache-control"], "public, max-age=31536000, immutable");
    for (const target of [
      "/../../../../etc/passwd",
      "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
      "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
      "/assets/%2e%2e%2f%2e%2e%2fpackage.json",
      "/index.html%00.js",
      "/..%5c..%5cetc%5cpasswd",
      "/%E0%A4%A",
    ]) {
      const a = await call(dash.url, target);
      assert.doesNotMatch(a.text, /root:.*:0:0:|"name": "@cdktr\/dashboard"/, target);
      assert.ok(a.status === 400 || (a.status === 200 && a.text === index.text), `${target}: ${a.status}`);
    }
    const post = await call(dash.url, "/", { method: "POST", json: {} });
    assert.equal(post.status, 405);
  });

  it("a revoked token's sessions end at their next request; a new token under its name works", async () => {
    const created = createToken(dash.tokensFile, "carol", "operator");
    let cookie = "";
    await waitFor(async () => {
      const a = await call(dash.url, "/api/session", { method: "POST", json: { token: created.token } });
      if (a.status === 200) cookie = cookieOf(a);
      return a.status === 200;
    });
    assert.equal((await call(dash.url, "/api/runs", { headers: { Cookie: cookie } })).status, 200);
    revokeToken(dash.tokensFile, "carol");
    await waitFor(
      async () =>
        body<{ signedIn: boolean }>(await call(dash.url, "/api/session", { headers: { Cookie: cookie } })).signedIn ===
        false,
    );
    const w = await write(dash.url, "/api/workflows/greet/run", cookie, { params: { who: "x" } });
    assert.equal(w.status, 401);
    assert.equal(
      (await call(dash.url, "/api/session", { method: "POST", json: { token: created.token } })).status,
      401,
    );
    const renewed = createToken(dash.tokensFile, "carol", "reader");
    await waitFor(
      async () =>
        (await call(dash.url, "/api/session", { method: "POST", json: { token: renewed.token } })).status === 200,
    );
  });
});

describe("dashboard API with CDKTR_DASHBOARD_REQUIRE_SIGNIN", () => {
  let stack2: Stack;
  let d: DashboardHandle;
  let readerToken2: string;
  before(async () => {
    stack2 = await startStack({ agents: 0 });
    const tokensFile = join(stack2.principal.home, "tokens", "t.json");
    readerToken2 = createToken(tokensFile, "dora", "reader").token;
    d = await startDashboard(stack2.principal, {
      env: { CDKTR_DASHBOARD_REQUIRE_SIGNIN: "true", CDKTR_DASHBOARD_TOKENS_FILE: tokensFile },
    });
  });
  after(async () => {
    await cleanup();
  });

  it("anonymous reads are 401; /api/session says sign-in is required; a reader's session reads", async () => {
    assert.equal(stack2.agents.length, 0);
    for (const target of ["/api/runs", "/api/workflows", "/api/agents", "/api/events", "/api/runs/x"]) {
      const a = await call(d.url, target);
      assert.equal(a.status, 401, target);
      assert.equal(errorCode(a), "UNAUTHENTICATED");
    }
    assert.equal(body<{ signInRequired: boolean }>(await call(d.url, "/api/session")).signInRequired, true);
    const cookie = await signIn(d.url, readerToken2);
    assert.equal((await call(d.url, "/api/runs", { headers: { Cookie: cookie } })).status, 200);
    assert.equal((await call(d.url, "/api/workflows", { headers: { Cookie: cookie } })).status, 200);
  });

  it("a principal restart sends reset to every live stream", async () => {
    const cookie = await signIn(d.url, readerToken2);
    const s = await openSse(d.url, "/api/events", { Cookie: cookie });
    assert.equal(s.status, 200);
    const before = s.events.filter((e) => e.event === "reset").length;
    await stack2.principal.stop();
    await stack2.principal.start();
    await s.next((e) => e.event === "reset" && s.events.filter((x) => x.event === "reset").length > before, 30_000);
    s.close();
  });

  it("sign-in attempts are limited per address: 429 with Retry-After", async () => {
    let limited: HttpAnswer | null = null;
    for (let i = 0; i < 20 && limited === null; i++) {
      const a = await call(d.url, "/api/session", { method: "POST", json: { token: "cdktr_dash_wrong" } });
      if (a.status === 429) limited = a;
      else assert.equal(a.status, 401);
    }
    assert.ok(limited, "no 429 within 20 attempts");
    assert.ok(Number(limited.headers["retry-after"]) >= 1);
    assert.equal(errorCode(limited), "TOO_MANY_REQUESTS");
  });
});

describe("dashboard without a built app", () => {
  it("answers 503 at / with a message saying to run npm run build", async () => {
    const s = await startStack({ agents: 0 });
    const empty = join(s.principal.home, "empty-public");
    mkdirSync(empty, { recursive: true });
    writeFileSync(join(empty, "note.txt"), "not the app\n");
    // The process serves its own dist/public; an in-process dashboard takes another directory.
    const { createDashboard, loadConfig } = await import("@cdktr/dashboard");
    const { noopLogger } = await import("@cdktr/protocol");
    const app = createDashboard(
      loadConfig({
        ...s.principal.clientEnv,
        CDKTR_DASHBOARD_PORT: "0",
        CDKTR_DASHBOARD_TOKENS_FILE: join(empty, "t.json"),
      }),
      { logger: noopLogger, key: s.principal.key("local-dashboard"), publicDir: empty, env: s.principal.clientEnv },
    );
    try {
      const { url } = await app.start();
      const a = await call(url, "/");
      assert.equal(a.status, 503);
      assert.match(a.text, /npm run build/);
      assert.equal((await call(url, "/note.txt")).text, "not the app\n");
      assert.equal((await call(url, "/api/session")).status, 200);
    } finally {
      await app.stop();
      await cleanup();
    }
  });
});

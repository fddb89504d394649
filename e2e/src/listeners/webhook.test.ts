/**
 * The webhook listener against a real principal process: happy path, bad input of every kind,
 * signatures (bad, stale, replayed, made for another workflow or key, replayed after a restart,
 * the retired format), a replay cache that cannot be written, oversize bodies, and a principal
 * that is down.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { ListenerStartError } from "@cdktr/events";
import { WebhookListener, signWebhookRequest, webhookTriggerPath } from "@cdktr/events/webhook";
import { cleanup, freePort, makeTempDir, startPrincipal, type PrincipalFixture } from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflows } from "./helpers.js";
import { post } from "./http-post.js";
import { ListenerPool } from "./listener-pool.js";

/** The signature headers of a POST of `body` to `/trigger/<workflowId>`, signed now (or at `ts`). */
function signed(
  secret: string,
  workflowId: string,
  body: string,
  key?: string,
  ts = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const path = webhookTriggerPath(workflowId);
  return {
    "x-cdktr-timestamp": String(ts),
    "x-cdktr-signature": signWebhookRequest(secret, ts, { method: "POST", path, idempotencyKey: key, body }),
    ...(key === undefined ? {} : { "idempotency-key": key }),
  };
}

describe("webhook listener", () => {
  let f: PrincipalFixture;
  const listeners = new ListenerPool<WebhookListener>();

  /** A listener on a free port, with its replay cache in a fresh temp directory unless `stateDir` is given. */
  /** `reasons` collects the `rejected` events (requests turned away before any trigger). */
  const startListener = async (
    opts: ConstructorParameters<typeof WebhookListener>[0] = {},
    reasons?: string[],
  ): Promise<string> => {
    const listener = new WebhookListener({
      principal: { host: "127.0.0.1", port: f.ports.api },
      key: f.key("local-listeners"),
      port: 0,
      stateDir: makeTempDir("cdktr-webhook-state-"),
      ...opts,
    });
    if (reasons !== undefined) listener.on("rejected", (r) => reasons.push(r.reason));
    const l = await listeners.start(listener);
    return (await l.listening()).url;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: paramWorkflows("wf", "sig", "bad", "hookA", "hookB", "restart", "full"),
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
  });
  afterEach(() => listeners.stopAll());
  after(cleanup);

  test("POST /trigger/<id> triggers exactly one run with the body's params", async () => {
    const url = await startListener();
    const r = await post(`${url}/trigger/wf`, JSON.stringify({ date: "2026-11-28", n: "3" }));
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.status, "triggered");
    assert.equal(r.body.workflow, "wf");
    assert.equal(r.body.duplicate, false);
    assert.equal(typeof r.body.runId, "string");
    const runs = await expectRunCount(f, "wf", 1);
    assert.equal(runs[0]?.runId, r.body.runId);
    assert.deepEqual(runs[0]?.params, { date: "2026-11-28", n: "3" });
    assert.equal(runs[0]?.source, "webhook");

    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
  });

  test("the same Idempotency-Key maps to the same run", async () => {
    const url = await startListener();
    const before = (await f.runs("wf")).length;
    const a = await post(`${url}/trigger/wf`, "", { "idempotency-key": "deploy-42" });
    const b = await post(`${url}/trigger/wf`, "", { "idempotency-key": "deploy-42" });
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.equal(b.body.runId, a.body.runId);
    assert.equal(b.body.duplicate, true);
    await expectRunCount(f, "wf", before + 1);
  });

  test("bad input is refused with a clear JSON error, nothing is triggered, the listener keeps serving", async () => {
    const reasons: string[] = [];
    const url = await startListener({ maxBodyBytes: 1024 }, reasons);
    const cases: { body: string; path?: string; status: number; code: string; match: RegExp }[] = [
      { body: "{not json", status: 400, code: "BAD_REQUEST", match: /not valid JSON/ },
      { body: "[1,2]", status: 400, code: "BAD_REQUEST", match: /JSON object/ },
      { body: JSON.stringify({ date: { nested: true } }), status: 400, code: "BAD_REQUEST", match: /params\.date/ },
      { body: JSON.stringify({ undeclared: "x" }), status: 400, code: "INVALID_PARAMS", match: /undeclared/ },
      {
        body: "{}",
        path: "/trigger/no-such-workflow",
        status: 404,
        code: "WORKFLOW_NOT_FOUND",
        match: /no-such-workflow/,
      },
      { body: "{}", path: "/trigger/bad%20id", status: 404, code: "WORKFLOW_NOT_FOUND", match: /bad id/ },
    ];
    for (const c of cases) {
      const r = await post(`${url}${c.path ?? "/trigger/bad"}`, c.body);
      assert.equal(r.status, c.status, `${c.body}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.status, "error");
      assert.equal(r.body.code, c.code);
      assert.match(String(r.body.message), c.match);
    }
    // Oversize, announced by Content-Length and streamed chunked: 413, body not read further.
    const big = JSON.stringify({ date: "x".repeat(200_000) });
    const announced = await post(`${url}/trigger/bad`, big);
    assert.equal(announced.status, 413);
    assert.equal(announced.body.code, "PAYLOAD_TOO_LARGE");
    const chunked = await post(`${url}/trigger/bad`, big, {}, { chunked: true });
    assert.equal(chunked.status, 413);
    assert.match(String(chunked.body.message), /exceeds 1024 bytes/);
    // Wrong method and unknown path.
    const get = await fetch(`${url}/trigger/bad`);
    assert.equal(get.status, 405);
    const nowhere = await post(`${url}/elsewhere`, "{}");
    assert.equal(nowhere.status, 404);
    // Turned away by the listener itself (the metrics count these by reason); the undeclared
    // param and the unknown workflow were the principal's refusals (`triggered` results).
    assert.deepEqual(reasons, [
      "malformed",
      "malformed",
      "malformed",
      "not_found",
      "too_large",
      "too_large",
      "method",
      "not_found",
    ]);

    assert.equal((await f.runs("bad")).length, 0, "nothing was triggered");
    const ok = await post(`${url}/trigger/bad`, JSON.stringify({ date: "ok" }));
    assert.equal(ok.status, 202, "still serving");
    await expectRunCount(f, "bad", 1);
  });

  test("with a secret: valid signatures trigger; missing, wrong, stale and replayed ones get 401", async () => {
    const secret = "s3cr3t-for-tests";
    const reasons: string[] = [];
    const url = await startListener({ secret }, reasons);
    const body = JSON.stringify({ date: "2026-11-28" });
    const now = Math.floor(Date.now() / 1000);
    const headers = signed(secret, "sig", body, undefined, now);

    const ok = await post(`${url}/trigger/sig`, body, headers);
    assert.equal(ok.status, 202, JSON.stringify(ok.body));

    const replay = await post(`${url}/trigger/sig`, body, headers);
    assert.equal(replay.status, 401);
    assert.match(String(replay.body.message), /already used/);

    const missing = await post(`${url}/trigger/sig`, body);
    assert.equal(missing.status, 401);
    assert.match(String(missing.body.message), /x-cdktr-timestamp/);

    const wrong = await post(`${url}/trigger/sig`, body, signed("other", "sig", body, undefined, now));
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.body.message), /does not match/);

    const tampered = await post(`${url}/trigger/sig`, JSON.stringify({ date: "2099-01-01" }), headers);
    assert.equal(tampered.status, 401, "the signature covers the body");

    const stale = await post(`${url}/trigger/sig`, body, signed(secret, "sig", body, undefined, now - 10 * 60));
    assert.equal(stale.status, 401);
    assert.match(String(stale.body.message), /more than 300 s/);
    assert.deepEqual(reasons, ["replayed", "signature", "signature", "signature", "signature"]);

    const runs = await expectRunCount(f, "sig", 1);
    assert.deepEqual(runs[0]?.params, { date: "2026-11-28" });
  });

  test("a signature made for workflow A, or for one idempotency key, is refused on B or with another key", async () => {
    const secret = "s3cr3t-for-tests";
    const url = await startListener({ secret });
    const body = JSON.stringify({ date: "for-A" });
    const forA = signed(secret, "hookA", body, "order-1");

    const toB = await post(`${url}/trigger/hookB`, body, forA);
    assert.equal(toB.status, 401, "the path (the workflow) is signed");
    assert.match(String(toB.body.message), /does not match this request/);

    const otherKey = await post(`${url}/trigger/hookA`, body, { ...forA, "idempotency-key": "order-2" });
    assert.equal(otherKey.status, 401, "the idempotency key is signed");
    const noKey = await post(`${url}/trigger/hookA`, body, {
      "x-cdktr-timestamp": forA["x-cdktr-timestamp"] ?? "",
      "x-cdktr-signature": forA["x-cdktr-signature"] ?? "",
    });
    assert.equal(noKey.status, 401, "dropping the key breaks the signature");

    const ok = await post(`${url}/trigger/hookA`, body, forA);
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    const again = await post(`${url}/trigger/hookB`, body, forA);
    assert.equal(again.status, 401);
    await expectRunCount(f, "hookA", 1);
    assert.equal((await f.runs("hookB")).length, 0, "nothing ran on B");
  });

  test("the retired version 1 signature (sha256= over timestamp.body) gets 401 naming the v2 format", async () => {
    const secret = "s3cr3t-for-tests";
    const url = await startListener({ secret });
    const body = JSON.stringify({ date: "v1" });
    const ts = Math.floor(Date.now() / 1000);
    const v1 = createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex");
    const r = await post(`${url}/trigger/hookB`, body, {
      "x-cdktr-timestamp": String(ts),
      "x-cdktr-signature": `sha256=${v1}`,
    });
    assert.equal(r.status, 401);
    assert.equal(r.body.code, "UNAUTHORIZED");
    assert.match(String(r.body.message), /retired version 1 format/);
    assert.match(String(r.body.message), /v2=<hex HMAC-SHA256 of/);
    assert.equal((await f.runs("hookB")).length, 0);
  });

  test("a signature accepted before a restart is refused after it; a damaged cache refuses requests signed before the restart", async () => {
    const secret = "s3cr3t-for-tests";
    const stateDir = makeTempDir("cdktr-webhook-state-");
    const body = JSON.stringify({ date: "once" });
    const headers = signed(secret, "restart", body);
    const first = await startListener({ secret, stateDir });
    assert.equal((await post(`${first}/trigger/restart`, body, headers)).status, 202);
    await listeners.stopAll();

    const second = await startListener({ secret, stateDir });
    assert.notEqual(second, first, "a new listener (new port)");
    const replay = await post(`${second}/trigger/restart`, body, headers);
    assert.equal(replay.status, 401);
    assert.match(String(replay.body.message), /already used/);
    await expectRunCount(f, "restart", 1);
    await listeners.stopAll();

    // Damage the cache (a torn line): what was signed before the next start is refused.
    const [cacheDir] = readdirSync(stateDir);
    const cache = join(stateDir, cacheDir ?? "");
    const [file] = readdirSync(cache);
    appendFileSync(join(cache, file ?? ""), "\nuse 12 torn");
    const signedBefore = signed(
      secret,
      "restart",
      JSON.stringify({ date: "before" }),
      undefined,
      Math.floor(Date.now() / 1000) - 2,
    );
    const third = await startListener({ secret, stateDir });
    const refused = await post(`${third}/trigger/restart`, JSON.stringify({ date: "before" }), signedBefore);
    assert.equal(refused.status, 401);
    assert.match(String(refused.body.message), /replay cache was damaged: sign it again/);
    const after = JSON.stringify({ date: "after" });
    const fresh = await post(`${third}/trigger/restart`, after, signed(secret, "restart", after));
    assert.equal(fresh.status, 202, JSON.stringify(fresh.body));
    const runs = await expectRunCount(f, "restart", 2);
    assert.deepEqual(runs.map((r) => r.params.date).sort(), ["after", "once"]);
  });

  test("a replay cache that cannot be written (full disk): 503, nothing triggered; an unusable state dir: no start", async () => {
    const secret = "s3cr3t-for-tests";
    const stateDir = makeTempDir("cdktr-webhook-state-");
    const url = await startListener({ secret, stateDir, retryAfterS: 7 });
    const [cacheDir] = readdirSync(stateDir);
    const cache = join(stateDir, cacheDir ?? "");
    const [file] = readdirSync(cache);
    rmSync(join(cache, file ?? ""));
    symlinkSync("/dev/full", join(cache, file ?? ""));
    const body = JSON.stringify({ date: "full" });
    const headers = signed(secret, "full", body);
    const r = await post(`${url}/trigger/full`, body, headers);
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.headers["retry-after"], "7");
    assert.equal(r.body.code, "UNAVAILABLE");
    assert.match(String(r.body.message), /cannot record this signature in its replay cache.*nothing was triggered/);
    assert.ok(!String(r.body.message).includes(stateDir), "no server path in the reply");
    assert.equal((await f.runs("full")).length, 0, "nothing was triggered");
    rmSync(join(cache, file ?? ""));
    const retried = await post(`${url}/trigger/full`, body, headers);
    assert.equal(retried.status, 202, "the disk has room again: the same request goes through");
    await expectRunCount(f, "full", 1);

    const notADir = join(makeTempDir("cdktr-webhook-state-"), "file");
    writeFileSync(notADir, "");
    const l = listeners.track(
      new WebhookListener({ principal: { host: "127.0.0.1", port: f.ports.api }, port: 0, secret, stateDir: notADir }),
    );
    await l.start();
    await assert.rejects(l.listening(), (e: unknown) => {
      assert.ok(e instanceof ListenerStartError, String(e));
      assert.match(e.message, /cannot create the webhook replay cache directory/);
      return true;
    });
  });

  test("principal down: 503 with Retry-After within 5 s", async () => {
    const deadPort = await freePort();
    const l = await listeners.start(
      new WebhookListener({
        principal: { host: "127.0.0.1", port: deadPort },
        key: null,
        port: 0,
        triggerTimeoutMs: 1500,
      }),
    );
    const { url } = await l.listening();
    const t0 = Date.now();
    const r = await post(`${url}/trigger/wf`, JSON.stringify({ date: "x" }));
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.ok(Date.now() - t0 < 5000, "a caller waits at most 5 s (the deadline is 1.5 s)");
    assert.equal(r.headers["retry-after"], "5");
    assert.equal(r.body.code, "UNAVAILABLE");
    assert.match(String(r.body.message), /unavailable/);
  });
});

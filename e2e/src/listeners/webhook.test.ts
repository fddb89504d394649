/**
 * The webhook listener against a real principal process: happy path, bad input of every kind,
 * signatures (bad, stale, replayed), oversize bodies, and a principal that is down.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { WebhookListener, signWebhookBody } from "@cdktr/events/webhook";
import { cleanup, freePort, startPrincipal, type PrincipalFixture } from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflows } from "./helpers.js";
import { ListenerPool } from "./listener-pool.js";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** POST with node:http (so chunked/oversize bodies and raw headers are under control). */
function post(
  url: string,
  body: string | Buffer | null,
  headers: Record<string, string> = {},
  opts: { chunked?: boolean } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: JSON.parse(text) as Record<string, unknown>,
            });
          } catch {
            reject(new Error(`reply is not JSON: ${text}`));
          }
        });
      },
    );
    req.setTimeout(8000, () => req.destroy(new Error("no reply within 8 s")));
    req.on("error", reject);
    if (body === null) req.end();
    else if (opts.chunked === true) {
      const buf = Buffer.from(body);
      for (let i = 0; i < buf.length; i += 4096) req.write(buf.subarray(i, i + 4096));
      req.end();
    } else {
      req.setHeader("content-length", Buffer.byteLength(body));
      req.end(body);
    }
  });
}

describe("webhook listener", () => {
  let f: PrincipalFixture;
  const listeners = new ListenerPool<WebhookListener>();

  const startListener = async (opts: ConstructorParameters<typeof WebhookListener>[0] = {}): Promise<string> => {
    const l = await listeners.start(
      new WebhookListener({
        principal: { host: "127.0.0.1", port: f.ports.api },
        key: f.key("local-listeners"),
        port: 0,
        ...opts,
      }),
    );
    return (await l.listening()).url;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: paramWorkflows("wf", "sig", "bad"),
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
    const url = await startListener({ maxBodyBytes: 1024 });
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

    assert.equal((await f.runs("bad")).length, 0, "nothing was triggered");
    const ok = await post(`${url}/trigger/bad`, JSON.stringify({ date: "ok" }));
    assert.equal(ok.status, 202, "still serving");
    await expectRunCount(f, "bad", 1);
  });

  test("with a secret: valid signatures trigger; missing, wrong, stale and replayed ones get 401", async () => {
    const secret = "s3cr3t-for-tests";
    const url = await startListener({ secret });
    const body = JSON.stringify({ date: "2026-11-28" });
    const now = Math.floor(Date.now() / 1000);
    const signed = { "x-cdktr-timestamp": String(now), "x-cdktr-signature": signWebhookBody(secret, now, body) };

    const ok = await post(`${url}/trigger/sig`, body, signed);
    assert.equal(ok.status, 202, JSON.stringify(ok.body));

    const replay = await post(`${url}/trigger/sig`, body, signed);
    assert.equal(replay.status, 401);
    assert.match(String(replay.body.message), /already used/);

    const missing = await post(`${url}/trigger/sig`, body);
    assert.equal(missing.status, 401);
    assert.match(String(missing.body.message), /x-cdktr-timestamp/);

    const wrong = await post(`${url}/trigger/sig`, body, {
      "x-cdktr-timestamp": String(now),
      "x-cdktr-signature": signWebhookBody("other", now, body),
    });
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.body.message), /does not match/);

    const tampered = await post(`${url}/trigger/sig`, JSON.stringify({ date: "2099-01-01" }), signed);
    assert.equal(tampered.status, 401, "the signature covers the body");

    const old = now - 10 * 60;
    const stale = await post(`${url}/trigger/sig`, body, {
      "x-cdktr-timestamp": String(old),
      "x-cdktr-signature": signWebhookBody(secret, old, body),
    });
    assert.equal(stale.status, 401);
    assert.match(String(stale.body.message), /more than 300 s/);

    const runs = await expectRunCount(f, "sig", 1);
    assert.deepEqual(runs[0]?.params, { date: "2026-11-28" });
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

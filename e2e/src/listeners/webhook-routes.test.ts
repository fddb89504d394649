/**
 * Webhook routes against a real principal process: requests signed exactly as GitHub signs them
 * (the HMAC computed here with node:crypto over the raw bytes sent), GitLab's token, generic HMACs;
 * `when` filters (202 ignored, nothing runs), mapped params, idempotency keys from the delivery
 * ids, mapping errors, cdktr-signed routes next to `/trigger`, a principal that is down, and the
 * same routes from a listeners YAML file run by the listeners app.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { WebhookListener, signWebhookRequest, webhookTriggerPath, type WebhookRoute } from "@cdktr/events/webhook";
import {
  cleanup,
  freePort,
  makeTempDir,
  startListeners,
  startPrincipal,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflow } from "./helpers.js";
import { post } from "./http-post.js";
import { ListenerPool } from "./listener-pool.js";

const GH_SECRET = "gh-s3cret-for-tests";
const GL_SECRET = "gl-s3cret-for-tests";
const SHOP_SECRET = "shop-s3cret-for-tests";
const OWN_SECRET = "own-s3cret-for-tests";
const LISTENER_SECRET = "listener-s3cret-for-tests";

/** The headers GitHub sends with a delivery of `event`, signed over the raw `body` as GitHub does. */
function github(
  event: string,
  body: string,
  delivery: string = randomUUID(),
  secret = GH_SECRET,
): Record<string, string> {
  return {
    "user-agent": "GitHub-Hookshot/test",
    "x-github-event": event,
    "x-github-delivery": delivery,
    "x-github-hook-id": "4242",
    "x-hub-signature": `sha1=${createHmac("sha1", secret).update(body).digest("hex")}`,
    "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
  };
}

/** A push payload as GitHub sends it (pretty-printed: the signature is over these exact bytes). */
function push(ref: string, sha: string): string {
  return JSON.stringify(
    {
      ref,
      before: "0".repeat(40),
      after: sha,
      repository: { full_name: "octo-org/app" },
      pusher: { name: "octocat", email: "octocat@example.com" },
      head_commit: { id: sha, message: "Fix the build" },
    },
    null,
    2,
  );
}

const sha = (n: number): string => n.toString(16).padStart(40, "a");

const ROUTES: WebhookRoute[] = [
  {
    path: "/hooks/github/deploy",
    workflow: "ghdeploy",
    flavour: "github",
    secret: GH_SECRET,
    mapping: {
      when: `headers."x-github-event" == 'push' && body.ref == 'refs/heads/main'`,
      paramsMap: { sha: "body.after", pusher: "body.pusher.name", event: 'headers."x-github-event"' },
    },
  },
  {
    path: "/hooks/gitlab/build",
    workflow: "glbuild",
    flavour: "gitlab",
    secret: GL_SECRET,
    mapping: {
      when: "body.object_kind == 'push'",
      paramsMap: { sha: "body.checkout_sha", token: { from: 'headers."x-gitlab-token"', optional: true } },
    },
  },
  {
    path: "/hooks/shop",
    workflow: "shop",
    flavour: "hmac",
    secret: SHOP_SECRET,
    hmac: { header: "X-Shop-Signature", algorithm: "sha512", encoding: "base64" },
    mapping: {
      paramsMap: { order: "to_string(body.order_id)", env: "query.env", path: "path", method: "method" },
      idempotencyKey: "body.order_id",
    },
  },
  {
    path: "/hooks/plain",
    workflow: "plain",
    flavour: "hmac",
    secret: SHOP_SECRET,
    hmac: { header: "X-Signature", prefix: "sha256=" },
    requireIdempotencyKey: true,
    // `extra` is not a param of the workflow: sent only when the body has one, and then refused.
    mapping: { paramsMap: { n: "body.n", extra: { from: "body.extra", optional: true } } },
  },
  {
    path: "/hooks/own",
    workflow: "own",
    flavour: "cdktr",
    secret: OWN_SECRET,
    mapping: { paramsMap: { date: "body.date" } },
  },
];

describe("webhook routes", () => {
  let f: PrincipalFixture;
  const listeners = new ListenerPool<WebhookListener>();

  /** A listener with {@link ROUTES} on a free port; `reasons` collects its `rejected` events. */
  const startListener = async (
    opts: ConstructorParameters<typeof WebhookListener>[0] = {},
    reasons?: string[],
  ): Promise<string> => {
    const listener = new WebhookListener({
      principal: { host: "127.0.0.1", port: f.ports.api },
      key: f.key("local-listeners"),
      port: 0,
      stateDir: makeTempDir("cdktr-webhook-state-"),
      routes: ROUTES,
      ...opts,
    });
    if (reasons !== undefined) listener.on("rejected", (r) => reasons.push(r.reason));
    const l = await listeners.start(listener);
    return (await l.listening()).url;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: {
        "ghdeploy.yml": paramWorkflow("ghdeploy", ["sha", "pusher", "event"]),
        "ghbad.yml": paramWorkflow("ghbad", ["sha"]),
        "glbuild.yml": paramWorkflow("glbuild", ["sha", "token"]),
        "shop.yml": paramWorkflow("shop", ["order", "env", "path", "method"]),
        "plain.yml": paramWorkflow("plain", ["n"]),
        "own.yml": paramWorkflow("own", ["date"]),
        "yamlhook.yml": paramWorkflow("yamlhook", ["sha"]),
      },
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
  });
  afterEach(() => listeners.stopAll());
  after(cleanup);

  test("GitHub: a signed push to main triggers one run with the commit sha; the same delivery again is that run; another branch or event is ignored (202); ping gets 200", async () => {
    const reasons: string[] = [];
    const url = await startListener({}, reasons);
    const hook = `${url}/hooks/github/deploy`;
    const body = push("refs/heads/main", sha(1));
    const headers = github("push", body);

    const first = await post(hook, body, headers);
    assert.equal(first.status, 202, JSON.stringify(first.body));
    assert.equal(first.body.status, "triggered");
    assert.equal(first.body.workflow, "ghdeploy");
    assert.equal(first.body.duplicate, false);
    const runs = await expectRunCount(f, "ghdeploy", 1);
    assert.equal(runs[0]?.runId, first.body.runId);
    assert.deepEqual(runs[0]?.params, { sha: sha(1), pusher: "octocat", event: "push" });
    assert.equal(runs[0]?.idempotencyKey, `github:/hooks/github/deploy:${headers["x-github-delivery"]}`);
    assert.equal(runs[0]?.source, "webhook");

    // GitHub redelivers (or someone replays) the same delivery: the same run, nothing new.
    const again = await post(hook, body, headers);
    assert.equal(again.status, 202, JSON.stringify(again.body));
    assert.equal(again.body.runId, first.body.runId);
    assert.equal(again.body.duplicate, true);

    const feature = await post(
      hook,
      push("refs/heads/feature", sha(2)),
      github("push", push("refs/heads/feature", sha(2))),
    );
    assert.equal(feature.status, 202, "GitHub must not show an ignored event as a failed delivery");
    assert.equal(feature.body.status, "ignored");
    assert.match(
      String(feature.body.reason),
      /does not match this route's `when` filter: headers\."x-github-event" == 'push'/,
    );
    const issue = JSON.stringify({ action: "opened", ref: "refs/heads/main", issue: { number: 1 } });
    const other = await post(hook, issue, github("issues", issue));
    assert.equal(other.status, 202);
    assert.equal(other.body.status, "ignored");

    const zen = JSON.stringify({ zen: "Keep it logically awesome.", hook_id: 4242 });
    const ping = await post(hook, zen, github("ping", zen));
    assert.equal(ping.status, 200, JSON.stringify(ping.body));
    assert.deepEqual(ping.body, { status: "pong", route: "/hooks/github/deploy", workflow: "ghdeploy" });
    const unsignedPing = await post(hook, zen, { "x-github-event": "ping" });
    assert.equal(unsignedPing.status, 401, "a ping is answered only once its signature is checked");

    // GitHub's other content type: the JSON is the form field `payload`; the form body is what is signed.
    const form = `payload=${encodeURIComponent(push("refs/heads/main", sha(3)))}`;
    const formReply = await post(hook, form, {
      ...github("push", form),
      "content-type": "application/x-www-form-urlencoded",
    });
    assert.equal(formReply.status, 202, JSON.stringify(formReply.body));

    const all = await expectRunCount(f, "ghdeploy", 2);
    assert.deepEqual(all.map((r) => r.params.sha).sort(), [sha(1), sha(3)]);
    assert.deepEqual(reasons, ["filtered", "filtered", "signature"]);
  });

  test("GitHub: a missing, wrong or legacy-only signature, or a body changed after signing, gets 401 and nothing runs", async () => {
    const reasons: string[] = [];
    const url = await startListener({ routes: [{ ...(ROUTES[0] as WebhookRoute), workflow: "ghbad" }] }, reasons);
    const hook = `${url}/hooks/github/deploy`;
    const body = push("refs/heads/main", sha(10));
    const unsigned = Object.fromEntries(
      Object.entries(github("push", body)).filter(([name]) => name !== "x-hub-signature-256"),
    );

    const missing = await post(hook, body, unsigned);
    assert.equal(missing.status, 401);
    assert.equal(missing.body.code, "UNAUTHORIZED");
    assert.match(String(missing.body.message), /^missing X-Hub-Signature-256 header/);
    const legacyOnly = await post(hook, body, {
      ...unsigned,
      "x-hub-signature": github("push", body)["x-hub-signature"] ?? "",
    });
    assert.equal(legacyOnly.status, 401, "the SHA-1 X-Hub-Signature is not accepted");
    const wrong = await post(hook, body, github("push", body, randomUUID(), "not-the-secret"));
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.body.message), /X-Hub-Signature-256 does not match the body/);
    const tampered = await post(hook, push("refs/heads/main", sha(11)), github("push", body));
    assert.equal(tampered.status, 401, "the signature covers the raw body");
    const reformatted = await post(hook, JSON.stringify(JSON.parse(body)), github("push", body));
    assert.equal(reformatted.status, 401, "the same JSON in other bytes is another body");

    assert.deepEqual(reasons, ["signature", "signature", "signature", "signature", "signature"]);
    await expectRunCount(f, "ghbad", 0);
  });

  test("GitLab: the right token triggers (keys from Idempotency-Key, else X-Gitlab-Event-UUID), a wrong or missing one gets 401, the token never reaches the run", async () => {
    const url = await startListener();
    const hook = `${url}/hooks/gitlab/build`;
    const body = JSON.stringify({ object_kind: "push", ref: "refs/heads/main", checkout_sha: sha(20) });
    const headers = {
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": GL_SECRET,
      "x-gitlab-event-uuid": randomUUID(),
      "idempotency-key": randomUUID(),
    };
    const ok = await post(hook, body, headers);
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    const retry = await post(hook, body, { ...headers, "x-gitlab-event-uuid": randomUUID() });
    assert.equal(retry.body.runId, ok.body.runId, "GitLab's retry keeps its Idempotency-Key");
    assert.equal(retry.body.duplicate, true);

    const older = JSON.stringify({ object_kind: "push", checkout_sha: sha(21) });
    const uuid = randomUUID();
    const byUuid = await post(hook, older, { "x-gitlab-token": GL_SECRET, "x-gitlab-event-uuid": uuid });
    assert.equal(byUuid.status, 202, JSON.stringify(byUuid.body));

    const wrong = await post(hook, body, { ...headers, "x-gitlab-token": `${GL_SECRET}x` });
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.body.message), /X-Gitlab-Token does not match/);
    const missing = await post(hook, body, { "x-gitlab-event": "Push Hook" });
    assert.equal(missing.status, 401);
    assert.match(String(missing.body.message), /missing X-Gitlab-Token/);
    const tag = JSON.stringify({ object_kind: "tag_push", checkout_sha: sha(22) });
    const ignored = await post(hook, tag, { "x-gitlab-token": GL_SECRET });
    assert.equal(ignored.body.status, "ignored");

    const runs = await expectRunCount(f, "glbuild", 2);
    const byKey = new Map(runs.map((r) => [r.idempotencyKey, r.params]));
    assert.deepEqual(byKey.get(`gitlab:/hooks/gitlab/build:${headers["idempotency-key"]}`), { sha: sha(20) });
    assert.deepEqual(
      byKey.get(`gitlab:/hooks/gitlab/build:${uuid}`),
      { sha: sha(21) },
      "no token param: X-Gitlab-Token is not in the event",
    );
  });

  test("generic HMAC: SHA-512/base64 and SHA-256/hex with a prefix verify, a wrong one gets 401; the event document has body, query, path and method; keys from the expression or Idempotency-Key", async () => {
    const reasons: string[] = [];
    const url = await startListener({}, reasons);
    const order = JSON.stringify({ order_id: 42, total: "9.90" });
    const shopSig = (b: string, secret = SHOP_SECRET): Record<string, string> => ({
      "x-shop-signature": createHmac("sha512", secret).update(b).digest("base64"),
    });
    const ok = await post(`${url}/hooks/shop?env=prod`, order, shopSig(order));
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    // The same order again, in other bytes: its key (body.order_id) maps it to the same run.
    const again = JSON.stringify({ total: "9.90", order_id: 42 });
    const dup = await post(`${url}/hooks/shop?env=prod`, again, shopSig(again));
    assert.equal(dup.body.runId, ok.body.runId);
    assert.equal(dup.body.duplicate, true);
    const bad = await post(`${url}/hooks/shop?env=prod`, order, {
      "x-shop-signature": createHmac("sha256", SHOP_SECRET).update(order).digest("base64"),
    });
    assert.equal(bad.status, 401);
    assert.match(
      String(bad.body.message),
      /X-Shop-Signature does not match the body: expected <base64 HMAC-SHA512 of the raw body>/,
    );
    const runs = await expectRunCount(f, "shop", 1);
    assert.deepEqual(runs[0]?.params, { order: "42", env: "prod", path: "/hooks/shop", method: "POST" });
    assert.equal(runs[0]?.idempotencyKey, "hmac:/hooks/shop:42");

    // require_idempotency_key: without a key (no header, no expression) a replay would be a new run: 400.
    const plain = `${url}/hooks/plain`;
    const sig = (b: string): Record<string, string> => ({
      "x-signature": `sha256=${createHmac("sha256", SHOP_SECRET).update(b).digest("hex")}`,
    });
    const n = JSON.stringify({ n: "1" });
    const noKey = await post(plain, n, sig(n));
    assert.equal(noKey.status, 400);
    assert.match(
      String(noKey.body.message),
      /route \/hooks\/plain requires an idempotency key: send the header Idempotency-Key/,
    );
    const withKey = await post(plain, n, { ...sig(n), "idempotency-key": "batch-1" });
    assert.equal(withKey.status, 202, JSON.stringify(withKey.body));
    const replayed = await post(plain, n, { ...sig(n), "idempotency-key": "batch-1" });
    assert.equal(replayed.body.runId, withKey.body.runId);

    // A mapped param the request lacks: 422 naming the param and its expression; nothing runs.
    const empty = JSON.stringify({ m: 1 });
    const unmapped = await post(plain, empty, { ...sig(empty), "idempotency-key": "batch-2" });
    assert.equal(unmapped.status, 422);
    assert.equal(unmapped.body.code, "UNMAPPED_EVENT");
    assert.match(
      String(unmapped.body.message),
      /route \/hooks\/plain: cannot map the event: params\.n \(body\.n\): found nothing in the event/,
    );
    // A param the workflow does not declare: the principal's 400, as on /trigger.
    const undeclared = JSON.stringify({ n: "3", extra: "x" });
    const refused = await post(plain, undeclared, { ...sig(undeclared), "idempotency-key": "batch-3" });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.code, "INVALID_PARAMS");
    assert.match(String(refused.body.message), /extra/);

    await expectRunCount(f, "plain", 1);
    assert.deepEqual(reasons, ["signature", "no_key", "unmapped"]);
  });

  test("cdktr routes are signed over their own path with their own secret and replay cache; /trigger keeps working next to the routes; trigger_path false turns it off", async () => {
    const url = await startListener({ secret: LISTENER_SECRET });
    const body = JSON.stringify({ date: "2026-11-28" });
    const ts = Math.floor(Date.now() / 1000);
    const signedFor = (secret: string, path: string): Record<string, string> => ({
      "x-cdktr-timestamp": String(ts),
      "x-cdktr-signature": signWebhookRequest(secret, ts, { method: "POST", path, body }),
    });
    const own = signedFor(OWN_SECRET, "/hooks/own");
    const ok = await post(`${url}/hooks/own`, body, own);
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    const replay = await post(`${url}/hooks/own`, body, own);
    assert.equal(replay.status, 401);
    assert.match(String(replay.body.message), /already used/);
    const listenerSecret = await post(`${url}/hooks/own`, body, signedFor(LISTENER_SECRET, "/hooks/own"));
    assert.equal(listenerSecret.status, 401, "the route has its own secret");
    const otherPath = await post(`${url}/hooks/own`, body, signedFor(OWN_SECRET, webhookTriggerPath("own")));
    assert.equal(otherPath.status, 401, "the path is signed");

    const trigger = await post(`${url}/trigger/own`, body, signedFor(LISTENER_SECRET, webhookTriggerPath("own")));
    assert.equal(trigger.status, 202, JSON.stringify(trigger.body));
    const runs = await expectRunCount(f, "own", 2);
    assert.deepEqual(
      runs.map((r) => r.params),
      [{ date: "2026-11-28" }, { date: "2026-11-28" }],
    );
    await listeners.stopAll();

    const routesOnly = await startListener({ triggerPath: false });
    const gone = await post(`${routesOnly}/trigger/own`, "{}");
    assert.equal(gone.status, 404);
    assert.match(String(gone.body.message), /use POST to one of this listener's routes/);
    const wrongMethod = await fetch(`${routesOnly}/hooks/own`);
    assert.equal(wrongMethod.status, 405);
    await expectRunCount(f, "own", 2);
  });

  test("as on /trigger: a body over the limit gets 413, a principal that is down 503 with Retry-After", async () => {
    const url = await startListener({ maxBodyBytes: 1024 });
    const big = push("refs/heads/main", "x".repeat(4000));
    const tooLarge = await post(`${url}/hooks/github/deploy`, big, github("push", big));
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body.code, "PAYLOAD_TOO_LARGE");
    await listeners.stopAll();

    const deadPort = await freePort();
    const l = await listeners.start(
      new WebhookListener({
        principal: { host: "127.0.0.1", port: deadPort },
        key: null,
        port: 0,
        triggerTimeoutMs: 1500,
        routes: ROUTES,
        stateDir: makeTempDir("cdktr-webhook-state-"),
      }),
    );
    const { url: down } = await l.listening();
    const body = push("refs/heads/main", sha(30));
    const t0 = Date.now();
    const r = await post(`${down}/hooks/github/deploy`, body, github("push", body));
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.ok(Date.now() - t0 < 5000, "GitHub waits 10 s at most: the caller gets an answer well before");
    assert.equal(r.headers["retry-after"], "5");
    assert.equal(r.body.code, "UNAVAILABLE");
  });

  test("the listeners app runs a GitHub route from its YAML file", async () => {
    const dir = makeTempDir("cdktr-webhook-routes-yaml-");
    writeFileSync(
      join(dir, "listeners.yml"),
      `listeners:
  - type: webhook
    port: 0
    trigger_path: false
    routes:
      - path: /hooks/github/deploy
        flavour: github
        workflow: yamlhook
        secret_env: TEST_GITHUB_SECRET
        when: headers."x-github-event" == 'push' && body.ref == 'refs/heads/main'
        params_map:
          sha: body.after
`,
    );
    const app = await startListeners(f, join(dir, "listeners.yml"), { env: { TEST_GITHUB_SECRET: GH_SECRET } });
    const url = (app.ready.listeners as { url?: string }[])[0]?.url;
    const body = push("refs/heads/main", sha(40));
    const ok = await post(`${url}/hooks/github/deploy`, body, github("push", body));
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    const bad = await post(`${url}/hooks/github/deploy`, body, github("push", body, randomUUID(), "wrong"));
    assert.equal(bad.status, 401);
    const runs = await expectRunCount(f, "yamlhook", 1);
    assert.deepEqual(runs[0]?.params, { sha: sha(40) });
    assert.deepEqual(await app.stop("SIGTERM"), { code: 0, signal: null });
  });
});

/**
 * The webhook routes' signature checks: GitHub's `X-Hub-Signature-256` (against GitHub's own
 * published test values), GitLab's token, the generic HMAC in every algorithm and encoding; a
 * changed body, secret or signature, a malformed value of any length and a missing header are
 * refused with the reason, never thrown. Also the routes' validation and idempotency keys.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { UsageError } from "@cdktr/protocol";
import {
  GITHUB_HMAC,
  WebhookListener,
  hmacSignature,
  verifyGitHubSignature,
  verifyGitLabToken,
  verifyHmacSignature,
  webhookRoutePathProblem,
  type HmacAlgorithm,
  type HmacEncoding,
  type RouteSignatureCheck,
  type WebhookRoute,
} from "../webhook/index.js";
import { compileWebhookRoutes, routeKey } from "../webhook/webhook-route.js";

const reason = (r: RouteSignatureCheck): string | null => (r.ok ? null : r.reason);
const message = (r: RouteSignatureCheck): string => (r.ok ? "" : r.message);

describe("GitHub signatures", () => {
  // GitHub's documented test values ("Validating webhook deliveries", "Testing the webhook payload validation").
  const secret = "It's a Secret to Everybody";
  const body = Buffer.from("Hello, World!");
  const expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

  test("GitHub's published example verifies, and hmacSignature computes it", () => {
    assert.equal(hmacSignature(secret, body, GITHUB_HMAC), expected);
    assert.deepEqual(verifyGitHubSignature({ secret, signature: expected, rawBody: body }), { ok: true });
    // Independently of our helper: what node:crypto gives for the raw body.
    assert.equal(`sha256=${createHmac("sha256", secret).update(body).digest("hex")}`, expected);
    // The prefix and the hex digits are compared without regard to case.
    assert.equal(verifyGitHubSignature({ secret, signature: expected.toUpperCase(), rawBody: body }).ok, true);
  });

  test("another body, secret or signature, a malformed value of any length: bad_signature naming the header", () => {
    const flipped = expected.slice(0, -1) + (expected.endsWith("7") ? "8" : "7");
    const cases: [string, Parameters<typeof verifyGitHubSignature>[0]][] = [
      ["body", { secret, signature: expected, rawBody: Buffer.from("Hello, World?") }],
      [
        "body with a trailing newline (the raw bytes are signed)",
        { secret, signature: expected, rawBody: Buffer.from("Hello, World!\n") },
      ],
      ["secret", { secret: "It's a secret to everybody", signature: expected, rawBody: body }],
      ["one hex digit", { secret, signature: flipped, rawBody: body }],
      ["no prefix", { secret, signature: expected.slice("sha256=".length), rawBody: body }],
      ["sha1 prefix", { secret, signature: `sha1=${expected.slice(7)}`, rawBody: body }],
      ["truncated", { secret, signature: expected.slice(0, 20), rawBody: body }],
      ["too long", { secret, signature: `${expected}00`, rawBody: body }],
      ["not hex", { secret, signature: `sha256=${"z".repeat(64)}`, rawBody: body }],
      [
        "the legacy SHA-1 value",
        { secret, signature: `sha256=${createHmac("sha1", secret).update(body).digest("hex")}`, rawBody: body },
      ],
    ];
    for (const [what, input] of cases) {
      const r = verifyGitHubSignature(input);
      assert.equal(reason(r), "bad_signature", what);
      assert.match(
        message(r),
        /^X-Hub-Signature-256 does not match the body: expected sha256=<hex HMAC-SHA256 of the raw body>/,
        what,
      );
      assert.match(message(r), /Secret in GitHub/, what);
    }
    for (const signature of [undefined, "", "  "]) {
      const r = verifyGitHubSignature({ secret, signature, rawBody: body });
      assert.equal(reason(r), "missing_signature");
      assert.match(message(r), /^missing X-Hub-Signature-256 header/);
    }
  });
});

describe("GitLab tokens", () => {
  test("the token must equal the secret, compared whatever its length", () => {
    assert.deepEqual(verifyGitLabToken({ secret: "gl-s3cret", token: "gl-s3cret" }), { ok: true });
    for (const token of ["gl-s3creT", "gl-s3cret ", "gl", "x".repeat(10_000)]) {
      const r = verifyGitLabToken({ secret: "gl-s3cret", token });
      assert.equal(reason(r), "bad_signature", token.slice(0, 20));
      assert.match(message(r), /^X-Gitlab-Token does not match this route's secret/);
    }
    assert.equal(reason(verifyGitLabToken({ secret: "gl-s3cret", token: undefined })), "missing_signature");
    assert.match(message(verifyGitLabToken({ secret: "gl-s3cret", token: "" })), /missing X-Gitlab-Token header/);
  });
});

describe("generic HMAC signatures", () => {
  const secret = "hmac-s3cret";
  const body = Buffer.from('{"order":42}');

  test("every algorithm and encoding verifies what a sender computes with node:crypto, and nothing else", () => {
    for (const algorithm of ["sha256", "sha1", "sha512"] as HmacAlgorithm[]) {
      for (const encoding of ["hex", "base64"] as HmacEncoding[]) {
        const scheme = { header: "X-Signature", algorithm, encoding, prefix: `${algorithm}=` };
        const sent = `${algorithm}=${createHmac(algorithm, secret).update(body).digest(encoding)}`;
        const what = `${algorithm}/${encoding}`;
        assert.equal(hmacSignature(secret, body, scheme), sent, what);
        assert.deepEqual(verifyHmacSignature({ secret, signature: sent, rawBody: body, scheme }), { ok: true }, what);
        assert.equal(
          reason(verifyHmacSignature({ secret, signature: sent, rawBody: Buffer.from("{}"), scheme })),
          "bad_signature",
          what,
        );
        assert.equal(
          reason(verifyHmacSignature({ secret: "other", signature: sent, rawBody: body, scheme })),
          "bad_signature",
          what,
        );
        const other: HmacAlgorithm = algorithm === "sha256" ? "sha512" : "sha256";
        const wrongAlgorithm = `${algorithm}=${createHmac(other, secret).update(body).digest(encoding)}`;
        assert.equal(
          reason(verifyHmacSignature({ secret, signature: wrongAlgorithm, rawBody: body, scheme })),
          "bad_signature",
          `${what} vs ${other}`,
        );
      }
    }
  });

  test("defaults: sha256, hex, no prefix; base64 without padding or url-safe is accepted; the message gives the format", () => {
    const scheme = { header: "X-Shop-Signature" };
    const hex = createHmac("sha256", secret).update(body).digest("hex");
    assert.equal(verifyHmacSignature({ secret, signature: hex, rawBody: body, scheme }).ok, true);
    const prefixed = verifyHmacSignature({ secret, signature: `sha256=${hex}`, rawBody: body, scheme });
    assert.equal(reason(prefixed), "bad_signature", "a prefix the route does not declare");
    assert.match(
      message(prefixed),
      /^X-Shop-Signature does not match the body: expected <hex HMAC-SHA256 of the raw body>/,
    );

    const b64 = { header: "X-Sig", encoding: "base64" as const };
    const digest = createHmac("sha256", secret).update(body).digest();
    for (const sent of [
      digest.toString("base64"),
      digest.toString("base64").replace(/=+$/, ""),
      digest.toString("base64url"),
    ])
      assert.equal(verifyHmacSignature({ secret, signature: sent, rawBody: body, scheme: b64 }).ok, true, sent);
    for (const sent of ["!!!!", digest.subarray(1).toString("base64"), `${digest.toString("base64")}AAAA`])
      assert.equal(
        reason(verifyHmacSignature({ secret, signature: sent, rawBody: body, scheme: b64 })),
        "bad_signature",
        sent,
      );
    const missing = verifyHmacSignature({ secret, signature: undefined, rawBody: body, scheme: b64 });
    assert.equal(reason(missing), "missing_signature");
    assert.equal(message(missing), "missing X-Sig header: expected <base64 HMAC-SHA256 of the raw body>");
  });
});

describe("webhook routes", () => {
  const github: WebhookRoute = { path: "/hooks/github/deploy", workflow: "deploy", flavour: "github", secret: "s" };

  test("route paths: segments of unreserved characters, never the listener's own paths", () => {
    for (const ok of ["/hooks/github/deploy", "/a", "/x.y/z_~-1"]) assert.equal(webhookRoutePathProblem(ok), null, ok);
    for (const bad of [
      "",
      "/",
      "hooks",
      "/hooks/",
      "//x",
      "/a b",
      "/a?b=1",
      "/%41",
      "/a/../b",
      "/healthz",
      "/trigger",
      "/trigger/x",
      `/${"a".repeat(300)}`,
    ])
      assert.notEqual(webhookRoutePathProblem(bad), null, bad);
  });

  test("invalid routes are refused at construction, every problem named by its field", () => {
    const routes = [
      github,
      { ...github, workflow: "other" }, // duplicate path
      { path: "/gl", workflow: "not ok", flavour: "gitlab" }, // no secret, bad id
      { path: "/h", workflow: "deploy", flavour: "hmac", secret: "s" }, // no hmac scheme
      { path: "/g2", workflow: "deploy", flavour: "github", secret: "s", hmac: { header: "X-Sig" } },
      { path: "/m", workflow: "deploy", flavour: "cdktr", mapping: { paramsMap: { sha: "body.[" } } },
      { path: "/bad header", workflow: "deploy", flavour: "hmac", secret: "s", hmac: { header: "X Sig" } },
    ] as WebhookRoute[];
    assert.throws(
      () => new WebhookListener({ routes }),
      (e: unknown) => {
        assert.ok(e instanceof UsageError, String(e));
        assert.equal(e.code, "INVALID_ARGUMENT");
        for (const expected of [
          "routes[1].path: /hooks/github/deploy is already the path of another route",
          'routes[2].workflow: "not ok" is not a workflow id',
          "routes[2].secret: a gitlab route needs the secret its sender signs with",
          "routes[3].hmac: a hmac route needs {header, algorithm?, prefix?, encoding?}",
          "routes[4].hmac: only for flavour hmac",
          'routes[5].params_map.sha: "body.[" is not a JMESPath expression',
          "routes[6].path: a route path is `/` then segments",
          'routes[6].hmac.header: "X Sig" is not a header name',
        ])
          assert.ok(e.message.includes(expected), `${expected}\nin: ${e.message}`);
        return true;
      },
    );
    assert.throws(
      () => new WebhookListener({ routes: [github], workflows: ["etl"] }),
      /routes\[0\]\.workflow: deploy is not in the listener's `workflows`/,
    );
  });

  test("a cdktr route without a secret takes the listener's; other flavours keep their own", () => {
    const routes = compileWebhookRoutes(
      [
        github,
        { path: "/c", workflow: "deploy", flavour: "cdktr" },
        { path: "/c2", workflow: "deploy", flavour: "cdktr", secret: "own" },
      ],
      { listenerSecret: "listener", allow: null },
    );
    assert.deepEqual(
      [...routes.values()].map((r) => [r.path, r.secret]),
      [
        ["/hooks/github/deploy", "s"],
        ["/c", "listener"],
        ["/c2", "own"],
      ],
    );
  });

  test("the run's key: the mapping's expression, else the flavour's delivery id, else Idempotency-Key", () => {
    const h = { "x-github-delivery": "d-1", "idempotency-key": "k-1", "x-gitlab-event-uuid": "u-1" };
    assert.deepEqual(routeKey("github", h, "sha"), { id: "sha", from: "idempotency_key" });
    assert.deepEqual(routeKey("github", h, undefined), { id: "d-1", from: "X-GitHub-Delivery" });
    assert.deepEqual(routeKey("github", { "idempotency-key": "k-1" }, undefined), {
      id: "k-1",
      from: "Idempotency-Key",
    });
    assert.deepEqual(routeKey("gitlab", h, undefined), { id: "k-1", from: "Idempotency-Key" });
    assert.deepEqual(routeKey("gitlab", { "x-gitlab-event-uuid": "u-1" }, undefined), {
      id: "u-1",
      from: "X-Gitlab-Event-UUID",
    });
    assert.deepEqual(routeKey("hmac", h, undefined), { id: "k-1", from: "Idempotency-Key" });
    assert.equal(
      routeKey("hmac", { "x-github-delivery": "d-1" }, undefined),
      undefined,
      "another flavour's header is no key",
    );
    assert.equal(routeKey("github", { "x-github-delivery": " " }, undefined), undefined);
  });
});

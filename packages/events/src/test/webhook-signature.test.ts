/**
 * The webhook listener's signature helpers: a signature verifies for exactly the request it was
 * made for (method, path, idempotency key, timestamp, body), a stale timestamp, a foreign scheme
 * and the retired version 1 format do not; the worked example of docs/listeners.md is right, and
 * so is its shell recipe.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  signWebhookRequest,
  verifyWebhookSignature,
  webhookSigningString,
  webhookTriggerPath,
  type SignedRequest,
  type VerifySignatureInput,
} from "../webhook/index.js";

const body = Buffer.from('{"a":1}');
const request: SignedRequest = { method: "POST", path: "/trigger/etl", idempotencyKey: "k-1", body };

function verify(signature: string, change: Partial<VerifySignatureInput> = {}) {
  return verifyWebhookSignature({
    secret: "k",
    timestamp: "1000",
    signature,
    method: "POST",
    path: "/trigger/etl",
    idempotencyKey: "k-1",
    rawBody: body,
    nowMs: 1_000_000,
    ...change,
  });
}

describe("webhook signature helpers", () => {
  test("a signature verifies for its own request only: timestamp, method, path, key and body are covered", () => {
    const sig = signWebhookRequest("k", 1000, request);
    assert.match(sig, /^v2=[0-9a-f]{64}$/);
    assert.deepEqual(verify(sig), { ok: true, timestampMs: 1_000_000, signature: sig.slice(3) });
    const changes: [string, Partial<VerifySignatureInput>][] = [
      ["timestamp", { timestamp: "1001" }],
      ["method", { method: "PUT" }],
      ["path (another workflow)", { path: "/trigger/other" }],
      ["idempotency key", { idempotencyKey: "k-2" }],
      ["idempotency key removed", { idempotencyKey: undefined }],
      ["body", { rawBody: Buffer.from('{"a":2}') }],
      ["secret", { secret: "K" }],
    ];
    for (const [what, change] of changes) {
      const r = verify(sig, change);
      assert.equal(r.ok ? null : r.reason, "bad_signature", what);
      assert.match(r.ok ? "" : r.message, /does not match this request/, what);
    }
    // The method is compared upper-case; no key and an empty key sign the same (an empty key is refused later).
    assert.equal(verify(sig, { method: "post" }).ok, true);
    const keyless = signWebhookRequest("k", 1000, { ...request, idempotencyKey: undefined });
    assert.equal(verify(keyless, { idempotencyKey: undefined }).ok, true);
    assert.equal(verify(keyless, { idempotencyKey: "" }).ok, true);
  });

  test("a one-bit change, a stale timestamp, a foreign scheme and version 1 are refused with the reason", () => {
    const sig = signWebhookRequest("k", 1000, request);
    const flipped = sig.slice(0, -1) + (sig.endsWith("0") ? "1" : "0");
    assert.equal(((r) => (r.ok ? null : r.reason))(verify(flipped)), "bad_signature");
    const late = verify(sig, { nowMs: 1_000_000 + 301_000, toleranceMs: 300_000 });
    assert.equal(late.ok ? null : late.reason, "stale_timestamp");
    const early = verify(sig, { nowMs: 1_000_000 - 301_000, toleranceMs: 300_000 });
    assert.equal(early.ok ? null : early.reason, "stale_timestamp");
    for (const garbage of ["md5=abc", `v3=${sig.slice(3)}`, sig.slice(3), `v2=${sig.slice(4)}`]) {
      const r = verify(garbage);
      assert.equal(r.ok ? null : r.reason, "bad_signature", garbage);
    }
    const v1 = `sha256=${createHmac("sha256", "k").update(`1000.${body.toString()}`).digest("hex")}`;
    const old = verify(v1);
    assert.equal(old.ok ? null : old.reason, "old_signature_version");
    assert.match(old.ok ? "" : old.message, /retired version 1 format/);
    assert.match(old.ok ? "" : old.message, /v2=<hex HMAC-SHA256 of "v2\\n<timestamp>\\n<METHOD>\\n<path>/);
    assert.equal(((r) => (r.ok ? null : r.reason))(verify(sig, { timestamp: "12s" })), "bad_timestamp");
    assert.equal(((r) => (r.ok ? null : r.reason))(verify(sig, { timestamp: undefined })), "missing_timestamp");
    assert.equal(((r) => (r.ok ? null : r.reason))(verify("")), "missing_signature");
  });

  test("the signed string is the six documented fields joined by newlines", () => {
    assert.equal(
      webhookSigningString(1764288000, {
        method: "post",
        path: webhookTriggerPath("etl.daily"),
        idempotencyKey: "deploy-42",
        body: '{"date":"2026-11-28"}',
      }).toString("utf8"),
      'v2\n1764288000\nPOST\n/trigger/etl.daily\ndeploy-42\n{"date":"2026-11-28"}',
    );
    assert.equal(
      webhookSigningString("7", { method: "POST", path: "/trigger/x", body: "" }).toString(),
      "v2\n7\nPOST\n/trigger/x\n\n",
    );
  });

  test("docs/listeners.md: the worked example's signature is right, and its openssl recipe computes it", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../../../docs/listeners.md", import.meta.url)), "utf8");
    const example = /Worked example[^\n]*\n+```text\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(example !== undefined, "docs/listeners.md has a text block after its `Worked example` line");
    const field = (name: string): string => {
      const v = new RegExp(`^${name}:\\s+(.*)$`, "m").exec(example)?.[1];
      assert.ok(v !== undefined, `the example names its ${name}`);
      return v.trim().replace(/^'(.*)'$/, "$1");
    };
    const req = {
      method: "POST",
      path: field("path"),
      idempotencyKey: field("Idempotency-Key"),
      body: field("body"),
    };
    const expected = signWebhookRequest(field("secret"), field("X-Cdktr-Timestamp"), req);
    assert.equal(field("X-Cdktr-Signature"), expected);

    // The shell recipe of the page (its `sig=$(...)` line), run with the example's values.
    const recipe = /^sig=\$\(.*\)$/m.exec(doc)?.[0];
    assert.ok(recipe !== undefined, "docs/listeners.md has a sig=$(... | openssl ...) line");
    const r = spawnSync("bash", ["-c", `${recipe}\nprintf '%s' "$sig"`], {
      encoding: "utf8",
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        SECRET: field("secret"),
        ts: field("X-Cdktr-Timestamp"),
        route: req.path,
        key: req.idempotencyKey,
        body: req.body,
      },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(`v2=${r.stdout}`, expected);
  });
});

/**
 * The webhook listener's signature helpers: a signature verifies, a one-bit change, a stale
 * timestamp or a foreign scheme does not.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { signWebhookBody, verifyWebhookSignature } from "../webhook/index.js";

describe("webhook signature helpers", () => {
  test("verify accepts its own signature and rejects a one-bit change, in either header", () => {
    const body = Buffer.from('{"a":1}');
    const sig = signWebhookBody("k", 1000, body);
    assert.equal(
      verifyWebhookSignature({ secret: "k", timestamp: "1000", signature: sig, rawBody: body, nowMs: 1_000_000 }).ok,
      true,
    );
    assert.equal(
      verifyWebhookSignature({ secret: "k", timestamp: "1001", signature: sig, rawBody: body, nowMs: 1_000_000 }).ok,
      false,
    );
    const flipped = sig.slice(0, -1) + (sig.endsWith("0") ? "1" : "0");
    const r = verifyWebhookSignature({
      secret: "k",
      timestamp: "1000",
      signature: flipped,
      rawBody: body,
      nowMs: 1_000_000,
    });
    assert.equal(r.ok, false);
    assert.equal(r.ok ? null : r.reason, "bad_signature");
    const late = verifyWebhookSignature({
      secret: "k",
      timestamp: "1000",
      signature: sig,
      rawBody: body,
      nowMs: 1_000_000 + 301_000,
      toleranceMs: 300_000,
    });
    assert.equal(late.ok ? null : late.reason, "stale_timestamp");
    const garbage = verifyWebhookSignature({
      secret: "k",
      timestamp: "1000",
      signature: "md5=abc",
      rawBody: body,
      nowMs: 1_000_000,
    });
    assert.equal(garbage.ok ? null : garbage.reason, "bad_signature");
  });
});

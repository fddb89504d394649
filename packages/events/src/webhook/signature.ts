/**
 * HMAC-SHA256 request signatures for the webhook listener.
 *
 * The signed string is `<timestamp>.<raw body>`, where `timestamp` is the Unix time in seconds
 * sent in the `X-Cdktr-Timestamp` header; the signature header is
 * `X-Cdktr-Signature: sha256=<lowercase hex>`. A timestamp further than the tolerance from the
 * listener's clock (either way) is refused, so a captured request cannot be replayed later.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Header carrying the Unix time (seconds) the request was signed at. */
export const TIMESTAMP_HEADER = "x-cdktr-timestamp";
/** Header carrying `sha256=<hex>`. */
export const SIGNATURE_HEADER = "x-cdktr-signature";

/** Default accepted clock difference between signer and listener: 5 minutes. */
export const DEFAULT_SIGNATURE_TOLERANCE_MS = 5 * 60_000;

/**
 * The value of `X-Cdktr-Signature` for a body signed at `timestampS` (Unix seconds).
 *
 * @example
 * const ts = Math.floor(Date.now() / 1000);
 * fetch(url, { method: "POST", body, headers: {
 *   "x-cdktr-timestamp": String(ts), "x-cdktr-signature": signWebhookBody(secret, ts, body) } });
 */
export function signWebhookBody(
  secret: string | Uint8Array,
  timestampS: number | string,
  rawBody: string | Uint8Array,
): string {
  const mac = createHmac("sha256", secret);
  mac.update(`${String(timestampS)}.`);
  mac.update(rawBody);
  return `sha256=${mac.digest("hex")}`;
}

/** Why a signature was refused. */
export type SignatureFailure =
  | "missing_timestamp"
  | "bad_timestamp"
  | "stale_timestamp"
  | "missing_signature"
  | "bad_signature";

/** Outcome of {@link verifyWebhookSignature}. */
export type SignatureCheck =
  | { ok: true; timestampMs: number; signature: string }
  | { ok: false; reason: SignatureFailure; message: string };

/** Input of {@link verifyWebhookSignature}. */
export interface VerifySignatureInput {
  secret: string | Uint8Array;
  /** Raw `X-Cdktr-Timestamp` header value. */
  timestamp: string | undefined;
  /** Raw `X-Cdktr-Signature` header value. */
  signature: string | undefined;
  rawBody: Uint8Array;
  /** The listener's current time, epoch ms. */
  nowMs: number;
  /** @default 300000 (5 minutes) */
  toleranceMs?: number;
}

const HEX_SIG = /^sha256=([0-9a-fA-F]{64})$/;

/**
 * Check a webhook signature in constant time. Never throws.
 */
export function verifyWebhookSignature(input: VerifySignatureInput): SignatureCheck {
  const tolerance = input.toleranceMs ?? DEFAULT_SIGNATURE_TOLERANCE_MS;
  if (input.timestamp === undefined || input.timestamp === "") {
    return {
      ok: false,
      reason: "missing_timestamp",
      message: `missing ${TIMESTAMP_HEADER} header (Unix time in seconds)`,
    };
  }
  if (!/^\d{1,12}$/.test(input.timestamp)) {
    return {
      ok: false,
      reason: "bad_timestamp",
      message: `${TIMESTAMP_HEADER} must be the Unix time in seconds, got ${JSON.stringify(input.timestamp.slice(0, 40))}`,
    };
  }
  const timestampMs = Number(input.timestamp) * 1000;
  if (Math.abs(input.nowMs - timestampMs) > tolerance) {
    return {
      ok: false,
      reason: "stale_timestamp",
      message: `${TIMESTAMP_HEADER} is more than ${Math.round(tolerance / 1000)} s away from the listener's clock: sign each request when sending it (replays are refused)`,
    };
  }
  if (input.signature === undefined || input.signature === "") {
    return {
      ok: false,
      reason: "missing_signature",
      message: `missing ${SIGNATURE_HEADER} header (sha256=<hex HMAC of "<timestamp>.<body>">)`,
    };
  }
  const givenHex = HEX_SIG.exec(input.signature.trim())?.[1];
  const expected = Buffer.from(
    signWebhookBody(input.secret, input.timestamp, input.rawBody).slice("sha256=".length),
    "hex",
  );
  // Compare even when malformed so timing does not reveal which check failed.
  const given = givenHex !== undefined ? Buffer.from(givenHex, "hex") : Buffer.alloc(expected.length);
  const equal = timingSafeEqual(given, expected);
  if (givenHex === undefined || !equal) {
    return {
      ok: false,
      reason: "bad_signature",
      message: `${SIGNATURE_HEADER} does not match: expected sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>"> with the shared secret`,
    };
  }
  return { ok: true, timestampMs, signature: givenHex.toLowerCase() };
}

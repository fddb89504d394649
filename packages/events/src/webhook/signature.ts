/**
 * HMAC-SHA256 request signatures for the webhook listener, version 2.
 *
 * The signed string is the canonical request: six fields joined by `\n`,
 *
 * ```text
 * v2
 * <timestamp>            the X-Cdktr-Timestamp header: Unix time in seconds
 * <METHOD>               POST
 * <path>                 /trigger/<workflowId>
 * <idempotency key>      the Idempotency-Key header, empty when absent
 * <raw body>             the bytes sent, possibly empty
 * ```
 *
 * and the signature header is `X-Cdktr-Signature: v2=<lowercase hex>`. Because method, path
 * (hence the workflow) and idempotency key are signed, a signature made for one workflow does
 * not trigger another, and a captured request cannot be sent again with another key. A timestamp
 * further than the tolerance from the listener's clock (either way) is refused, so a captured
 * request cannot be replayed later; within the window the listener refuses a signature it has
 * already accepted (its replay cache, kept on disk across restarts).
 *
 * Version 1 (`sha256=<hex>` over `<timestamp>.<body>`) is refused with a message naming this
 * format.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Header carrying the Unix time (seconds) the request was signed at. */
export const TIMESTAMP_HEADER = "x-cdktr-timestamp";
/** Header carrying `v2=<hex>`. */
export const SIGNATURE_HEADER = "x-cdktr-signature";
/** Header carrying the idempotency key, which is signed too. */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
/** Version of the signature format, the prefix of the signature header value. */
export const SIGNATURE_VERSION = "v2";

/** Default accepted clock difference between signer and listener: 5 minutes. */
export const DEFAULT_SIGNATURE_TOLERANCE_MS = 5 * 60_000;

/** The request fields a signature covers, besides the timestamp. */
export interface SignedRequest {
  /** HTTP method, e.g. `POST` (compared upper-case). */
  method: string;
  /** Request path without the query string, e.g. `/trigger/etl.daily` (see {@link webhookTriggerPath}). */
  path: string;
  /** The `Idempotency-Key` header; absent and empty sign the same (an empty key is refused anyway). */
  idempotencyKey?: string | undefined;
  /** The raw request body, exactly as sent. */
  body: string | Uint8Array;
}

/** The path of the trigger route of `workflowId`: `/trigger/<workflowId>`. */
export function webhookTriggerPath(workflowId: string): string {
  return `/trigger/${encodeURIComponent(workflowId)}`;
}

/**
 * The exact bytes that are signed: `v2\n<timestamp>\n<METHOD>\n<path>\n<idempotency key>\n<body>`.
 * Exposed so that a signer in another language can be checked against it.
 */
export function webhookSigningString(timestampS: number | string, request: SignedRequest): Buffer {
  const head = [
    SIGNATURE_VERSION,
    String(timestampS),
    request.method.toUpperCase(),
    request.path,
    request.idempotencyKey ?? "",
    "",
  ].join("\n");
  const body = typeof request.body === "string" ? Buffer.from(request.body, "utf8") : Buffer.from(request.body);
  return Buffer.concat([Buffer.from(head, "utf8"), body]);
}

/**
 * The value of `X-Cdktr-Signature` for `request` signed at `timestampS` (Unix seconds).
 *
 * @example
 * const ts = Math.floor(Date.now() / 1000);
 * const path = webhookTriggerPath("etl.daily");
 * const signature = signWebhookRequest(secret, ts, { method: "POST", path, idempotencyKey: "deploy-42", body });
 * await fetch(`http://127.0.0.1:8080${path}`, { method: "POST", body, headers: {
 *   "x-cdktr-timestamp": String(ts), "x-cdktr-signature": signature, "idempotency-key": "deploy-42" } });
 */
export function signWebhookRequest(
  secret: string | Uint8Array,
  timestampS: number | string,
  request: SignedRequest,
): string {
  return `${SIGNATURE_VERSION}=${hmacHex(secret, timestampS, request)}`;
}

function hmacHex(secret: string | Uint8Array, timestampS: number | string, request: SignedRequest): string {
  return createHmac("sha256", secret).update(webhookSigningString(timestampS, request)).digest("hex");
}

/** Why a signature was refused. */
export type SignatureFailure =
  | "missing_timestamp"
  | "bad_timestamp"
  | "stale_timestamp"
  | "missing_signature"
  | "old_signature_version"
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
  /** HTTP method of the request. */
  method: string;
  /** Path of the request (the listener passes `/trigger/<workflowId>`). */
  path: string;
  /** Raw `Idempotency-Key` header value, if any. */
  idempotencyKey: string | undefined;
  rawBody: Uint8Array;
  /** The listener's current time, epoch ms. */
  nowMs: number;
  /** @default 300000 (5 minutes) */
  toleranceMs?: number;
}

const V2_SIG = /^v2=([0-9a-fA-F]{64})$/;
const V1_SIG = /^sha256=/i;

/** How a version 2 signature is made, for error messages. */
export const SIGNATURE_FORMAT =
  'v2=<hex HMAC-SHA256 of "v2\\n<timestamp>\\n<METHOD>\\n<path>\\n<Idempotency-Key or empty>\\n<raw body>">';

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
      message: `missing ${SIGNATURE_HEADER} header (${SIGNATURE_FORMAT})`,
    };
  }
  const sent = input.signature.trim();
  if (V1_SIG.test(sent)) {
    return {
      ok: false,
      reason: "old_signature_version",
      message: `${SIGNATURE_HEADER} uses the retired version 1 format (sha256=<HMAC of "<timestamp>.<body>">), which does not cover the method, path and idempotency key: send ${SIGNATURE_FORMAT} (docs/listeners.md, "Signatures")`,
    };
  }
  const givenHex = V2_SIG.exec(sent)?.[1];
  const expected = Buffer.from(
    hmacHex(input.secret, input.timestamp, {
      method: input.method,
      path: input.path,
      idempotencyKey: input.idempotencyKey,
      body: input.rawBody,
    }),
    "hex",
  );
  // Compare even when malformed so timing does not reveal which check failed.
  const given = givenHex !== undefined ? Buffer.from(givenHex, "hex") : Buffer.alloc(expected.length);
  const equal = timingSafeEqual(given, expected);
  if (givenHex === undefined || !equal) {
    return {
      ok: false,
      reason: "bad_signature",
      message: `${SIGNATURE_HEADER} does not match this request: expected ${SIGNATURE_FORMAT} with the shared secret (a signature is valid for one workflow, one idempotency key and one body)`,
    };
  }
  return { ok: true, timestampMs, signature: givenHex.toLowerCase() };
}

/**
 * The signatures of the webhook routes' flavours other than cdktr's own (see `signature.ts`):
 *
 * - **GitHub**: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.
 * - **GitLab**: `X-Gitlab-Token: <the secret itself>` (a shared token, not a signature).
 * - **Generic HMAC**: an HMAC (SHA-256, SHA-1 or SHA-512) of the raw body, hex or base64, in a
 *   header of your choice, optionally after a prefix such as `sha256=`.
 *
 * Every comparison is constant-time (`timingSafeEqual`), also when the value sent is malformed or
 * of another length, and no check throws.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Hash functions of a generic HMAC route. */
export type HmacAlgorithm = "sha256" | "sha1" | "sha512";
/** How a generic HMAC route's signature is written. */
export type HmacEncoding = "hex" | "base64";

/** Where and how a sender puts the HMAC of the raw body (flavour `hmac`). */
export interface HmacScheme {
  /** The header carrying the signature, e.g. `X-Signature` (any case). */
  header: string;
  /** @default "sha256" */
  algorithm?: HmacAlgorithm;
  /** Text before the signature in the header, e.g. `sha256=` (compared without regard to case). @default "" */
  prefix?: string;
  /** @default "hex" */
  encoding?: HmacEncoding;
}

/** GitHub's signature header. */
export const GITHUB_SIGNATURE_HEADER = "x-hub-signature-256";
/** GitHub's event name header (`push`, `pull_request`, `ping`...). */
export const GITHUB_EVENT_HEADER = "x-github-event";
/** GitHub's event id header: the same for every delivery (and redelivery) of one event. */
export const GITHUB_DELIVERY_HEADER = "x-github-delivery";
/** GitLab's secret token header. */
export const GITLAB_TOKEN_HEADER = "x-gitlab-token";
/** GitLab's event id header. */
export const GITLAB_EVENT_UUID_HEADER = "x-gitlab-event-uuid";

/** GitHub's scheme as an {@link HmacScheme}: `X-Hub-Signature-256: sha256=<hex>`. */
export const GITHUB_HMAC: Readonly<Required<HmacScheme>> = {
  header: GITHUB_SIGNATURE_HEADER,
  algorithm: "sha256",
  prefix: "sha256=",
  encoding: "hex",
};

const DIGEST_BYTES: Record<HmacAlgorithm, number> = { sha1: 20, sha256: 32, sha512: 64 };
const HEX = /^[0-9a-fA-F]+$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** Why a route's signature was refused. */
export type RouteSignatureFailure = "missing_signature" | "bad_signature";

/** Outcome of the route signature checks. */
export type RouteSignatureCheck = { ok: true } | { ok: false; reason: RouteSignatureFailure; message: string };

/** `scheme` with its defaults. */
export function hmacSchemeWithDefaults(scheme: HmacScheme): Required<HmacScheme> {
  return {
    header: scheme.header,
    algorithm: scheme.algorithm ?? "sha256",
    prefix: scheme.prefix ?? "",
    encoding: scheme.encoding ?? "hex",
  };
}

/**
 * The header value a sender using `scheme` puts on `body`: `<prefix><HMAC of the raw body>`.
 *
 * @example
 * // What GitHub sends as X-Hub-Signature-256:
 * hmacSignature(secret, body, GITHUB_HMAC); // "sha256=757107ea..."
 */
export function hmacSignature(secret: string | Uint8Array, body: string | Uint8Array, scheme: HmacScheme): string {
  const s = hmacSchemeWithDefaults(scheme);
  return `${s.prefix}${createHmac(s.algorithm, secret).update(body).digest(s.encoding)}`;
}

/** How a signature of `scheme` is made, for error messages. */
export function describeHmacScheme(scheme: HmacScheme): string {
  const s = hmacSchemeWithDefaults(scheme);
  return `${s.prefix}<${s.encoding} HMAC-${s.algorithm.toUpperCase()} of the raw body>`;
}

/** Input of {@link verifyHmacSignature}. */
export interface VerifyHmacInput {
  secret: string | Uint8Array;
  /** The raw value of the scheme's header, if any. */
  signature: string | undefined;
  rawBody: Uint8Array;
  scheme: HmacScheme;
  /** Added to the failure messages: where the sender configures the secret. */
  hint?: string;
}

/**
 * Check the HMAC of the raw body in constant time (the digest is compared even when the value
 * sent is malformed, so timing does not tell which check failed). Never throws.
 */
export function verifyHmacSignature(input: VerifyHmacInput): RouteSignatureCheck {
  const s = hmacSchemeWithDefaults(input.scheme);
  const hint = input.hint === undefined ? "" : ` (${input.hint})`;
  const format = describeHmacScheme(s);
  if (input.signature === undefined || input.signature.trim() === "") {
    return {
      ok: false,
      reason: "missing_signature",
      message: `missing ${s.header} header: expected ${format}${hint}`,
    };
  }
  const expected = createHmac(s.algorithm, input.secret).update(input.rawBody).digest();
  const given = decodeSignature(input.signature.trim(), s, DIGEST_BYTES[s.algorithm]);
  const equal = timingSafeEqual(given ?? Buffer.alloc(expected.length), expected);
  if (given === null || !equal) {
    return {
      ok: false,
      reason: "bad_signature",
      message: `${s.header} does not match the body: expected ${format} made with this route's secret; the sender's secret differs, or the body was changed on the way${hint}`,
    };
  }
  return { ok: true };
}

/** The digest bytes of `sent` (prefix removed, decoded), or null when it is not a digest of `bytes` bytes. */
function decodeSignature(sent: string, s: Required<HmacScheme>, bytes: number): Buffer | null {
  if (sent.length < s.prefix.length || sent.slice(0, s.prefix.length).toLowerCase() !== s.prefix.toLowerCase())
    return null;
  const value = sent.slice(s.prefix.length);
  if (s.encoding === "hex") {
    return value.length === bytes * 2 && HEX.test(value) ? Buffer.from(value, "hex") : null;
  }
  if (!BASE64.test(value)) return null;
  const decoded = Buffer.from(value, "base64");
  return decoded.length === bytes ? decoded : null;
}

/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, as GitHub computes it
 * (https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries). Never throws.
 */
export function verifyGitHubSignature(input: {
  secret: string | Uint8Array;
  /** The raw `X-Hub-Signature-256` value. */
  signature: string | undefined;
  rawBody: Uint8Array;
}): RouteSignatureCheck {
  return verifyHmacSignature({
    ...input,
    scheme: { ...GITHUB_HMAC, header: "X-Hub-Signature-256" },
    hint: "set this route's secret as the webhook's Secret in GitHub, Content type application/json",
  });
}

/**
 * GitLab: `X-Gitlab-Token` must equal the secret. Both are hashed (SHA-256) before the
 * constant-time comparison, so neither their content nor their length shows in the timing.
 * Never throws.
 */
export function verifyGitLabToken(input: {
  secret: string | Uint8Array;
  /** The raw `X-Gitlab-Token` value. */
  token: string | undefined;
}): RouteSignatureCheck {
  const hint = "set this route's secret as the webhook's Secret token in GitLab";
  if (input.token === undefined || input.token === "") {
    return { ok: false, reason: "missing_signature", message: `missing X-Gitlab-Token header (${hint})` };
  }
  const digest = (v: string | Uint8Array): Buffer => createHash("sha256").update(v).digest();
  if (!timingSafeEqual(digest(input.token), digest(input.secret))) {
    return {
      ok: false,
      reason: "bad_signature",
      message: `X-Gitlab-Token does not match this route's secret (${hint})`,
    };
  }
  return { ok: true };
}

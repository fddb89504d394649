/**
 * The proofs of key possession of the secure wire (docs/protocol.md section 2): a client shows it
 * holds the secret half of its enrolled CURVE key with an HMAC keyed by the X25519 shared secret
 * of its key and the principal's key, which only the two of them can compute.
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman, timingSafeEqual } from "node:crypto";
import { z85Decode } from "./z85.js";

/** Label of the `hello` proof (part of the MAC input, so a proof is never valid elsewhere). */
export const HELLO_PROOF_LABEL = "cdktr-hello/1";
/** Label of a subscription proof on the publish channel. */
export const SUBSCRIBE_PROOF_LABEL = "cdktr-subscribe/1";

const b64url = (b: Buffer): string => b.toString("base64url");

/** PKCS#8 DER of an X25519 private key, before its 32 raw bytes (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/**
 * The X25519 shared secret of our secret key and a peer's public key (both Z85): the same value
 * on both sides (`sharedSecret(a.secret, b.public) = sharedSecret(b.secret, a.public)`). The
 * private key is imported from its 32 bytes alone (PKCS#8), so no public half can disagree with it
 * (Node 26 refuses a JWK whose `x` does not match its `d`; Node 20 ignored `x`).
 */
export function sharedSecret(secretKey: string, peerPublicKey: string): Buffer {
  const privateKey = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, z85Decode(secretKey)]),
    format: "der",
    type: "pkcs8",
  });
  const peer = createPublicKey({
    key: { kty: "OKP", crv: "X25519", x: b64url(z85Decode(peerPublicKey)) },
    format: "jwk",
  });
  return diffieHellman({ privateKey, publicKey: peer });
}

/** HMAC-SHA256 (base64) of the newline-joined `parts` under `secret`. */
function mac(secret: Buffer, parts: readonly string[]): string {
  return createHmac("sha256", secret).update(parts.join("\n")).digest("base64");
}

/**
 * The `hello` proof: `base64(HMAC-SHA256(shared, "cdktr-hello/1\n" + challenge + "\n" +
 * clientPublicKey + "\n" + principalPublicKey))`.
 */
export function helloProof(
  shared: Buffer,
  challenge: string,
  clientPublicKey: string,
  principalPublicKey: string,
): string {
  return mac(shared, [HELLO_PROOF_LABEL, challenge, clientPublicKey, principalPublicKey]);
}

/** A subscription proof: `base64(HMAC-SHA256(shared, "cdktr-subscribe/1\n" + topic))`. */
export function subscribeProof(shared: Buffer, topic: string): string {
  return mac(shared, [SUBSCRIBE_PROOF_LABEL, topic]);
}

/** Compare two proofs in constant time. */
export function sameProof(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The server side of `hello` (docs/protocol.md section 2): which enrolled key is behind each
 * connection. libzmq checks the CURVE handshake and our ZAP handler admits only enrolled keys,
 * but neither tells the application which key sent a message; so a client proves possession of
 * its key once per connection, and from then on its routing id (random, secret, and carried only
 * inside the encrypted session) stands for that key.
 */
import { randomBytes } from "node:crypto";
import { CdktrError } from "../errors.js";
import type { KeyIdentity } from "./identity.js";
import type { KeyPair } from "./key-file.js";
import { helloProof, sameProof, sharedSecret } from "./proofs.js";

/** What a secure server needs to know about keys (the principal's key store answers). */
export interface ServerAuth {
  /** The server's CURVE pair (clients pin its public half). */
  keyPair: KeyPair;
  /** The identity of an enrolled, not revoked public key (Z85); undefined otherwise. */
  identify(publicKey: string): KeyIdentity | undefined;
  /** Whether `identity` may call `verb` (`hello` is always allowed). */
  permits(identity: KeyIdentity, verb: string): boolean;
}

/** Reply of `hello`: a challenge (step 1) or the proven identity (step 2). */
export interface HelloReply {
  challenge: string | null;
  identity: KeyIdentity | null;
}

/** Connections a server remembers at once; the least recently proven are forgotten first. */
const MAX_SESSIONS = 100_000;
/** Challenges outstanding at once, and how long one stays valid. */
const MAX_CHALLENGES = 10_000;
const CHALLENGE_TTL_MS = 30_000;

/** Sessions and challenges of one secure server socket. */
export class ServerSessions {
  readonly #auth: ServerAuth;
  readonly #sessions = new Map<string, string>();
  readonly #challenges = new Map<string, { challenge: string; publicKey: string; expires: number }>();

  constructor(auth: ServerAuth) {
    this.#auth = auth;
  }

  /**
   * Handle a `hello` from the connection `peer` (its routing id, hex). Step 1 (no proof) returns
   * a fresh challenge; step 2 checks the proof and binds the connection to the key.
   * @throws CdktrError UNAUTHENTICATED for an unknown or revoked key, a stale challenge or a wrong proof.
   */
  hello(
    peer: string,
    body: { publicKey: string; challenge?: string | undefined; proof?: string | undefined },
  ): HelloReply {
    const identity = this.#auth.identify(body.publicKey);
    const refuse = (why: string): CdktrError =>
      new CdktrError("UNAUTHENTICATED", `hello refused: ${why}`, { retryable: false, context: { peer } });
    if (identity === undefined)
      throw refuse("this key is not enrolled (or was revoked): `cdktr keys list` shows the keys");
    if (body.proof === undefined || body.challenge === undefined) {
      const challenge = randomBytes(32).toString("base64");
      this.#challenges.delete(peer);
      if (this.#challenges.size >= MAX_CHALLENGES) this.#dropOldest(this.#challenges);
      this.#challenges.set(peer, { challenge, publicKey: body.publicKey, expires: Date.now() + CHALLENGE_TTL_MS });
      return { challenge, identity: null };
    }
    const pending = this.#challenges.get(peer);
    this.#challenges.delete(peer);
    if (pending === undefined || pending.expires < Date.now() || pending.challenge !== body.challenge) {
      throw refuse("unknown or expired challenge: send hello without a proof first");
    }
    if (pending.publicKey !== body.publicKey) throw refuse("the key differs from the one the challenge was made for");
    const { publicKey, secretKey } = this.#auth.keyPair;
    const expected = helloProof(sharedSecret(secretKey, body.publicKey), body.challenge, body.publicKey, publicKey);
    if (!sameProof(expected, body.proof)) throw refuse("wrong proof: the client does not hold this key's secret half");
    this.#sessions.delete(peer);
    if (this.#sessions.size >= MAX_SESSIONS) this.#dropOldest(this.#sessions);
    this.#sessions.set(peer, body.publicKey);
    return { challenge: null, identity };
  }

  /** The identity behind `peer`, checked against the key store now (a revoked key has none). */
  identityOf(peer: string): KeyIdentity | undefined {
    const publicKey = this.#sessions.get(peer);
    if (publicKey === undefined) return undefined;
    const identity = this.#auth.identify(publicKey);
    if (identity === undefined) this.#sessions.delete(peer);
    return identity;
  }

  /** Whether `identity` may call `verb`. */
  permits(identity: KeyIdentity, verb: string): boolean {
    return this.#auth.permits(identity, verb);
  }

  /** Number of connections bound to a key. */
  get size(): number {
    return this.#sessions.size;
  }

  #dropOldest(map: Map<string, unknown>): void {
    const first = map.keys().next();
    if (!first.done) map.delete(first.value);
  }
}

import type { KeyIdentity, KeyRecord } from "@cdktr/protocol";

/**
 * The enrolled keys that are not revoked, in memory, by public key: `identify` is synchronous
 * because ZAP asks it on every CURVE handshake and the servers on every request (so a revoked key
 * is refused at once). Loaded from the store at start and updated after each enrolment or
 * revocation is committed.
 */
export class KeyRing {
  readonly #byPublicKey = new Map<string, KeyIdentity>();

  /** Replace the contents with `records` (revoked ones are skipped). */
  load(records: readonly KeyRecord[]): void {
    this.#byPublicKey.clear();
    for (const r of records) this.add(r);
  }

  /** Admit a key (ignored when it is revoked). */
  add(record: KeyRecord): void {
    if (record.revokedAt !== null) return;
    const { name, role, scope, workflows, publicKey } = record;
    this.#byPublicKey.set(publicKey, { name, role, scope, workflows, publicKey });
  }

  /** Stop admitting a key. */
  remove(publicKey: string): void {
    this.#byPublicKey.delete(publicKey);
  }

  /** The identity of an enrolled, not revoked public key (Z85); undefined otherwise. */
  identify(publicKey: string): KeyIdentity | undefined {
    return this.#byPublicKey.get(publicKey);
  }

  /** Keys admitted. */
  get size(): number {
    return this.#byPublicKey.size;
  }
}

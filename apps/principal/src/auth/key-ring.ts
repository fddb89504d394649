import type { KeyIdentity, KeyRecord } from "@cdktr/protocol";

/**
 * The enrolled keys that are not revoked, in memory, by public key: `identify` is synchronous
 * because ZAP asks it on every CURVE handshake and the servers on every request (so a revoked key
 * is refused at once). Loaded from the store at start and updated after each enrolment or
 * revocation is committed.
 */
export class KeyRing {
  readonly #byPublicKey = new Map<string, KeyIdentity>();
  readonly #listeners = new Set<() => void>();

  /** Replace the contents with `records` (revoked ones are skipped). */
  load(records: readonly KeyRecord[]): void {
    this.#byPublicKey.clear();
    for (const r of records) this.#set(r);
    this.#changed();
  }

  /** Admit a key (ignored when it is revoked). */
  add(record: KeyRecord): void {
    if (this.#set(record)) this.#changed();
  }

  #set(record: KeyRecord): boolean {
    if (record.revokedAt !== null) return false;
    const { name, role, scope, workflows, publicKey } = record;
    this.#byPublicKey.set(publicKey, { name, role, scope, workflows, publicKey });
    return true;
  }

  #changed(): void {
    for (const l of this.#listeners) l();
  }

  /**
   * Call `listener` synchronously after every change (before the enrolment or revocation is
   * answered); returns the function that removes it.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stop admitting a key. */
  remove(publicKey: string): void {
    if (this.#byPublicKey.delete(publicKey)) this.#changed();
  }

  /** The identity of an enrolled, not revoked public key (Z85); undefined otherwise. */
  identify(publicKey: string): KeyIdentity | undefined {
    return this.#byPublicKey.get(publicKey);
  }

  /** The admitted identities (copied to the log-ingest thread). */
  identities(): KeyIdentity[] {
    return [...this.#byPublicKey.values()];
  }

  /** Keys admitted. */
  get size(): number {
    return this.#byPublicKey.size;
  }
}

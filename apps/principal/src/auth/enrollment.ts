/**
 * The rules of key enrolment, written once for every store (the SQLite store asks them inside its
 * transaction, a PostgreSQL store will ask the same): names are unique among keys that are not
 * revoked, a public key is never enrolled twice (a revoked one stays refused), and enrolling the
 * same key again is harmless.
 */
import { CdktrError, type KeyRecord } from "@cdktr/protocol";
import type { NewKey } from "../store/store.js";

/** What enrolling does: `create` a row, `replace` the revoked row of that name, or nothing (`same`). */
export type EnrollDecision = "create" | "replace" | "same";

const sameWorkflows = (a: readonly string[] | null, b: readonly string[] | null): boolean =>
  a === null || b === null ? a === b : a.length === b.length && a.every((w, i) => w === b[i]);

/**
 * Decide how `key` is enrolled, given the key already stored under its name and the one already
 * stored with its public key (if any).
 * @throws CdktrError KEY_IN_USE when the name belongs to another key that is not revoked, or the
 * public key to another key (enrolled or revoked).
 */
export function decideEnrollment(
  byName: KeyRecord | undefined,
  byPublicKey: KeyRecord | undefined,
  key: NewKey,
): EnrollDecision {
  if (byName !== undefined && byName.revokedAt === null) {
    const same =
      byName.publicKey === key.publicKey &&
      byName.role === key.role &&
      byName.scope === key.scope &&
      sameWorkflows(byName.workflows, key.workflows);
    if (same) return "same";
    throw new CdktrError(
      "KEY_IN_USE",
      `a key named \`${key.name}\` is enrolled already (role ${byName.role}): pick another name, or revoke it first (\`cdktr keys revoke ${key.name}\`)`,
      { context: { name: key.name } },
    );
  }
  if (byPublicKey !== undefined && byPublicKey.name !== key.name) {
    throw new CdktrError(
      "KEY_IN_USE",
      `this public key ${byPublicKey.revokedAt === null ? "is enrolled" : "was enrolled and revoked"} as \`${byPublicKey.name}\`: make a new key pair for a new key`,
      { context: { name: key.name } },
    );
  }
  if (byPublicKey !== undefined && byPublicKey.revokedAt !== null) {
    throw new CdktrError(
      "KEY_IN_USE",
      `the key \`${key.name}\` with this public key was revoked: a revoked key pair is never enrolled again, make a new pair`,
      { context: { name: key.name } },
    );
  }
  return byName === undefined ? "create" : "replace";
}

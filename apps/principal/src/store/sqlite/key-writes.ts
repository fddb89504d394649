import type { KeyRecord } from "@cdktr/protocol";
import { decideEnrollment } from "../../auth/enrollment.js";
import type { EnrollKeyResult, NewKey, RevokeKeyResult } from "../store.js";
import { keyFromRow, type KeyRow } from "../rows.js";
import type { Tables } from "./tables.js";

/**
 * Writes to `keys` (public halves only), inside group-commit commands; the enrolment rules are
 * `auth/enrollment.ts`'s.
 */
export class KeyWrites {
  constructor(private readonly tables: Tables) {}

  /** @throws CdktrError KEY_IN_USE */
  enroll(now: number, key: NewKey): EnrollKeyResult {
    const t = this.tables;
    const byName = this.byName(key.name);
    const byPublicKey = t.sql("SELECT * FROM keys WHERE public_key = ?").get(key.publicKey) as KeyRow | undefined;
    const decision = decideEnrollment(
      byName === undefined ? undefined : keyFromRow(byName),
      byPublicKey === undefined ? undefined : keyFromRow(byPublicKey),
      key,
    );
    if (decision === "same" && byName !== undefined) return { key: keyFromRow(byName), created: false };
    if (decision === "replace") t.sql("DELETE FROM keys WHERE name = ?").run(key.name);
    t.sql(
      "INSERT INTO keys (name, role, scope, public_key, workflows, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
    ).run(
      key.name,
      key.role,
      key.scope,
      key.publicKey,
      key.workflows === null ? null : JSON.stringify(key.workflows),
      now,
    );
    return { key: keyFromRow(this.byName(key.name) as KeyRow), created: true };
  }

  /** Revoke by name (idempotent); null when no key has the name. */
  revoke(now: number, name: string): RevokeKeyResult | null {
    const row = this.byName(name);
    if (row === undefined) return null;
    if (row.revoked_at !== null) return { key: keyFromRow(row), revoked: false };
    this.tables.sql("UPDATE keys SET revoked_at = ? WHERE name = ?").run(now, name);
    return { key: keyFromRow({ ...row, revoked_at: now }), revoked: true };
  }

  /** Every key by name. */
  list(): KeyRecord[] {
    return (this.tables.sql("SELECT * FROM keys ORDER BY name").all() as KeyRow[]).map(keyFromRow);
  }

  private byName(name: string): KeyRow | undefined {
    return this.tables.sql("SELECT * FROM keys WHERE name = ?").get(name) as KeyRow | undefined;
  }
}

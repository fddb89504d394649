import type { KeyRecord } from "@cdktr/protocol";
import { decideEnrollment } from "../../auth/enrollment.js";
import { keyFromRow, type KeyRow } from "../rows.js";
import type { EnrollKeyResult, NewKey, RevokeKeyResult } from "../store.js";
import type { Sql } from "./sql.js";

const byName = (sql: Sql, name: string) => sql.one<KeyRow>("SELECT * FROM keys WHERE name = $1", [name]);

/**
 * Enrol a key inside a lane's command (rules of `auth/enrollment.ts`).
 * @throws CdktrError KEY_IN_USE
 */
export async function enrollPgKey(sql: Sql, now: number, key: NewKey): Promise<EnrollKeyResult> {
  const named = await byName(sql, key.name);
  const byPublicKey = await sql.one<KeyRow>("SELECT * FROM keys WHERE public_key = $1", [key.publicKey]);
  const decision = decideEnrollment(
    named === undefined ? undefined : keyFromRow(named),
    byPublicKey === undefined ? undefined : keyFromRow(byPublicKey),
    key,
  );
  if (decision === "same" && named !== undefined) return { key: keyFromRow(named), created: false };
  if (decision === "replace") await sql.run("DELETE FROM keys WHERE name = $1", [key.name]);
  const row = await sql.one<KeyRow>(
    `INSERT INTO keys (name, role, scope, public_key, workflows, created_at, revoked_at)
     VALUES ($1, $2, $3, $4, $5, $6, NULL) RETURNING *`,
    [key.name, key.role, key.scope, key.publicKey, key.workflows === null ? null : JSON.stringify(key.workflows), now],
  );
  return { key: keyFromRow(row as KeyRow), created: true };
}

/** Revoke by name (idempotent) inside a lane's command; null when no key has the name. */
export async function revokePgKey(sql: Sql, now: number, name: string): Promise<RevokeKeyResult | null> {
  const row = await byName(sql, name);
  if (row === undefined) return null;
  if (row.revoked_at !== null) return { key: keyFromRow(row), revoked: false };
  await sql.run("UPDATE keys SET revoked_at = $1 WHERE name = $2", [now, name]);
  return { key: keyFromRow({ ...row, revoked_at: now }), revoked: true };
}

/** Every key by name. */
export async function listPgKeys(sql: Sql): Promise<KeyRecord[]> {
  return (await sql.rows<KeyRow>('SELECT * FROM keys ORDER BY name COLLATE "C"')).map(keyFromRow);
}

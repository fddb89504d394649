/**
 * Helpers of the principal's integration tests that only they need: row counts straight from the
 * database file, and registering the test itself as an agent. The principal process, its files,
 * ports and clients come from `startPrincipal` in `@cdktr/test-utils`.
 */
import Database from "better-sqlite3";
import type { PrincipalClient } from "@cdktr/protocol";

/** Row counts straight from the database file (read-only connection). */
export function countRows(dbPath: string, table: string, where = ""): number {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table} ${where}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** A registered fake agent driving the real protocol with a `PrincipalClient`. */
export async function registerAgent(
  api: PrincipalClient,
  agentId: string,
  labels: string[] = [],
  capacity = 4,
): Promise<void> {
  await api.registerAgent({ agentId, host: "test", capacity, labels, version: "test", runningRuns: [] });
}

import { CdktrError } from "@cdktr/protocol";
import type { RunRow } from "../rows.js";
import type { Tables } from "./tables.js";

/**
 * The first run of an idempotency key in `scope` (the caller key's scope, `""` without
 * authentication), or null when the key is new there (a key whose run was deleted is dropped and
 * counts as new). Inside a command.
 * @throws CdktrError IDEMPOTENCY_CONFLICT when the key was used for another workflow or other
 * params (`requestParams` as {@link canonicalJson}).
 */
export function findIdempotentRun(
  tables: Tables,
  scope: string,
  key: string,
  workflowId: string,
  requestParams: string,
): RunRow | null {
  const known = tables.sql("SELECT * FROM idempotency_keys WHERE scope = ? AND key = ?").get(scope, key) as
    | { run_id: string; workflow_id: string; params: string }
    | undefined;
  if (known === undefined) return null;
  const first = tables.runRow(known.run_id);
  if (first === undefined) {
    tables.sql("DELETE FROM idempotency_keys WHERE scope = ? AND key = ?").run(scope, key);
    return null;
  }
  if (known.workflow_id !== workflowId || known.params !== requestParams) {
    throw new CdktrError(
      "IDEMPOTENCY_CONFLICT",
      `idempotency key \`${key}\` was already used for run ${known.run_id} of workflow \`${known.workflow_id}\` with params ${known.params}: use a new key for a different trigger`,
      { context: { idempotencyKey: key, runId: known.run_id } },
    );
  }
  return first;
}

/** Record the key of a new run in its scope (`requestParams` as {@link canonicalJson}). Inside a command. */
export function rememberIdempotencyKey(
  tables: Tables,
  now: number,
  k: { scope: string; key: string; runId: string; workflowId: string; requestParams: string },
): void {
  tables
    .sql("INSERT INTO idempotency_keys (scope, key, run_id, workflow_id, params, created_at) VALUES (?, ?, ?, ?, ?, ?)")
    .run(k.scope, k.key, k.runId, k.workflowId, k.requestParams, now);
}

import type { LogLine } from "@cdktr/protocol";
import { permissionDenied, runNotFound } from "../../errors.js";
import { checkLeaseClaim } from "../../runs/state-machine.js";
import { levelNumber } from "../rows.js";
import type { InsertLogsResult, LogClaim } from "../store.js";
import type { Sql } from "./sql.js";

/**
 * Check a batch against its claim before anything is stored: every run it names exists, is
 * leased to the claim's key and comes with its token, and every line names its run's workflow.
 * @throws CdktrError RUN_NOT_FOUND, PERMISSION_DENIED, STALE_ASSIGNMENT
 */
async function checkLogClaim(sql: Sql, lines: readonly LogLine[], claim: LogClaim): Promise<void> {
  const workflows = new Map<string, string>();
  for (const l of lines) {
    let workflowId = workflows.get(l.runId);
    if (workflowId === undefined) {
      const row = await sql.one<{
        run_id: string;
        token: string | null;
        lease_key: string | null;
        workflow_id: string;
      }>("SELECT run_id, token, lease_key, workflow_id FROM runs WHERE run_id = $1", [l.runId]);
      if (row === undefined) throw runNotFound(l.runId);
      checkLeaseClaim(
        { runId: row.run_id, token: row.token, leaseKey: row.lease_key },
        { keyName: claim.keyName, token: Object.hasOwn(claim.tokens, l.runId) ? claim.tokens[l.runId] : undefined },
      );
      workflowId = row.workflow_id;
      workflows.set(l.runId, workflowId);
    }
    if (l.workflowId !== workflowId) {
      throw permissionDenied(
        `log line of run ${l.runId} names workflow \`${l.workflowId}\`, but the run is of \`${workflowId}\``,
        { runId: l.runId },
      );
    }
  }
}

const lineKey = (runId: string, taskId: string, seq: number): string => JSON.stringify([runId, taskId, seq]);

/**
 * Store log lines idempotently on (run, task, seq) with one statement per batch
 * (`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`): a line resent after a lost ack
 * is counted as a duplicate, not stored twice. With a claim, the whole batch is refused unless
 * the caller's key holds the lease of every run in it. Inside a bulk-lane command.
 */
export async function insertPgLogLines(
  sql: Sql,
  lines: readonly LogLine[],
  claim: LogClaim | null,
): Promise<InsertLogsResult> {
  if (claim !== null) await checkLogClaim(sql, lines, claim);
  if (lines.length === 0) return { stored: 0, duplicates: 0, inserted: [] };
  const rows = await sql.rows<{ run_id: string; task_id: string; seq: number }>(
    `INSERT INTO logs (run_id, workflow_id, task_id, seq, time, level, stream, line)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::text[], $8::text[])
     ON CONFLICT (run_id, task_id, seq) DO NOTHING
     RETURNING run_id, task_id, seq`,
    [
      lines.map((l) => l.runId),
      lines.map((l) => l.workflowId),
      lines.map((l) => l.taskId),
      lines.map((l) => l.seq),
      lines.map((l) => Date.parse(l.time)),
      lines.map((l) => levelNumber(l.level)),
      lines.map((l) => l.stream),
      // PostgreSQL text cannot hold NUL: stored as U+FFFD (SQLite keeps it).
      lines.map((l) => l.line.replaceAll("\u0000", "\uFFFD")),
    ],
  );
  const fresh = new Set(rows.map((r) => lineKey(r.run_id, r.task_id, r.seq)));
  const inserted: LogLine[] = [];
  for (const l of lines) {
    const k = lineKey(l.runId, l.taskId, l.seq);
    // The first of two equal lines in one batch is the stored one.
    if (fresh.delete(k)) inserted.push(l);
  }
  return { stored: inserted.length, duplicates: lines.length - inserted.length, inserted };
}

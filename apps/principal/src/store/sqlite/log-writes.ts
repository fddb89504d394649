import type { LogLine } from "@cdktr/protocol";
import { permissionDenied } from "../../errors.js";
import { checkLeaseClaim } from "../../runs/state-machine.js";
import type { InsertLogsResult, LogClaim } from "../store.js";
import { levelNumber } from "./rows.js";
import type { Tables } from "./tables.js";

/**
 * Check a batch against its claim before anything is stored: every run it names exists, is
 * leased to the claim's key and comes with its token, and every line names its run's workflow.
 * Inside a group-commit command.
 * @throws CdktrError RUN_NOT_FOUND, PERMISSION_DENIED, STALE_ASSIGNMENT
 */
function checkLogClaim(tables: Tables, lines: readonly LogLine[], claim: LogClaim): void {
  const workflows = new Map<string, string>();
  for (const l of lines) {
    let workflowId = workflows.get(l.runId);
    if (workflowId === undefined) {
      const row = tables.requireRun(l.runId);
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
        {
          runId: l.runId,
        },
      );
    }
  }
}

/**
 * Store log lines idempotently on (run, task, seq): a line resent after a lost ack is counted as
 * a duplicate, not stored twice. With a claim (authentication on), the whole batch is refused
 * unless the caller's key holds the lease of every run in it. Inside a group-commit command.
 */
export function insertLogLines(tables: Tables, lines: readonly LogLine[], claim: LogClaim | null): InsertLogsResult {
  if (claim !== null) checkLogClaim(tables, lines, claim);
  const ins = tables.sql(
    "INSERT OR IGNORE INTO logs (run_id, workflow_id, task_id, seq, time, level, stream, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const inserted: LogLine[] = [];
  let duplicates = 0;
  for (const l of lines) {
    const res = ins.run(
      l.runId,
      l.workflowId,
      l.taskId,
      l.seq,
      Date.parse(l.time),
      levelNumber(l.level),
      l.stream,
      l.line,
    );
    if (res.changes === 1) inserted.push(l);
    else duplicates++;
  }
  return { stored: inserted.length, duplicates, inserted };
}

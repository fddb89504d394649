import type { LogLine } from "@cdktr/protocol";
import { permissionDenied } from "../../errors.js";
import { checkLeaseClaim } from "../../runs/state-machine.js";
import type { InsertLogsResult, LogClaim } from "../store.js";
import { MORE_PIECES, type PieceStep } from "./group-commit.js";
import { levelNumber } from "../rows.js";
import type { Tables } from "./tables.js";

/**
 * Check a batch against its claim before anything of it is stored: every run it names exists, is
 * leased to the claim's key and comes with its token, and every line names its run's workflow.
 * Inside a group-commit command. Returns the batch's run ids, for {@link checkLeases}.
 * @throws CdktrError RUN_NOT_FOUND, PERMISSION_DENIED, STALE_ASSIGNMENT
 */
function checkLogClaim(tables: Tables, lines: readonly LogLine[], claim: LogClaim): string[] {
  const workflows = new Map<string, string>();
  for (const l of lines) {
    let workflowId = workflows.get(l.runId);
    if (workflowId === undefined) {
      workflowId = checkLease(tables, l.runId, claim);
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
  return [...workflows.keys()];
}

/**
 * The run exists, is leased to the claim's key and the claim has its token; returns its workflow.
 * @throws CdktrError RUN_NOT_FOUND, PERMISSION_DENIED, STALE_ASSIGNMENT
 */
function checkLease(tables: Tables, runId: string, claim: LogClaim): string {
  const row = tables.requireRun(runId);
  checkLeaseClaim(
    { runId: row.run_id, token: row.token, leaseKey: row.lease_key },
    { keyName: claim.keyName, token: Object.hasOwn(claim.tokens, runId) ? claim.tokens[runId] : undefined },
  );
  return row.workflow_id;
}

/** Lines between two looks at the clock while a piece inserts. */
const LINES_PER_CLOCK_CHECK = 16;

/**
 * Store log lines idempotently on (run, task, seq), in pieces ({@link GroupCommit.commandInPieces}
 * of the log database's group commit): each call of the returned step inserts lines while its
 * flush has time, so a 2,000-line batch never holds its thread for more than one short piece. A
 * line resent after a lost ack is counted as a duplicate, not stored twice. With a claim
 * (authentication on), the whole batch is checked against the runs in `leases` (a connection to
 * the main file: the log database has no runs) before its first line is stored, and the leases of
 * its runs again before every later piece: a lease lost in the middle of a batch refuses the rest
 * of it (the lines stored before were sent under the lease). The check reads the runs as last
 * committed, outside the inserts' transaction (two files); what it checks cannot change under
 * it in a way that matters: a run's token changes only when the run is assigned again before an
 * agent confirmed it, that is before any of its tasks wrote a line.
 */
export function insertLogLinesInPieces(
  leases: Tables,
  logs: Tables,
  lines: readonly LogLine[],
  claim: LogClaim | null,
): PieceStep<InsertLogsResult> {
  const inserted: LogLine[] = [];
  let duplicates = 0;
  let next = 0;
  let runIds: string[] | null = null;
  return (_now, inTime) => {
    if (claim !== null) {
      if (runIds === null) runIds = checkLogClaim(leases, lines, claim);
      else for (const runId of runIds) checkLease(leases, runId, claim);
    }
    const ins = logs.sql(
      "INSERT OR IGNORE INTO logs (run_id, workflow_id, task_id, seq, time, level, stream, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const first = next;
    while (next < lines.length && (next === first || (next - first) % LINES_PER_CLOCK_CHECK !== 0 || inTime())) {
      const l = lines[next] as LogLine;
      next++;
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
    if (next < lines.length) return MORE_PIECES;
    return { stored: inserted.length, duplicates, inserted };
  };
}

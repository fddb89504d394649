import type { LogLine } from "@cdktr/protocol";
import type { InsertLogsResult } from "../store.js";
import { levelNumber } from "./rows.js";
import type { Tables } from "./tables.js";

/**
 * Store log lines idempotently on (run, task, seq): a line resent after a lost ack is counted as
 * a duplicate, not stored twice. Inside a group-commit command.
 */
export function insertLogLines(tables: Tables, lines: readonly LogLine[]): InsertLogsResult {
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

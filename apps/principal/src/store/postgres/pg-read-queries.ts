/**
 * The paged reads (run listings, log queries) on PostgreSQL, answered on the read pool with the
 * same filters, order, page sizes and byte bound as the SQLite store's `read-queries.ts`. Every
 * value is a bound parameter; cursors are opaque base64url JSON of the last row's sort key.
 */
import type { ApiVerbs, ParsedRequestOf, ReplyOf } from "@cdktr/protocol";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { DEFAULT_LOG_PAGE, DEFAULT_RUN_PAGE, MAX_LOG_PAGE_BYTES, type RunListQuery } from "../rows.js";
import { levelNumber, logFromRow, runFromRow, type LogRow, type RunRow } from "../rows.js";
import type { Sql } from "./sql.js";

/** A WHERE clause under construction: `add` binds each value as the next `$n`. */
class Where {
  readonly parts: string[] = [];
  readonly args: unknown[] = [];

  /** `clause` with `?` standing for each of `values`, in order. */
  add(clause: string, ...values: unknown[]): void {
    let text = clause;
    for (const v of values) {
      this.args.push(v);
      text = text.replace("?", `$${this.args.length}`);
    }
    this.parts.push(text);
  }

  /** The clause, empty without conditions. */
  get sql(): string {
    return this.parts.length > 0 ? `WHERE ${this.parts.join(" AND ")}` : "";
  }
}

/** Answer `listRuns`. Newest first unless `order: "asc"`. */
export async function listPgRuns(sql: Sql, req: RunListQuery): Promise<ReplyOf<ApiVerbs, "listRuns">> {
  const w = new Where();
  if (req.triggeredBy !== undefined) w.add("triggered_by = ?", req.triggeredBy);
  if (req.workflowId !== undefined) w.add("workflow_id = ?", req.workflowId);
  if (req.status !== undefined && req.status.length > 0) w.add("status = ANY(?)", req.status);
  if (req.source !== undefined) w.add("source = ?", req.source);
  if (req.since !== undefined) w.add("created_at >= ?", Date.parse(req.since));
  if (req.until !== undefined) w.add("created_at < ?", Date.parse(req.until));
  const desc = (req.order ?? "desc") === "desc";
  const cmp = desc ? "<" : ">";
  const dir = desc ? "DESC" : "ASC";
  const scheduled = req.scheduledOnly === true;
  const finished = req.finishedSince !== undefined;
  if (scheduled) w.add("scheduled_for IS NOT NULL");
  if (req.finishedSince !== undefined) w.add("finished_at >= ?", Date.parse(req.finishedSince));
  // Pages of the scheduled and finished orders go by (time, run id); the others by run id.
  const timeColumn = scheduled ? "scheduled_for" : finished ? "finished_at" : null;
  if (req.cursor !== undefined) {
    if (timeColumn !== null) {
      const [t, id] = decodeCursor(req.cursor, ["number", "string"]);
      w.add(`(${timeColumn}, run_id COLLATE "C") ${cmp} (?, ? COLLATE "C")`, t, id);
    } else {
      const [id] = decodeCursor(req.cursor, ["string"]);
      w.add(`run_id ${cmp} ?`, id);
    }
  }
  const limit = req.limit ?? DEFAULT_RUN_PAGE;
  // COLLATE "C": run ids sort bytewise, as in SQLite, whatever the database's collation.
  const order = timeColumn !== null ? `${timeColumn} ${dir}, run_id COLLATE "C" ${dir}` : `run_id COLLATE "C" ${dir}`;
  const rows = await sql.rows<RunRow>(`SELECT * FROM runs ${w.sql} ORDER BY ${order} LIMIT $${w.args.length + 1}`, [
    ...w.args,
    limit + 1,
  ]);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const nextCursor =
    rows.length > limit && last !== undefined
      ? encodeCursor(
          timeColumn !== null ? [(scheduled ? last.scheduled_for : last.finished_at) ?? 0, last.run_id] : [last.run_id],
        )
      : null;
  return { runs: page.map(runFromRow), nextCursor };
}

/** Answer `queryLogs`. Oldest first unless `order: "desc"`. */
export async function queryPgLogs(
  sql: Sql,
  req: ParsedRequestOf<ApiVerbs, "queryLogs">,
): Promise<ReplyOf<ApiVerbs, "queryLogs">> {
  const w = new Where();
  if (req.runId !== undefined) w.add("run_id = ?", req.runId);
  if (req.workflowId !== undefined) w.add("workflow_id = ?", req.workflowId);
  if (req.taskId !== undefined) w.add("task_id = ?", req.taskId);
  if (req.since !== undefined) w.add("time >= ?", Date.parse(req.since));
  if (req.until !== undefined) w.add("time < ?", Date.parse(req.until));
  if (req.level !== undefined && req.level !== "debug") w.add("level >= ?", levelNumber(req.level));
  const desc = req.order === "desc";
  const dir = desc ? "DESC" : "ASC";
  if (req.cursor !== undefined) {
    const [t, id] = decodeCursor(req.cursor, ["number", "number"]);
    w.add(`(time, id) ${desc ? "<" : ">"} (?, ?)`, t, id);
  }
  const limit = req.limit ?? DEFAULT_LOG_PAGE;
  const rows = await sql.rows<LogRow>(
    `SELECT * FROM logs ${w.sql} ORDER BY time ${dir}, id ${dir} LIMIT $${w.args.length + 1}`,
    [...w.args, limit + 1],
  );
  // Pages are also bounded in bytes, so a page of very long lines still fits in one reply.
  let bytes = 0;
  let n = 0;
  while (n < Math.min(rows.length, limit)) {
    bytes += (rows[n]?.line.length ?? 0) * 3 + 256;
    if (n > 0 && bytes > MAX_LOG_PAGE_BYTES) break;
    n++;
  }
  const page = rows.slice(0, n);
  const last = page[page.length - 1];
  const nextCursor = rows.length > n && last !== undefined ? encodeCursor([last.time, last.id]) : null;
  return { lines: page.map(logFromRow), nextCursor };
}

/**
 * The heavy, paged reads (run listings, log queries). Pure functions over a connection so they
 * run in the read worker (`read-worker.ts`) with its own read-only WAL connection. Every value
 * is a bound parameter; cursors are opaque base64url JSON of the last row's sort key.
 */
import type Database from "better-sqlite3";
import type { ApiVerbs, ParsedRequestOf, ReplyOf } from "@cdktr/protocol";
import { decodeCursor, encodeCursor } from "../cursor.js";
import {
  DEFAULT_LOG_PAGE,
  DEFAULT_RUN_PAGE,
  MAX_LOG_PAGE_BYTES,
  levelNumber,
  logFromRow,
  runFromRow,
  type LogRow,
  type RunListQuery,
  type RunRow,
} from "../rows.js";

/** The reads a read worker answers. */
export type ReadKind = "listRuns" | "queryLogs";

/** A message to a read worker. */
export interface ReadRequest {
  id: number;
  kind: ReadKind;
  req: unknown;
}

/** A read worker's answer to the {@link ReadRequest} with the same `id`. */
export type ReadReply =
  | { id: number; ok: true; value: unknown; badRequest?: undefined; message?: undefined }
  | { id: number; ok: false; value?: undefined; badRequest: boolean; message: string };

/** Answer `listRuns`. Newest first unless `order: "asc"`. */
export function listRuns(db: Database.Database, req: RunListQuery): ReplyOf<ApiVerbs, "listRuns"> {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (req.triggeredBy !== undefined) {
    where.push("triggered_by = ?");
    args.push(req.triggeredBy);
  }
  if (req.workflowId !== undefined) {
    where.push("workflow_id = ?");
    args.push(req.workflowId);
  }
  if (req.status !== undefined && req.status.length > 0) {
    // In the finished or scheduled order, `+status` keeps SQLite off the status index (it would
    // then sort every run of those states instead of walking the time index).
    const column = req.finishedSince !== undefined || req.scheduledOnly === true ? "+status" : "status";
    where.push(`${column} IN (${req.status.map(() => "?").join(", ")})`);
    args.push(...req.status);
  }
  if (req.source !== undefined) {
    where.push("source = ?");
    args.push(req.source);
  }
  if (req.since !== undefined) {
    where.push("created_at >= ?");
    args.push(Date.parse(req.since));
  }
  if (req.until !== undefined) {
    where.push("created_at < ?");
    args.push(Date.parse(req.until));
  }
  const desc = (req.order ?? "desc") === "desc";
  const cmp = desc ? "<" : ">";
  const dir = desc ? "DESC" : "ASC";
  const scheduled = req.scheduledOnly === true;
  const finished = req.finishedSince !== undefined;
  if (scheduled) where.push("scheduled_for IS NOT NULL");
  if (req.finishedSince !== undefined) {
    where.push("finished_at >= ?");
    args.push(Date.parse(req.finishedSince));
  }
  // Pages of the scheduled and finished orders go by (time, run id); the others by run id.
  const timeColumn = scheduled ? "scheduled_for" : finished ? "finished_at" : null;
  if (req.cursor !== undefined) {
    if (timeColumn !== null) {
      const [t, id] = decodeCursor(req.cursor, ["number", "string"]);
      where.push(`(${timeColumn}, run_id) ${cmp} (?, ?)`);
      args.push(t as number, id as string);
    } else {
      const [id] = decodeCursor(req.cursor, ["string"]);
      where.push(`run_id ${cmp} ?`);
      args.push(id as string);
    }
  }
  const limit = req.limit ?? DEFAULT_RUN_PAGE;
  const order = timeColumn !== null ? `${timeColumn} ${dir}, run_id ${dir}` : `run_id ${dir}`;
  const sql = `SELECT * FROM runs ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY ${order} LIMIT ?`;
  const rows = db.prepare(sql).all(...args, limit + 1) as RunRow[];
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
export function queryLogs(
  db: Database.Database,
  req: ParsedRequestOf<ApiVerbs, "queryLogs">,
): ReplyOf<ApiVerbs, "queryLogs"> {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (req.runId !== undefined) {
    where.push("run_id = ?");
    args.push(req.runId);
  }
  if (req.workflowId !== undefined) {
    where.push("workflow_id = ?");
    args.push(req.workflowId);
  }
  if (req.taskId !== undefined) {
    where.push("task_id = ?");
    args.push(req.taskId);
  }
  if (req.since !== undefined) {
    where.push("time >= ?");
    args.push(Date.parse(req.since));
  }
  if (req.until !== undefined) {
    where.push("time < ?");
    args.push(Date.parse(req.until));
  }
  if (req.level !== undefined && req.level !== "debug") {
    where.push("level >= ?");
    args.push(levelNumber(req.level));
  }
  const desc = req.order === "desc";
  const dir = desc ? "DESC" : "ASC";
  if (req.cursor !== undefined) {
    const [t, id] = decodeCursor(req.cursor, ["number", "number"]);
    where.push(`(time, id) ${desc ? "<" : ">"} (?, ?)`);
    args.push(t as number, id as number);
  }
  const limit = req.limit ?? DEFAULT_LOG_PAGE;
  const sql = `SELECT * FROM logs ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY time ${dir}, id ${dir} LIMIT ?`;
  const rows = db.prepare(sql).all(...args, limit + 1) as LogRow[];
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

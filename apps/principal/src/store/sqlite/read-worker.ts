/**
 * Worker thread answering the heavy reads with its own read-only WAL connection, so a log query
 * scanning millions of rows never delays pings, heartbeats or acks on the main event loop.
 * Messages: `{ id, kind: "listRuns" | "queryLogs", req }` -> `{ id, ok: true, value }` or
 * `{ id, ok: false, badRequest, message }`.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { BadCursorError, listRuns, queryLogs } from "./read-queries.js";

interface WorkerRequest {
  id: number;
  kind: "listRuns" | "queryLogs";
  req: never;
}

const { dbPath } = workerData as { dbPath: string };
const db = new Database(dbPath, { readonly: true, fileMustExist: true });
db.pragma("busy_timeout = 5000");

parentPort?.on("message", (msg: WorkerRequest | { kind: "close" }) => {
  if (msg.kind === "close") {
    db.close();
    parentPort?.close();
    return;
  }
  try {
    const value = msg.kind === "listRuns" ? listRuns(db, msg.req) : queryLogs(db, msg.req);
    parentPort?.postMessage({ id: msg.id, ok: true, value });
  } catch (e) {
    parentPort?.postMessage({
      id: msg.id,
      ok: false,
      badRequest: e instanceof BadCursorError,
      message: e instanceof Error ? e.message : String(e),
    });
  }
});

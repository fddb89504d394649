/**
 * Worker thread answering the heavy reads with its own read-only WAL connections (one per file), so a log query
 * scanning millions of rows never delays pings, heartbeats or acks on the main event loop.
 * Messages: {@link ReadRequest} `{ id, kind: "listRuns" | "queryLogs", req }` -> {@link ReadReply}
 * `{ id, ok: true, value }` or `{ id, ok: false, badRequest, message }`. Started by `ReadPool`.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { errorMessage } from "@cdktr/protocol";
import { isBadCursorError } from "../../errors.js";
import { listRuns, queryLogs, type ReadReply, type ReadRequest } from "./read-queries.js";

const { dbPath, logsPath } = workerData as { dbPath: string; logsPath: string };
const db = new Database(dbPath, { readonly: true, fileMustExist: true });
db.pragma("busy_timeout = 5000");
const logsDb = new Database(logsPath, { readonly: true, fileMustExist: true });
logsDb.pragma("busy_timeout = 5000");

parentPort?.on("message", (msg: ReadRequest | { kind: "close" }) => {
  if (msg.kind === "close") {
    db.close();
    logsDb.close();
    parentPort?.close();
    return;
  }
  let reply: ReadReply;
  try {
    const value = msg.kind === "listRuns" ? listRuns(db, msg.req as never) : queryLogs(logsDb, msg.req as never);
    reply = { id: msg.id, ok: true, value };
  } catch (e) {
    reply = { id: msg.id, ok: false, badRequest: isBadCursorError(e), message: errorMessage(e) };
  }
  parentPort?.postMessage(reply);
});

/**
 * Baseline server for the trigger-acceptance scenario, run as its own process like the principal.
 *
 *   node echo-server.js echo            bare ROUTER echo: reply at once with a reply-sized body
 *   node echo-server.js curve           the same over CURVE (a fresh key pair; its public key in
 *                                       the ready line): the encrypted wire's floor
 *   node echo-server.js sqlite <db>     the same, plus a SQLite group commit per batch
 *                                       (WAL, synchronous=FULL, one transaction per batch of
 *                                       whatever arrived while the previous commit ran)
 *
 * Prints `{"message":"ready","endpoint":...}` once bound. Same socket options as RpcServer.
 */
import Database from "better-sqlite3";
import { curveKeyPair, Router } from "zeromq";

const mode = process.argv[2] ?? "echo";
const dbPath = process.argv[3];
const keys = mode === "curve" ? curveKeyPair() : null;

const socket = new Router({
  ...(keys === null ? {} : { curveServer: true, curveSecretKey: keys.secretKey }),
  linger: 0,
  mandatory: true,
  sendTimeout: 0,
  receiveHighWaterMark: 10_000,
  sendHighWaterMark: 10_000,
});

// A reply of the size of a runWorkflow reply.
const REPLY_BODY = JSON.stringify({
  runId: "01936f0e-7c8a-7b3e-9d2f-3a4b5c6d7e8f",
  duplicate: false,
  skipped: false,
  status: "QUEUED",
});

let sending = false;
const outbox: Buffer[][] = [];
async function pump(): Promise<void> {
  sending = true;
  try {
    for (let item = outbox.shift(); item !== undefined; item = outbox.shift()) {
      await socket.send(item);
    }
  } finally {
    sending = false;
  }
}
function reply(frames: Buffer[]): void {
  const routing = frames[0];
  const reqId = frames[2];
  if (routing === undefined || reqId === undefined) return;
  outbox.push([routing, Buffer.from("cdktr/1"), reqId, Buffer.from("ok"), Buffer.from(REPLY_BODY)]);
  if (!sending) void pump();
}

let insert: ((batch: Buffer[][]) => void) | undefined;
if (mode === "sqlite") {
  if (dbPath === undefined) throw new Error("usage: echo-server.js sqlite <db path>");
  const db = new Database(dbPath);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL)",
  );
  const stmt = db.prepare("INSERT INTO runs (request_id, body, created_at) VALUES (?, ?, ?)");
  insert = db.transaction((batch: Buffer[][]) => {
    const now = new Date().toISOString();
    for (const f of batch) stmt.run(f[2]?.toString() ?? "", f[5]?.toString() ?? "", now);
  });
}

let pending: Buffer[][] = [];
let flushScheduled = false;
function flush(): void {
  flushScheduled = false;
  const batch = pending;
  pending = [];
  insert?.(batch);
  for (const f of batch) reply(f);
}

async function main(): Promise<void> {
  await socket.bind("tcp://127.0.0.1:*");
  process.stdout.write(
    `${JSON.stringify({ message: "ready", endpoint: socket.lastEndpoint, mode, serverKey: keys?.publicKey ?? null })}\n`,
  );
  const stop = (): void => {
    socket.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  for (;;) {
    const frames = await socket.receive();
    if (insert === undefined) {
      reply(frames);
      continue;
    }
    pending.push(frames);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
}

void main();

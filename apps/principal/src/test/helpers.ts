/**
 * Helpers of the principal's integration tests that only they need: row counts straight from the
 * database file, and registering the test itself as an agent. The principal process, its files,
 * ports and clients come from `startPrincipal` in `@cdktr/test-utils`.
 */
import Database from "better-sqlite3";
import { Dealer } from "zeromq";
import type { ClientKey, PrincipalClient } from "@cdktr/protocol";
import { logDatabasePath } from "../store/sqlite/log-database.js";

/** Row counts straight from the database file (`logs`: from the log database beside it), read-only. */
export function countRows(dbPath: string, table: string, where = ""): number {
  const db = new Database(table === "logs" ? logDatabasePath(dbPath) : dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table} ${where}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** A registered fake agent driving the real protocol with a `PrincipalClient`. */
export async function registerAgent(
  api: PrincipalClient,
  agentId: string,
  labels: string[] = [],
  capacity = 4,
): Promise<void> {
  await api.registerAgent({ agentId, host: "test", capacity, labels, version: "test", runningRuns: [] });
}

/**
 * A raw DEALER that speaks frames by hand: CURVE to the principal's key with `key` (an enrolled
 * key gets past ZAP; without `hello` only framing and validation errors come back), plaintext
 * with null.
 */
export function rawDealer(key: ClientKey | null, options: { receiveTimeout?: number } = {}): Dealer {
  // A refused CURVE handshake terminates the connection's pipe, and a DEALER with no pipe waits
  // forever to send: the send timeout turns that into an error the caller can see.
  const d = new Dealer({ linger: 0, sendTimeout: 2000, receiveTimeout: options.receiveTimeout ?? 10_000 });
  if (key !== null) {
    d.curveServerKey = key.principalPublicKey;
    d.curvePublicKey = key.publicKey;
    d.curveSecretKey = key.secretKey;
  }
  return d;
}

/** A reply read by hand: the request id frame as sent back, the status and the parsed body. */
export interface RawReply {
  id: Buffer;
  status: string;
  body: { code?: string; message?: string } & Record<string, unknown>;
}

/**
 * Send `frames` on a raw dealer and read one reply; "no reply" when none comes within the
 * dealer's receive timeout (or the send times out: a refused handshake leaves no pipe).
 */
export async function rawRequest(d: Dealer, frames: (string | Buffer)[]): Promise<RawReply | "no reply"> {
  try {
    await d.send(frames);
    const [, id, status, body] = await d.receive();
    if (id === undefined) return "no reply";
    return { id, status: String(status), body: JSON.parse(String(body)) as RawReply["body"] };
  } catch {
    return "no reply";
  }
}

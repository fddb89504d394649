import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Dealer } from "zeromq";
import { cleanup, startPrincipal } from "@cdktr/test-utils";
import { countRows, rawDealer } from "./helpers.js";

afterEach(cleanup);

const TABLES = ["runs", "task_runs", "status_history", "logs", "idempotency_keys", "workflow_snapshots"];

/** Deterministic PRNG so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function garbage(i: number, rnd: () => number): Buffer[] {
  const id = `g${i}`;
  const far = String(Date.now() + 60_000);
  const pick = Math.floor(rnd() * 9);
  switch (pick) {
    case 0: // random binary frames
      return Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => randomBytes(Math.floor(rnd() * 64)));
    case 1: // bad JSON
      return ["cdktr/1", id, far, "runWorkflow", "{not json"].map((s) => Buffer.from(s));
    case 2: // wrong types
      return ["cdktr/1", id, far, "runWorkflow", JSON.stringify({ workflowId: 42, params: "x" })].map((s) =>
        Buffer.from(s),
      );
    case 3: // unknown verb
      return ["cdktr/1", id, far, `dropTables${i}`, "{}"].map((s) => Buffer.from(s));
    case 4: // oversize in total, each frame under libzmq's frame limit (1 MiB + 64 bytes): a larger
      // frame drops the connection without a reply (wire-limits.test.ts)
      return [
        "cdktr/1",
        id,
        far,
        "runWorkflow",
        JSON.stringify({ workflowId: "hello", source: "x".repeat(1_048_560) }),
      ].map((s) => Buffer.from(s));
    case 5: // wrong protocol version
      return ["cdktr/0", id, far, "ping", "{}"].map((s) => Buffer.from(s));
    case 6: // expired deadline
      return ["cdktr/1", id, "1000", "runWorkflow", JSON.stringify({ workflowId: "hello" })].map((s) => Buffer.from(s));
    case 7: // wrong frame count
      return ["cdktr/1", id, far, "runWorkflow"].map((s) => Buffer.from(s));
    default: // schema violations on mutating verbs (extra keys, bad enums)
      return [
        "cdktr/1",
        id,
        far,
        "runStatus",
        JSON.stringify({ agentId: "x", runId: "y", status: "EXPLODED", time: "yesterday", extra: true }),
      ].map((s) => Buffer.from(s));
  }
}

describe("garbage on the API and log sockets", () => {
  it("1,000 garbage messages: each gets an error reply, valid requests are still answered, nothing is written", async () => {
    const p = await startPrincipal();
    // CURVE with an enrolled key: a plaintext peer gets no reply at all (security tests), while
    // framing and validation are checked before `hello`, so every garbage message is answered.
    const api = rawDealer(p.key());
    const logs = rawDealer(p.key());
    try {
      // Both clients connected and proven first: under this flood the principal's main thread
      // (which answers ZAP) can take longer than a client's timeout to admit a NEW connection.
      await p.client.ping();
      await p.logClient.ping();
      const before = TABLES.map((t) => countRows(p.dbPath, t));
      api.connect(`tcp://127.0.0.1:${p.ports.api}`);
      logs.connect(`tcp://127.0.0.1:${p.ports.logs}`);
      const rnd = prng(1234);
      const replies = { api: 0, logs: 0, errors: 0, ok: 0 };
      const N = 1000;
      const toLogs = 200;
      const collect = async (sock: Dealer, n: number, which: "api" | "logs"): Promise<void> => {
        for (let i = 0; i < n; i++) {
          const frames = await sock.receive();
          replies[which]++;
          if (frames[2]?.toString() === "error") replies.errors++;
          else replies.ok++;
        }
      };
      const collecting = Promise.all([collect(api, N - toLogs, "api"), collect(logs, toLogs, "logs")]);
      const pings: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++) {
        const sock = i < N - toLogs ? api : logs;
        await sock.send(garbage(i, rnd));
        if (i % 50 === 0) pings.push(p.client.ping(), p.logClient.ping(), p.client.listWorkflows());
      }
      const answered = await Promise.all(pings);
      assert.equal(answered.length, 60, "valid requests answered in the middle of the garbage");
      await collecting;
      assert.deepEqual(replies, { api: N - toLogs, logs: toLogs, errors: N, ok: 0 });
      const after = TABLES.map((t) => countRows(p.dbPath, t));
      assert.deepEqual(after, before, "no row written");
      const wf = await p.client.runWorkflow({ workflowId: "hello" });
      assert.equal(wf.status, "QUEUED", "still fully working");
    } finally {
      api.close();
      logs.close();
    }
  });
});

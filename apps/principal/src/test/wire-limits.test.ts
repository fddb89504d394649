/**
 * The wire bounds of a real principal (issue 13, docs/operations.md "Wire limits"): a frame above
 * the request limit is refused by libzmq before it is buffered, frames that are not valid UTF-8
 * are a BAD_REQUEST and never executed, and a message of a million empty frames (which no socket
 * option can bound) leaves the principal serving everyone else.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import type { Dealer } from "zeromq";
import { PROTOCOL, helloProof, sharedSecret, type ClientKey } from "@cdktr/protocol";
import { cleanup, helloWorkflowYaml, startPrincipal, type PrincipalFixture } from "@cdktr/test-utils";
import { countRows, rawDealer, rawRequest } from "./helpers.js";

afterEach(cleanup);

const MiB = 1024 * 1024;

/** A line of /proc/<pid>/status in bytes (`VmRSS`, `VmHWM`). */
function procBytes(pid: number, field: "VmRSS" | "VmHWM"): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${field}:`));
  const kb = /(\d+) kB/.exec(line ?? "")?.[1];
  assert.ok(kb !== undefined, `no ${field} in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

/**
 * Peak RSS growth of `pid` while `during` runs: VmHWM is reset first (`clear_refs` 5) so the
 * peak is this window's; when the reset is not allowed, the older peak makes the figure larger,
 * never smaller.
 */
async function peakGrowth<T>(pid: number, during: () => Promise<T>): Promise<{ growth: number; result: T }> {
  const before = procBytes(pid, "VmRSS");
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    // not allowed here: VmHWM keeps the older peak (a larger, still honest, figure)
  }
  const result = await during();
  return { growth: procBytes(pid, "VmHWM") - before, result };
}

function pidOf(p: PrincipalFixture): number {
  const pid = p.service?.child.pid;
  assert.ok(pid !== undefined, "the principal runs");
  return pid;
}

/** `hello` with the key's proof on a raw dealer: binds the connection to the key. */
async function hello(d: Dealer, key: ClientKey): Promise<void> {
  const step1 = await rawRequest(d, [PROTOCOL, "h1", "0", "hello", JSON.stringify({ publicKey: key.publicKey })]);
  assert.ok(step1 !== "no reply");
  const challenge = (step1.body as { challenge: string }).challenge;
  const shared = sharedSecret(key.secretKey, key.principalPublicKey);
  const proof = helloProof(shared, challenge, key.publicKey, key.principalPublicKey);
  const step2 = await rawRequest(d, [
    PROTOCOL,
    "h2",
    "0",
    "hello",
    JSON.stringify({ publicKey: key.publicKey, challenge, proof }),
  ]);
  assert.ok(step2 !== "no reply" && step2.status === "ok", `hello: ${JSON.stringify(step2)}`);
}

describe("wire limits of the principal", { timeout: 90_000 }, () => {
  it("an 80 MiB request in two frames is refused before it is buffered: no RSS growth near its size, ping answers", async () => {
    // Old behaviour: libzmq accepted frames up to 64 MiB, so both 40 MiB frames were buffered
    // (about 120 MB of peak growth) before the application answered MESSAGE_TOO_LARGE.
    const p = await startPrincipal();
    const key = p.key();
    assert.ok(key !== null);
    await p.client.ping();
    const d = rawDealer(key, { receiveTimeout: 3000 });
    d.sendTimeout = 20_000;
    try {
      d.connect(p.endpoints.api);
      await hello(d, key);
      const { growth, result: reply } = await peakGrowth(pidOf(p), () =>
        rawRequest(d, [Buffer.alloc(40 * MiB, 0x61), Buffer.alloc(40 * MiB, 0x62)]),
      );
      assert.ok(
        growth < 40 * MiB,
        `peak RSS growth ${(growth / MiB).toFixed(1)} MiB (must stay far below one 40 MiB frame)`,
      );
      process.stdout.write(`80 MiB in two frames: peak RSS growth ${(growth / MiB).toFixed(1)} MiB\n`);
      assert.equal(reply, "no reply", "libzmq drops the connection; nothing is answered");
      const pong = await p.client.ping();
      assert.equal(typeof pong.principalId, "string");
      // The refused peer reconnects by itself and is answered again (after a new hello).
      let again: Awaited<ReturnType<typeof rawRequest>> = "no reply";
      for (let i = 0; i < 10 && again === "no reply"; i++) {
        again = await rawRequest(d, [PROTOCOL, `again-${i}`, "0", "ping", "{}"]);
      }
      assert.ok(again !== "no reply", "the same dealer is served after reconnecting");
    } finally {
      d.close();
    }
  });

  it("request id and body frames that are not valid UTF-8 get BAD_REQUEST with the raw id, and nothing runs (API and log ports)", async () => {
    // Old behaviour: both were repaired into U+FFFD and executed; the reply carried `ef bf bd`
    // in place of the id the client sent.
    const p = await startPrincipal({ workflows: { "hello.yml": helloWorkflowYaml() } });
    const key = p.key();
    assert.ok(key !== null);
    const api = rawDealer(key, { receiveTimeout: 5000 });
    const logs = rawDealer(key, { receiveTimeout: 5000 });
    try {
      api.connect(p.endpoints.api);
      logs.connect(p.endpoints.logs);
      await hello(api, key);
      await hello(logs, key);
      const badId = Buffer.from([0x72, 0x75, 0x6e, 0xff, 0x31]);
      const byId = await rawRequest(api, [
        PROTOCOL,
        badId,
        "0",
        "runWorkflow",
        JSON.stringify({ workflowId: "hello" }),
      ]);
      assert.ok(byId !== "no reply");
      assert.deepEqual([byId.id, byId.status, byId.body.code], [badId, "error", "BAD_REQUEST"]);
      assert.match(byId.body.message ?? "", /frame 1 \(requestId\) is not valid UTF-8/);

      const badBody = Buffer.concat([
        Buffer.from('{"workflowId":"hello","idempotencyKey":"k'),
        Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate encoded as UTF-8: invalid
        Buffer.from('"}'),
      ]);
      const byBody = await rawRequest(api, [PROTOCOL, "body-1", "0", "runWorkflow", badBody]);
      assert.ok(byBody !== "no reply");
      assert.deepEqual([byBody.id.toString(), byBody.status, byBody.body.code], ["body-1", "error", "BAD_REQUEST"]);
      assert.match(byBody.body.message ?? "", /frame 4 \(body\) is not valid UTF-8/);

      const logBody = Buffer.from('{"agentId":"a\xff","lines":[]}', "latin1");
      const byLog = await rawRequest(logs, [PROTOCOL, "log-1", "0", "logBatch", logBody]);
      assert.ok(byLog !== "no reply");
      assert.deepEqual([byLog.status, byLog.body.code], ["error", "BAD_REQUEST"]);
      assert.match(byLog.body.message ?? "", /frame 4 \(body\) is not valid UTF-8/);

      // The same connection is served with valid frames, and only that request ran.
      const ok = await rawRequest(api, [PROTOCOL, "ok-1", "0", "runWorkflow", JSON.stringify({ workflowId: "hello" })]);
      assert.ok(ok !== "no reply");
      assert.equal(ok.status, "ok", JSON.stringify(ok.body));
      assert.equal(countRows(p.dbPath, "runs"), 1, "only the valid request created a run");
    } finally {
      api.close();
      logs.close();
    }
  });

  it("a message of 1,000,000 empty frames gets BAD_REQUEST and the principal keeps serving; its growth is the documented residual", async () => {
    // No socket option bounds the number of frames: libzmq holds the message (64 bytes a frame)
    // and zeromq.js turns every frame into a Buffer before the server can look at the count.
    // Measured here: about 550 MB of peak growth and a 2-4 s stall (docs/operations.md). The
    // bound below is that residual with a wide margin, so a regression to unbounded growth fails.
    const p = await startPrincipal();
    const key = p.key();
    assert.ok(key !== null);
    await p.client.ping();
    const d = rawDealer(key, { receiveTimeout: 60_000 });
    d.sendTimeout = 60_000;
    try {
      d.connect(p.endpoints.api);
      await hello(d, key);
      const empty = Buffer.alloc(0);
      const { growth, result: reply } = await peakGrowth(pidOf(p), () =>
        rawRequest(d, [PROTOCOL, "frames-1", "0", "ping", "{}", ...new Array<Buffer>(1_000_000).fill(empty)]),
      );
      assert.ok(reply !== "no reply");
      assert.deepEqual([reply.status, reply.body.code], ["error", "BAD_REQUEST"]);
      assert.match(reply.body.message ?? "", /got 1000005/);
      assert.ok(growth < 1536 * MiB, `peak RSS growth ${(growth / MiB).toFixed(0)} MiB`);
      process.stdout.write(`1M empty frames: peak RSS growth ${(growth / MiB).toFixed(0)} MiB\n`);
      // The principal names the sender's key, so that an operator can revoke it.
      const warned = await p.service?.waitForLine((line) => line.includes("abusive number of frames"), 10_000);
      assert.match(warned ?? "", /"key":"local-operator"/);
      assert.match(warned ?? "", /"frames":1000005/);
      // Everyone else (and the sender itself) is served afterwards.
      const pong = await p.client.ping();
      assert.equal(typeof pong.principalId, "string");
      const again = await rawRequest(d, [PROTOCOL, "after-1", "0", "ping", "{}"]);
      assert.ok(again !== "no reply" && again.status === "ok");
    } finally {
      d.close();
    }
  });
});

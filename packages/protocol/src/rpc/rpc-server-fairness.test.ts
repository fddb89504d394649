import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Dealer } from "zeromq";
import { API_VERBS } from "../messages.js";
import { PROTOCOL } from "./frames.js";
import { RpcServer } from "./rpc-server.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** Keep this thread busy for `ms` without returning to the event loop (libzmq's threads go on). */
function block(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe("RpcServer fairness", () => {
  it("lets the event loop run between costly requests that were queued together (a log flood does not hold up other sockets)", async () => {
    const n = 100;
    let handled = 0;
    let handledWhenLoopRan = -1;
    const server = new RpcServer({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS });
    server.handle("getWorkflow", () => {
      handled++;
      // Once the first queued request runs, ask for a turn of the event loop.
      if (handled === 2) setImmediate(() => (handledWhenLoopRan = handled));
      block(1); // a costly request, as a 2,000-line log batch is to parse
      return { workflow: null } as never;
    });
    await server.bind();
    cleanups.push(() => server.close());
    const dealer = new Dealer({ linger: 0, receiveTimeout: 30_000 });
    cleanups.push(() => dealer.close());
    dealer.connect(server.endpoint ?? "");
    const request = (id: string) => [PROTOCOL, id, "0", "getWorkflow", JSON.stringify({ workflowId: id })];
    await dealer.send(request("warm-up"));
    await dealer.receive();
    // Hand every request to libzmq in one go (the server cannot read in between), then hold this
    // thread while they all arrive: the server finds them queued together.
    for (let i = 0; i < n; i++) await dealer.send(request(`wf-${i}`));
    block(300);
    for (let i = 0; i < n; i++) await dealer.receive();
    assert.equal(handled, n + 1);
    assert.ok(handledWhenLoopRan < n + 1, `the event loop ran only after all ${n} queued requests were handled`);
  });
});

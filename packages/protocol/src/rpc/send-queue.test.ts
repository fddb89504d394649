import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Dealer, Publisher, Router } from "zeromq";
import { SendQueue } from "./send-queue.js";

describe("SendQueue", () => {
  it("sends a large backlog in order and empties (no O(n) shift per item)", async () => {
    const push = new Dealer({ linger: 0, sendHighWaterMark: 0 });
    const pull = new Router({ linger: 0, receiveHighWaterMark: 0 });
    await pull.bind("tcp://127.0.0.1:*");
    push.connect(pull.lastEndpoint ?? "");
    const queue = new SendQueue(push);
    const n = 20_000;
    const sent: Promise<void>[] = [];
    for (let i = 0; i < n; i++) sent.push(queue.push([String(i)]));
    assert.equal(queue.size > 0, true);
    const received: number[] = [];
    const reading = (async () => {
      while (received.length < n) {
        const [, frame] = await pull.receive();
        received.push(Number(frame?.toString()));
      }
    })();
    await Promise.all(sent);
    await reading;
    await queue.drain();
    assert.equal(queue.size, 0);
    assert.equal(received.length, n);
    for (let i = 0; i < n; i++) assert.equal(received[i], i, `message ${i} in order`);
    // still usable after draining and compaction
    await queue.push(["again"]);
    const [, again] = await pull.receive();
    assert.equal(again?.toString(), "again");
    push.close();
    pull.close();
  });

  it("close() rejects everything still queued", async () => {
    const push = new Dealer({ linger: 0, sendTimeout: 0 });
    const queue = new SendQueue(push);
    // no peer: the first send fails (EAGAIN) and the rest wait behind it, then get rejected
    const results = await Promise.allSettled([
      queue.push(["a"]),
      queue.push(["b"]),
      (() => {
        queue.close(new Error("closed"));
        return queue.push(["c"]);
      })(),
    ]);
    assert.equal(results[2]?.status, "rejected");
    assert.equal(queue.size, 0);
    push.close();
  });

  it("lets the event loop run while it works through a long backlog (replies and pings are not starved)", async () => {
    // A PUB socket without subscribers takes every message at once, and with `sendTimeout` 0
    // (as the RPC server's ROUTER) zeromq.js resolves every send synchronously: without yielding,
    // the whole backlog would go out in one microtask chain before any I/O or timer.
    const pub = new Publisher({ linger: 0, sendHighWaterMark: 0, sendTimeout: 0 });
    await pub.bind("tcp://127.0.0.1:*");
    const queue = new SendQueue(pub);
    const n = 200_000;
    const sent: Promise<void>[] = [];
    for (let i = 0; i < n; i++) sent.push(queue.push(["topic|", String(i)]));
    const leftWhenLoopRan = await new Promise<number>((r) => setImmediate(() => r(queue.size)));
    await Promise.all(sent);
    assert.ok(leftWhenLoopRan > 0, "the event loop ran before the backlog was sent");
    assert.equal(queue.size, 0);
    pub.close();
  });
});

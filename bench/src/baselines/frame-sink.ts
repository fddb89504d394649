/**
 * Baseline of the abuse-frames scenario: a bare zeromq.js ROUTER with the socket options the
 * principal used before issue 13 (libzmq's default frame limit, plaintext), which reads each
 * message and answers its sender with one small frame. What it costs to receive a hostile
 * message with the transport alone, measured in the same run.
 *
 * Prints `{"message":"ready","endpoint":...}` once bound.
 */
import { Router } from "zeromq";

const socket = new Router({ linger: 0, mandatory: true, receiveHighWaterMark: 10_000, sendHighWaterMark: 10_000 });
await socket.bind("tcp://127.0.0.1:*");
process.stdout.write(`${JSON.stringify({ message: "ready", endpoint: socket.lastEndpoint })}\n`);
for (;;) {
  const frames = await socket.receive();
  const routing = frames[0];
  if (routing !== undefined) await socket.send([routing, "cdktr/1", "abuse-1", "error", `${frames.length} frames`]);
}

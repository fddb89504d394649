import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Dealer } from "zeromq";
import { API_VERBS, type ApiVerbs } from "../messages.js";
import { WireErrorSchema, type ErrorCode } from "../errors.js";
import { DEFAULT_MAX_MESSAGE_BYTES, FRAME_OVERHEAD_BYTES, PROTOCOL } from "./frames.js";
import { PrincipalClient } from "./principal-client.js";
import { RpcServer } from "./rpc-server.js";
import type { Logger } from "../logging/logger.js";

/**
 * Garbage of every kind sent with a raw DEALER: each routable message gets the right error code
 * back, and the server keeps answering valid requests afterwards.
 */
describe("RpcServer under garbage", () => {
  let server: RpcServer<ApiVerbs>;
  let endpoint: string;
  let raw: Dealer;
  let valid: PrincipalClient;
  let handled = 0;

  before(async () => {
    server = new RpcServer({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS });
    server.handle("getRun", ({ runId }) => {
      handled++;
      return {
        run: {
          runId,
          workflowId: "etl",
          status: "QUEUED",
          source: "test",
          triggeredBy: null,
          idempotencyKey: null,
          params: {},
          scheduledFor: null,
          createdAt: new Date().toISOString(),
          startedAt: null,
          finishedAt: null,
          agentId: null,
          reason: null,
          message: null,
        },
        tasks: [],
      };
    });
    endpoint = await server.bind();
    raw = new Dealer({ linger: 0, receiveTimeout: 3000, routingId: "raw-garbage-sender" });
    raw.connect(endpoint);
    valid = new PrincipalClient({ endpoint, timeoutMs: 3000, retry: { attempts: 1 } });
  });

  after(async () => {
    raw.close();
    valid.close();
    await server.close();
  });

  async function expectError(frames: (string | Buffer)[], code: ErrorCode, requestId?: string): Promise<string> {
    await raw.send(frames);
    const reply = await raw.receive();
    assert.equal(reply.length, 4, "reply has 4 frames");
    assert.equal(String(reply[0]), PROTOCOL);
    if (requestId !== undefined) assert.equal(String(reply[1]), requestId);
    assert.equal(String(reply[2]), "error");
    const body = WireErrorSchema.parse(JSON.parse(String(reply[3])));
    assert.equal(body.code, code, `expected ${code}, got ${body.code}: ${body.message}`);
    // The server still serves valid requests after every kind of garbage.
    const before = handled;
    const ok = await valid.getRun("run-ok");
    assert.equal(ok.run.runId, "run-ok");
    assert.equal(handled, before + 1);
    return body.message;
  }

  const now = () => String(Date.now() + 5000);

  it("wrong frame count -> BAD_REQUEST", async () => {
    const msg = await expectError([PROTOCOL, "id-1", now(), "getRun"], "BAD_REQUEST", "id-1");
    assert.match(msg, /expected 5 frames/);
    await expectError([PROTOCOL, "id-1b", now(), "getRun", "{}", "extra"], "BAD_REQUEST", "id-1b");
  });

  it("bad JSON -> BAD_REQUEST", async () => {
    const msg = await expectError([PROTOCOL, "id-2", now(), "getRun", "{not json"], "BAD_REQUEST", "id-2");
    assert.match(msg, /not valid JSON/);
  });

  it("unknown verb -> UNKNOWN_VERB listing the known verbs", async () => {
    const msg = await expectError([PROTOCOL, "id-3", now(), "dropTables", "{}"], "UNKNOWN_VERB", "id-3");
    assert.match(msg, /dropTables.*runWorkflow/);
    await expectError([PROTOCOL, "id-3b", now(), "__proto__", "{}"], "UNKNOWN_VERB", "id-3b");
  });

  it("schema violation -> BAD_REQUEST naming the field", async () => {
    const msg = await expectError(
      [PROTOCOL, "id-4", now(), "getRun", JSON.stringify({ runId: 5 })],
      "BAD_REQUEST",
      "id-4",
    );
    assert.match(msg, /body\.runId: .*expected string/);
    const extra = await expectError(
      [PROTOCOL, "id-4b", now(), "getRun", JSON.stringify({ runId: "r", x: 1 })],
      "BAD_REQUEST",
      "id-4b",
    );
    assert.match(extra, /x/);
  });

  it("oversize -> MESSAGE_TOO_LARGE", async () => {
    const big = JSON.stringify({ runId: "x".repeat(1024 * 1024 + 10) });
    await expectError([PROTOCOL, "id-5", now(), "getRun", big], "MESSAGE_TOO_LARGE", "id-5");
  });

  it("a request of exactly the limit is served", async () => {
    const id = "id-5a";
    const fixed = PROTOCOL.length + id.length + 13 + "getRun".length + JSON.stringify({ runId: "" }).length;
    const runId = "z".repeat(DEFAULT_MAX_MESSAGE_BYTES - fixed);
    await raw.send([PROTOCOL, id, now(), "getRun", JSON.stringify({ runId })]);
    const reply = await raw.receive();
    assert.equal(String(reply[1]), id);
    assert.equal(String(reply[2]), "ok");
  });

  it("one frame above the limit is refused by libzmq before it is buffered: no reply, the connection drops, then serves again", async () => {
    // Old behaviour: libzmq's cap was 64 MiB, so this 16 MiB frame was buffered whole and only
    // then answered MESSAGE_TOO_LARGE.
    const d = new Dealer({ linger: 0, sendTimeout: 5000, receiveTimeout: 1500 });
    try {
      d.connect(endpoint);
      await d.send([PROTOCOL, "warm", now(), "getRun", JSON.stringify({ runId: "w" })]);
      assert.equal(String((await d.receive())[2]), "ok");
      const over = DEFAULT_MAX_MESSAGE_BYTES + FRAME_OVERHEAD_BYTES + 1;
      for (const size of [over, 16 * 1024 * 1024]) {
        await d.send([PROTOCOL, "id-5b", now(), "getRun", Buffer.alloc(size, 0x20)]);
        await assert.rejects(d.receive(), (e: unknown) => (e as { code?: unknown }).code === "EAGAIN", "no reply");
        // The DEALER reconnects by itself and the server answers it again.
        let answered = false;
        for (let i = 0; i < 20 && !answered; i++) {
          await d.send([PROTOCOL, `id-5c-${i}`, now(), "getRun", JSON.stringify({ runId: "again" })]);
          answered = await d.receive().then(
            (r) => String(r[2]) === "ok",
            () => false,
          );
        }
        assert.ok(answered, "the same peer is served again after the refused frame");
      }
    } finally {
      d.close();
    }
  });

  it("request id that is not valid UTF-8 -> BAD_REQUEST echoing the exact bytes, handler not run", async () => {
    // Old behaviour: the id was repaired into U+FFFD, the request executed, and the reply carried
    // an id (ef bf bd) the client never sent.
    const id = Buffer.from([0x69, 0x64, 0xff, 0xfe, 0x2d, 0x38]);
    const before = handled;
    await raw.send([PROTOCOL, id, now(), "getRun", JSON.stringify({ runId: "r" })]);
    const reply = await raw.receive();
    assert.deepEqual(reply[1], id, "the reply carries the raw id bytes");
    assert.equal(String(reply[2]), "error");
    const body = WireErrorSchema.parse(JSON.parse(String(reply[3])));
    assert.equal(body.code, "BAD_REQUEST");
    assert.match(body.message, /frame 1 \(requestId\) is not valid UTF-8/);
    assert.equal(handled, before, "never executed");
  });

  it("body, verb or deadline that is not valid UTF-8 -> BAD_REQUEST naming the frame, handler not run", async () => {
    const before = handled;
    const badBody = Buffer.concat([Buffer.from('{"runId":"r'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const body = await expectError([PROTOCOL, "id-9a", now(), "getRun", badBody], "BAD_REQUEST", "id-9a");
    assert.match(body, /frame 4 \(body\) is not valid UTF-8/);
    const verb = await expectError(
      [PROTOCOL, "id-9b", now(), Buffer.from([0x67, 0x65, 0x74, 0x80]), "{}"],
      "BAD_REQUEST",
      "id-9b",
    );
    assert.match(verb, /frame 3 \(verb\) is not valid UTF-8/);
    const overlong = await expectError(
      [PROTOCOL, "id-9c", Buffer.from([0x31, 0xc0, 0xb1]), "getRun", "{}"],
      "BAD_REQUEST",
      "id-9c",
    );
    assert.match(overlong, /frame 2 \(deadline\) is not valid UTF-8/);
    // expectError itself runs one valid getRun after each: three, and none of the garbage.
    assert.equal(handled, before + 3);
  });

  it("expired deadline -> DEADLINE_EXCEEDED without running the handler", async () => {
    const before = handled;
    await raw.send([PROTOCOL, "id-6", String(Date.now() - 1000), "getRun", JSON.stringify({ runId: "r" })]);
    const reply = await raw.receive();
    assert.equal(String(reply[1]), "id-6");
    assert.equal(WireErrorSchema.parse(JSON.parse(String(reply[3]))).code, "DEADLINE_EXCEEDED");
    assert.equal(handled, before, "an expired request is never handled");
  });

  it("malformed deadline -> BAD_REQUEST", async () => {
    await expectError([PROTOCOL, "id-6b", "soon", "getRun", JSON.stringify({ runId: "r" })], "BAD_REQUEST", "id-6b");
  });

  it("wrong protocol version -> PROTOCOL_MISMATCH", async () => {
    const msg = await expectError(
      ["cdktr/2", "id-7", now(), "getRun", JSON.stringify({ runId: "r" })],
      "PROTOCOL_MISMATCH",
      "id-7",
    );
    assert.match(msg, /cdktr\/1.*cdktr\/2/);
  });

  it("random binary frames -> PROTOCOL_MISMATCH", async () => {
    await expectError([randomBytes(64)], "PROTOCOL_MISMATCH", "");
    await expectError(
      [randomBytes(3), randomBytes(16), randomBytes(8), randomBytes(5), randomBytes(100)],
      "PROTOCOL_MISMATCH",
    );
    await expectError([Buffer.alloc(0)], "PROTOCOL_MISMATCH", "");
  });

  it("over-long request id -> BAD_REQUEST with an empty id", async () => {
    await expectError([PROTOCOL, "i".repeat(500), now(), "getRun", JSON.stringify({ runId: "r" })], "BAD_REQUEST", "");
  });

  it("a burst of mixed garbage and valid requests: every valid one is answered", async () => {
    for (let i = 0; i < 50; i++) await raw.send([randomBytes(1 + (i % 7))]);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => valid.getRun(`burst-${i}`)));
    assert.deepEqual(
      replies.map((r) => r.run.runId),
      Array.from({ length: 20 }, (_, i) => `burst-${i}`),
    );
    for (let i = 0; i < 50; i++) {
      const r = await raw.receive();
      assert.equal(String(r[2]), "error");
    }
  });
});

describe("RpcServer: messages with many frames", () => {
  it("each gets BAD_REQUEST; the first is logged at warn with its frame count, a flood of them is not", async () => {
    const warnings: { message: string; meta: Record<string, unknown> }[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (message, meta) => warnings.push({ message, meta: { ...meta } }),
      error: () => undefined,
      child: () => logger,
    };
    const server = new RpcServer({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS, logger });
    const endpoint = await server.bind();
    const d = new Dealer({ linger: 0, sendTimeout: 3000, receiveTimeout: 3000 });
    try {
      d.connect(endpoint);
      for (let i = 0; i < 5; i++) {
        await d.send([PROTOCOL, `many-${i}`, "0", "ping", "{}", ...new Array<Buffer>(100).fill(Buffer.alloc(0))]);
        const reply = await d.receive();
        assert.equal(String(reply[1]), `many-${i}`);
        const body = WireErrorSchema.parse(JSON.parse(String(reply[3])));
        assert.equal(body.code, "BAD_REQUEST");
        assert.match(body.message, /got 105/);
      }
      assert.equal(warnings.length, 1, "one warning for five such messages within 10 s");
      assert.equal(warnings[0]?.message, "rpc message with an abusive number of frames refused");
      assert.equal(warnings[0]?.meta.frames, 105);
    } finally {
      d.close();
      await server.close();
    }
  });
});

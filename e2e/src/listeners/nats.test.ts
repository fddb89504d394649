/**
 * The NATS JetStream listener against the machine's NATS server (127.0.0.1:4222, JetStream on)
 * and a real principal process. Every test uses its own streams and subjects and deletes them.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { NatsListener } from "@cdktr/events/nats";
import type { Logger } from "@cdktr/protocol";
import {
  CuttableProxy,
  cleanup,
  preparePrincipal,
  startListeners,
  startPrincipal,
  waitFor,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflows, requireServer } from "./helpers.js";
import { ListenerPool } from "./listener-pool.js";

const NATS_URL = "nats://127.0.0.1:4222";
/** The listeners' `ackWaitMs`: a message left unacknowledged is delivered again after it. */
const ACK_WAIT_MS = 3000;
const skip = await requireServer("NATS", 4222);

/** A stream of the test: its name and the prefix of its subjects (`<prefix>.>`). */
interface TestStream {
  name: string;
  prefix: string;
}

describe("nats listener", { skip }, () => {
  let f: PrincipalFixture;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  const streams: string[] = [];
  const listeners = new ListenerPool<NatsListener>();

  /** A stream on `<prefix>.>` (its name is remembered for deletion). */
  const newStream = async (config: Partial<StreamConfig> = {}): Promise<TestStream> => {
    const id = randomUUID().replaceAll("-", "");
    const s = { name: `CDKTR_TEST_${id}`, prefix: `cdktr-test.${id}` };
    streams.push(s.name);
    await jsm.streams.add({ name: s.name, subjects: [`${s.prefix}.>`], ...config });
    return s;
  };
  const publish = async (
    subject: string,
    body: unknown,
    opts: { msgID?: string; headers?: Record<string, string> } = {},
  ): Promise<{ seq: number; duplicate: boolean }> => {
    const data =
      body instanceof Uint8Array
        ? body
        : new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
    const h = natsHeaders();
    for (const [k, v] of Object.entries(opts.headers ?? {})) h.set(k, v);
    return js.publish(subject, data, {
      ...(opts.msgID !== undefined ? { msgID: opts.msgID } : {}),
      ...(opts.headers !== undefined ? { headers: h } : {}),
    });
  };
  /** Messages of the durable not yet acknowledged or terminated: waiting, or delivered and pending. */
  const unsettled = async (stream: string, durable = "cdktr"): Promise<number> => {
    const ci = await jsm.consumers.info(stream, durable);
    return ci.num_pending + ci.num_ack_pending;
  };
  const start = async (
    stream: string,
    extra: Partial<ConstructorParameters<typeof NatsListener>[0]> = {},
    port = f.ports.api,
  ): Promise<NatsListener> => {
    const l = await listeners.start(
      new NatsListener({
        principal: { host: "127.0.0.1", port },
        key: f.key("local-listeners"),
        servers: NATS_URL,
        stream,
        durable: "cdktr",
        backoff: { initialMs: 200, maxMs: 1000 },
        triggerTimeoutMs: 1000,
        ackWaitMs: ACK_WAIT_MS,
        ...extra,
      }),
    );
    await waitFor(() => l.stats.consuming, { what: "the consumer", timeoutMs: 10_000 });
    return l;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: paramWorkflows(
        "nt",
        "nt2",
        "ntbad",
        "ntdown",
        "ntok",
        "ntdenied",
        "ntmap",
        "ntstop",
        "ntkill",
        "ntcut",
      ),
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    nc = await connect({ servers: NATS_URL });
    jsm = await jetstreamManager(nc);
    js = jsm.jetstream();
  });
  afterEach(() => listeners.stopAll());
  after(async () => {
    for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
    await nc.drain();
    await cleanup();
  });

  test("a trigger message becomes exactly one run with its params; the listener creates the stream and its durable consumer", async () => {
    const id = randomUUID().replaceAll("-", "");
    const stream = `CDKTR_TEST_${id}`;
    streams.push(stream);
    const l = await start(stream, { createStream: true, subjects: [`cdktr-test.${id}.>`] });
    const info = await jsm.streams.info(stream);
    assert.equal(info.config.retention, "workqueue");
    assert.equal((await jsm.consumers.info(stream, "cdktr")).config.ack_policy, AckPolicy.Explicit);
    await publish(`cdktr-test.${id}.orders`, { workflow_id: "nt", params: { date: "2026-11-28" } }, { msgID: "msg-1" });
    const runs = await expectRunCount(f, "nt", 1);
    assert.deepEqual(runs[0]?.params, { date: "2026-11-28" });
    assert.equal(runs[0]?.source, "nats");
    assert.equal(runs[0]?.idempotencyKey, `nats:${stream}:msg-1`);
    await waitFor(() => l.stats.acked === 1, { what: "the ack" });
    // Work-queue retention: the acknowledged message left the stream.
    await waitFor(async () => (await jsm.streams.info(stream)).state.messages === 0, { what: "an empty stream" });
  });

  test("with `workflow` and a mapping, any payload becomes one run with params mapped from body, subject and headers; `when` filters", async () => {
    const s = await newStream();
    const l = await start(s.name, {
      workflow: "ntmap",
      filterSubject: `${s.prefix}.orders.*`,
      mapping: {
        params: { n: "fixed" },
        paramsMap: { date: "body.order.day", paths: "join(',', [subject, headers.\"X-Shop\"])" },
        when: "body.kind == 'order'",
        idempotencyKey: "to_string(body.order.id)",
      },
    });
    const order = { kind: "order", order: { id: 42, day: "2026-12-02" } };
    await publish(`${s.prefix}.orders.eu`, order, { headers: { "X-Shop": "lyon; rm -rf /" } });
    await publish(`${s.prefix}.orders.eu`, order, { headers: { "X-Shop": "lyon; rm -rf /" } }); // same order id: same run
    await publish(`${s.prefix}.orders.eu`, { kind: "refund", order: { id: 43 } }); // filtered: acked, no run
    await publish(`${s.prefix}.other`, order); // outside the filter subject: never delivered
    await waitFor(() => l.stats.acked === 2 && l.stats.filtered === 1, { what: "2 acks and 1 filtered" });
    const runs = await expectRunCount(f, "ntmap", 1);
    assert.deepEqual(runs[0]?.params, {
      n: "fixed",
      date: "2026-12-02",
      paths: `${s.prefix}.orders.eu,lyon; rm -rf /`,
    });
    assert.equal(runs[0]?.idempotencyKey, `nats:${s.name}:42`);
    assert.equal(await unsettled(s.name), 0);
    assert.equal(l.stats.rejected, 0);
  });

  test("the same message published twice with one Nats-Msg-Id, or delivered again after a consumer died before its ack, starts one run", async () => {
    // A duplicate window shorter than the gap between the publishes: the stream keeps both copies.
    const s = await newStream({ duplicate_window: 100_000_000 });
    const first = await publish(`${s.prefix}.x`, { workflow_id: "nt2", params: { n: "1" } }, { msgID: "same-id" });
    await new Promise((r) => setTimeout(r, 300));
    const second = await publish(`${s.prefix}.x`, { workflow_id: "nt2", params: { n: "1" } }, { msgID: "same-id" });
    assert.deepEqual([first.duplicate, second.duplicate], [false, false], "two messages in the stream");
    // A message without any id: its key is the stream sequence. A first consumer takes it and
    // triggers its run as the listener would (with the listeners' key: keys are scoped by the key
    // that sent them), then dies before acknowledging it.
    const noId = await publish(`${s.prefix}.x`, { workflow_id: "nt2", params: { n: "2" } });
    await jsm.consumers.add(s.name, {
      durable_name: "cdktr",
      ack_policy: AckPolicy.Explicit,
      ack_wait: ACK_WAIT_MS * 1_000_000,
      filter_subject: `${s.prefix}.x`,
    });
    const consumer = await js.consumers.get(s.name, "cdktr");
    const batch = await consumer.fetch({ max_messages: 3, expires: 2000 });
    const created = Date.parse((await jsm.streams.info(s.name)).created);
    let firstRun = "";
    for await (const m of batch) {
      if (m.seq !== noId.seq) continue;
      const r = await f.connect({ key: f.key("local-listeners") }).runWorkflow({
        workflowId: "nt2",
        params: { n: "2" },
        idempotencyKey: `nats:${s.name}:seq:${created}:${m.seq}`,
        source: "nats",
      });
      firstRun = r.runId;
      break; // no ack for any of the three: all are delivered again
    }
    await batch.close();
    assert.notEqual(firstRun, "");
    const l = await start(s.name, { filterSubject: `${s.prefix}.x` });
    await waitFor(() => l.stats.acked === 3, { what: "3 acks", timeoutMs: 10_000 });
    const runs = await expectRunCount(f, "nt2", 2);
    assert.deepEqual(runs.map((r) => r.params.n).sort(), ["1", "2"]);
    assert.equal(runs.find((r) => r.params.n === "2")?.runId, firstRun);
    assert.equal(runs.find((r) => r.params.n === "1")?.idempotencyKey, `nats:${s.name}:same-id`);
    assert.equal(await unsettled(s.name), 0);
  });

  test("poison messages are parked: copied to the dead-letter subject, terminated, never delivered again; good messages still flow", async () => {
    const s = await newStream();
    const dead = await newStream();
    const deadSubject = `${dead.prefix}.parked`;
    const l = await start(s.name, { deadLetterSubject: deadSubject, filterSubject: `${s.prefix}.in` });
    const reasons: string[] = [];
    let refusedByPrincipal = 0;
    l.on("rejected", (r) => reasons.push(r.reason));
    l.on("triggered", (r) => {
      if (!r.success) refusedByPrincipal += 1;
    });
    const poison: unknown[] = [
      "{not json",
      new Uint8Array([0xff, 0xfe, 0x00]),
      { params: { date: "x" } },
      { workflow_id: "ntbad", params: { date: { nested: 1 } } },
      { workflow_id: "ntbad", extra: true },
      { workflow_id: "no-such-workflow" },
      { workflow_id: "ntbad", params: { undeclared: "x" } },
    ];
    for (const [i, p] of poison.entries())
      await publish(`${s.prefix}.in`, p, { msgID: `poison-${i}`, headers: { "X-Trace": `t-${i}` } });
    await waitFor(() => l.stats.rejected === poison.length, { what: "every poison message parked" });
    assert.equal(l.stats.deadLettered, poison.length);
    assert.equal(await unsettled(s.name), 0, "terminated: nothing waits for a redelivery");
    assert.deepEqual(reasons.sort(), ["malformed", "malformed", "malformed", "malformed", "malformed"]);
    assert.equal(refusedByPrincipal, 2, "no-such-workflow and the undeclared param");
    // The copies: the original payload and headers, why, and where from.
    const parked = await waitFor(
      async () => {
        const st = (await jsm.streams.info(dead.name)).state;
        return st.messages === poison.length ? st : undefined;
      },
      { what: "the dead-letter copies" },
    );
    const copies = await Promise.all(
      Array.from({ length: parked.messages }, (_, i) =>
        jsm.streams.getMessage(dead.name, { seq: parked.first_seq + i }),
      ),
    );
    const unknown = copies.find((m) => m?.header.get("Cdktr-Dead-Reason") === "WORKFLOW_NOT_FOUND");
    assert.ok(unknown !== undefined && unknown !== null, "the unknown workflow's copy");
    assert.deepEqual(unknown.json(), { workflow_id: "no-such-workflow" });
    assert.equal(unknown.header.get("Cdktr-Original-Subject"), `${s.prefix}.in`);
    assert.equal(unknown.header.get("Cdktr-Original-Stream"), s.name);
    assert.equal(unknown.header.get("X-Trace"), "t-5");
    const notJson = copies.find((m) => m?.header.get("X-Trace") === "t-0");
    assert.equal(notJson?.header.get("Cdktr-Dead-Reason"), "malformed");
    assert.match(notJson?.header.get("Cdktr-Dead-Error") ?? "", /not valid JSON/);
    assert.equal(notJson?.string(), "{not json");
    // Past the ack wait: none came back.
    await new Promise((r) => setTimeout(r, ACK_WAIT_MS + 1000));
    assert.equal(l.stats.rejected, poison.length);
    assert.equal(refusedByPrincipal, 2);
    assert.equal((await f.runs("ntbad")).length, 0);
    await publish(`${s.prefix}.in`, { workflow_id: "ntbad", params: { date: "good" } }, { msgID: "good" });
    const runs = await expectRunCount(f, "ntbad", 1);
    assert.deepEqual(runs[0]?.params, { date: "good" });
  });

  test("with a `workflows` allow-list, a message for another workflow is terminated and never triggered", async () => {
    const s = await newStream();
    const l = await start(s.name, { workflows: ["ntok"] });
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    await publish(`${s.prefix}.a`, { workflow_id: "ntdenied", params: { date: "x" } }, { msgID: "denied-1" });
    await publish(`${s.prefix}.a`, { workflow_id: "ntdenied", idempotency_key: "denied-2" });
    await publish(`${s.prefix}.a`, { workflow_id: "ntok", params: { date: "allowed" } }, { msgID: "allowed-1" });
    await waitFor(() => l.stats.rejected === 2 && l.stats.acked === 1, { what: "2 rejections and 1 ack" });
    assert.deepEqual(reasons, ["not_allowed", "not_allowed"]);
    assert.equal(l.stats.deadLettered, 0, "no dead-letter subject: only terminated");
    assert.equal(await unsettled(s.name), 0);
    const runs = await expectRunCount(f, "ntok", 1);
    assert.deepEqual(runs[0]?.params, { date: "allowed" });
    assert.equal((await f.runs("ntdenied")).length, 0, "the principal never saw the refused workflow");
  });

  test("a dead-letter subject that no stream keeps: the listener does not consume, and says what to create", async () => {
    const s = await newStream();
    const lines: string[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (message, meta) => lines.push(`${message} ${JSON.stringify(meta)}`),
      error: (message, meta) => lines.push(`${message} ${JSON.stringify(meta)}`),
      child() {
        return this;
      },
    };
    const l = await listeners.start(
      new NatsListener({
        principal: { host: "127.0.0.1", port: f.ports.api },
        key: f.key("local-listeners"),
        servers: NATS_URL,
        stream: s.name,
        durable: "cdktr",
        deadLetterSubject: `nobody-keeps.${s.prefix}`,
        backoff: { initialMs: 200, maxMs: 500 },
        logger,
      }),
    );
    await waitFor(() => lines.some((x) => x.includes("no stream captures the dead-letter subject")), {
      what: "the set-up warning",
    });
    assert.match(lines.join("\n"), /nats stream add DEAD_LETTERS --subjects nobody-keeps\./);
    assert.equal(l.stats.consuming, false);
    assert.ok(l.stats.connections >= 1);
  });

  test("principal down: messages wait in the stream, pulling pauses without a hot loop, and each triggers one run when it is back", async () => {
    // Ports picked up front: the listener is pointed at the principal before it runs.
    const down = await preparePrincipal({
      workflows: paramWorkflows("ntdown"),
      ports: "reserved",
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    try {
      const s = await newStream();
      // Short trigger deadlines: without the pause, each message would come back every 0.1 s.
      const l = await start(
        s.name,
        { key: down.key("local-listeners"), triggerTimeoutMs: 100, backoff: { initialMs: 1000, maxMs: 1000 } },
        down.ports.api,
      );
      for (const n of ["1", "2", "3"])
        await publish(`${s.prefix}.a`, { workflow_id: "ntdown", params: { n } }, { msgID: `while-down-${n}` });
      await waitFor(() => l.stats.naked >= 3 && l.stats.paused, {
        what: "the messages handed back",
        timeoutMs: 10_000,
      });
      // Down for 3 s: pauses of 0.5 to 1 s (the backoff's jitter) bound the attempts to 6 rounds of 3.
      const naked = l.stats.naked;
      await new Promise((r) => setTimeout(r, 3000));
      assert.ok(l.stats.naked - naked <= 3 * 6, `no hot loop: ${l.stats.naked - naked} naks in 3 s`);
      assert.equal(l.stats.acked, 0);
      assert.equal(await unsettled(s.name), 3, "all three wait in the stream");
      await down.start();
      await waitFor(() => l.stats.acked === 3, { what: "3 acks once the principal is back", timeoutMs: 15_000 });
      const runs = await expectRunCount(down, "ntdown", 3);
      assert.deepEqual(runs.map((r) => r.params.n).sort(), ["1", "2", "3"]);
      assert.equal(l.stats.paused, false);
      assert.equal(await unsettled(s.name), 0);
    } finally {
      await down.stop();
    }
  });

  test("stopped mid-way and restarted on the same durable consumer, the listener loses nothing and starts no run twice", async () => {
    const s = await newStream();
    const total = 110;
    for (let i = 0; i < 100; i++) await publish(`${s.prefix}.a`, { workflow_id: "ntstop", params: { n: String(i) } });
    const first = await start(s.name, { maxInFlight: 2 });
    await waitFor(() => first.stats.acked >= 5, { what: "a few acks", intervalMs: 5 });
    await listeners.stopAll();
    assert.ok(first.stats.acked < 100, `stopped mid-way (${first.stats.acked} acked)`);
    for (let i = 100; i < total; i++)
      await publish(`${s.prefix}.a`, { workflow_id: "ntstop", params: { n: String(i) } });
    const second = await start(s.name, { maxInFlight: 2 });
    await waitFor(async () => (await unsettled(s.name)) === 0, { what: "every message settled", timeoutMs: 30_000 });
    const runs = await expectRunCount(f, "ntstop", total);
    assert.deepEqual(
      runs.map((r) => Number(r.params.n)).sort((a, b) => a - b),
      Array.from({ length: total }, (_, i) => i),
    );
    assert.equal(first.stats.acked + second.stats.acked, total, "a stopped listener settles what it took");
  });

  test("the listeners runner killed (SIGKILL) mid-way and started again loses nothing and starts no run twice", async () => {
    const s = await newStream();
    const total = 160;
    for (let i = 0; i < 150; i++) await publish(`${s.prefix}.a`, { workflow_id: "ntkill", params: { n: String(i) } });
    writeFileSync(
      join(f.home, "nats-listeners.yml"),
      [
        "listeners:",
        "  - type: nats",
        "    name: jobs",
        `    servers: ${NATS_URL}`,
        `    stream: ${s.name}`,
        "    durable: cdktr",
        `    filter_subject: ${s.prefix}.a`,
        `    ack_wait_ms: ${ACK_WAIT_MS}`,
        "    trigger_timeout_ms: 1000",
        "    max_in_flight: 4",
        "    workflows: [ntkill]",
        "",
      ].join("\n"),
    );
    const runner = await startListeners(f, "nats-listeners.yml");
    assert.deepEqual(
      (runner.ready.listeners as { name: string; type: string }[]).map((x) => [x.name, x.type]),
      [["jobs", "nats"]],
    );
    await runner.waitForLine((_line, json) => json?.message === "nats message triggered a run");
    await runner.kill();
    const before = (await f.runs("ntkill")).length;
    assert.ok(before < 150, `killed mid-way (${before} runs)`);
    for (let i = 150; i < total; i++)
      await publish(`${s.prefix}.a`, { workflow_id: "ntkill", params: { n: String(i) } });
    const again = await startListeners(f, "nats-listeners.yml");
    // The messages in flight at the kill come back after the ack wait and are deduplicated.
    await waitFor(async () => (await unsettled(s.name)) === 0, { what: "every message settled", timeoutMs: 30_000 });
    const runs = await expectRunCount(f, "ntkill", total);
    assert.deepEqual(
      runs.map((r) => Number(r.params.n)).sort((a, b) => a - b),
      Array.from({ length: total }, (_, i) => i),
    );
    assert.deepEqual(await again.stop("SIGTERM"), { code: 0, signal: null });
  });

  test("reconnects after the connection to NATS is cut, and after its consumer is deleted", async () => {
    const s = await newStream();
    const proxy = new CuttableProxy({ host: "127.0.0.1", port: 4222 });
    await proxy.start();
    try {
      const l = await start(s.name, { servers: `nats://127.0.0.1:${proxy.port}` });
      await publish(`${s.prefix}.a`, { workflow_id: "ntcut", params: { n: "before" } });
      await waitFor(() => l.stats.acked === 1, { what: "the first ack" });
      await proxy.cut();
      await waitFor(() => !l.stats.consuming, { what: "the loss noticed" });
      await publish(`${s.prefix}.a`, { workflow_id: "ntcut", params: { n: "during" } });
      await new Promise((r) => setTimeout(r, 500));
      await proxy.start();
      await waitFor(() => l.stats.connections >= 2 && l.stats.acked === 2, {
        what: "a new connection and the message sent meanwhile",
        timeoutMs: 15_000,
      });
      // The durable consumer deleted under the listener: it is made again (from the stream's
      // start: the two messages come again and are recognised by their keys).
      await jsm.consumers.delete(s.name, "cdktr");
      await waitFor(() => l.stats.connections >= 3 && l.stats.consuming, {
        what: "the consumer made again",
        timeoutMs: 15_000,
      });
      await publish(`${s.prefix}.a`, { workflow_id: "ntcut", params: { n: "after" } });
      await waitFor(() => l.stats.acked === 5, { what: "2 redelivered + 1 new", timeoutMs: 15_000 });
      const runs = await expectRunCount(f, "ntcut", 3);
      assert.deepEqual(runs.map((r) => r.params.n).sort(), ["after", "before", "during"]);
    } finally {
      await proxy.cut();
    }
  });
});

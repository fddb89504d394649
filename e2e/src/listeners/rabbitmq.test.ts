/**
 * The RabbitMQ listener against the machine's RabbitMQ (127.0.0.1:5672, guest/guest) and a real
 * principal process. Every test uses its own queue names and deletes them.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { connect, type Channel, type ChannelModel, type Options } from "amqplib";
import { RabbitMqListener } from "@cdktr/events/rabbitmq";
import { cleanup, preparePrincipal, startPrincipal, waitFor, type PrincipalFixture } from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflows, requireServer } from "./helpers.js";
import { ListenerPool } from "./listener-pool.js";

const AMQP_URL = "amqp://guest:guest@127.0.0.1:5672";
const skip = await requireServer("RabbitMQ", 5672);

describe("rabbitmq listener", { skip }, () => {
  let f: PrincipalFixture;
  let conn: ChannelModel;
  let ch: Channel;
  const queues: string[] = [];
  const exchanges: string[] = [];
  const listeners = new ListenerPool<RabbitMqListener>();

  const newQueue = (): string => {
    const q = `cdktr-test-${randomUUID()}`;
    queues.push(q);
    return q;
  };
  const publish = (queue: string, body: unknown, props: Options.Publish = {}): void => {
    const content = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    ch.sendToQueue(queue, content, { persistent: true, ...props });
  };
  /** A dead-letter exchange for `queue` and the queue bound to it (both removed after the suite). */
  const deadLetters = async (queue: string): Promise<{ dlx: string; dlq: string }> => {
    const dlx = `${queue}.dlx`;
    const dlq = newQueue();
    exchanges.push(dlx);
    await ch.assertExchange(dlx, "fanout", { durable: false, autoDelete: false });
    await ch.assertQueue(dlq, { durable: false });
    await ch.bindQueue(dlq, dlx, "");
    return { dlx, dlq };
  };
  const ready = async (queue: string): Promise<number> => (await ch.checkQueue(queue)).messageCount;
  const start = async (
    queue: string,
    extra: Partial<ConstructorParameters<typeof RabbitMqListener>[0]> = {},
    port = f.ports.api,
  ): Promise<RabbitMqListener> => {
    const l = await listeners.start(
      new RabbitMqListener({
        principal: { host: "127.0.0.1", port },
        key: f.key("local-listeners"),
        url: AMQP_URL,
        queue,
        backoff: { initialMs: 200, maxMs: 1000 },
        triggerTimeoutMs: 1000,
        ...extra,
      }),
    );
    await waitFor(() => l.stats.consuming, { what: "the consumer", timeoutMs: 10_000 });
    return l;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: paramWorkflows("mq", "mq2", "mqbad", "mqdown", "mqok", "mqdenied", "mqmap"),
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    conn = await connect(AMQP_URL);
    ch = await conn.createChannel();
  });
  afterEach(() => listeners.stopAll());
  after(async () => {
    for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
    for (const x of exchanges) await ch.deleteExchange(x).catch(() => undefined);
    await conn.close();
    await cleanup();
  });

  test("a message triggers exactly one run with its params and is acknowledged", async () => {
    const queue = newQueue();
    const l = await start(queue);
    publish(queue, { workflow_id: "mq", params: { date: "2026-11-28" } }, { messageId: "msg-1" });
    const runs = await expectRunCount(f, "mq", 1);
    assert.deepEqual(runs[0]?.params, { date: "2026-11-28" });
    assert.equal(runs[0]?.source, "rabbitmq");
    assert.equal(runs[0]?.idempotencyKey, `amqp:${queue}:msg-1`);
    await waitFor(() => l.stats.acked === 1, { what: "the ack" });
    assert.equal(await ready(queue), 0);
  });

  test("a redelivered message (same message id, or same idempotency_key) never starts a second run", async () => {
    const queue = newQueue();
    const l = await start(queue);
    publish(queue, { workflow_id: "mq2", params: { n: "1" } }, { messageId: "same-id" });
    publish(queue, { workflow_id: "mq2", params: { n: "1" } }, { messageId: "same-id" });
    publish(queue, { workflow_id: "mq2", params: { n: "2" }, idempotency_key: "k-2" });
    publish(
      queue,
      { workflow_id: "mq2", params: { n: "2" }, idempotency_key: "k-2" },
      { messageId: "ignored-when-a-key-is-given" },
    );
    await waitFor(() => l.stats.acked === 4, { what: "4 acks" });
    const runs = await expectRunCount(f, "mq2", 2);
    assert.deepEqual(runs.map((r) => r.params.n).sort(), ["1", "2"]);
    assert.equal(await ready(queue), 0);
  });

  test("a message redelivered after a consumer died between trigger and ack does not start a second run", async () => {
    const queue = newQueue();
    await ch.assertQueue(queue, { durable: true });
    publish(queue, { workflow_id: "mq2", params: { n: "3" } }, { messageId: "crash-before-ack" });
    // A first consumer takes the message and triggers the run (as the listener does, with the
    // listeners' key: idempotency keys live in the scope of the key that sent them)...
    const crashed = await conn.createChannel();
    const taken = await waitFor(async () => (await crashed.get(queue, { noAck: false })) || undefined, {
      what: "the message",
    });
    const first = await f.connect({ key: f.key("local-listeners") }).runWorkflow({
      workflowId: "mq2",
      params: { n: "3" },
      idempotencyKey: `amqp:${queue}:crash-before-ack`,
      source: "rabbitmq",
    });
    assert.equal(taken.fields.redelivered, false);
    // ...then dies before acknowledging: the broker redelivers the message to the listener.
    await crashed.close();
    const l = await start(queue);
    await waitFor(() => l.stats.acked === 1, { what: "the redelivered message acked" });
    const runs = (await f.runs("mq2")).filter((r) => r.params.n === "3");
    assert.deepEqual(
      runs.map((r) => r.runId),
      [first.runId],
    );
    assert.equal(await ready(queue), 0);
  });

  test("poison messages are rejected to the dead-letter exchange, nothing runs, good messages still flow", async () => {
    const queue = newQueue();
    const { dlx, dlq } = await deadLetters(queue);
    const l = await start(queue, { deadLetterExchange: dlx, requireIdempotencyKey: true });
    const reasons: string[] = [];
    let refusedByPrincipal = 0;
    l.on("rejected", (r) => reasons.push(r.reason));
    l.on("triggered", (r) => {
      if (!r.success) refusedByPrincipal += 1;
    });
    const poison: unknown[] = [
      "{not json",
      Buffer.from([0xff, 0xfe, 0x00]),
      { params: { date: "x" } },
      { workflow_id: "mqbad", params: { date: { nested: 1 } } },
      { workflow_id: "mqbad", extra: true },
      { workflow_id: "no-such-workflow" },
      { workflow_id: "mqbad", params: { undeclared: "x" } },
    ];
    poison.forEach((p, i) => {
      publish(queue, p, { messageId: `poison-${i}` });
    });
    publish(queue, { workflow_id: "mqbad" }); // no message id, no key: refused by requireIdempotencyKey
    await waitFor(() => l.stats.rejected === poison.length + 1, { what: "every poison message rejected" });
    await waitFor(async () => (await ready(dlq)) === poison.length + 1, { what: "dead-lettered messages" });
    assert.equal(await ready(queue), 0, "nothing loops back into the queue");
    assert.equal((await f.runs("mqbad")).length, 0);
    // Turned away here (`rejected`: the metrics count it by reason) or refused by the principal.
    assert.equal(refusedByPrincipal, 2, "no-such-workflow and the undeclared param");
    assert.deepEqual(reasons.sort(), ["malformed", "malformed", "malformed", "malformed", "malformed", "no_key"]);
    publish(queue, { workflow_id: "mqbad", params: { date: "good" } }, { messageId: "good" });
    const runs = await expectRunCount(f, "mqbad", 1);
    assert.deepEqual(runs[0]?.params, { date: "good" });
  });

  test("with a `workflows` allow-list, a message for another workflow is dead-lettered and never triggered", async () => {
    const queue = newQueue();
    const { dlx, dlq } = await deadLetters(queue);
    const l = await start(queue, { deadLetterExchange: dlx, workflows: ["mqok"] });
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    publish(queue, { workflow_id: "mqdenied", params: { date: "x" } }, { messageId: "denied-1" });
    publish(queue, { workflow_id: "mqdenied", idempotency_key: "denied-2" });
    publish(queue, { workflow_id: "mqok", params: { date: "allowed" } }, { messageId: "allowed-1" });
    await waitFor(() => l.stats.rejected === 2 && l.stats.acked === 1, { what: "2 rejections and 1 ack" });
    assert.deepEqual(reasons, ["not_allowed", "not_allowed"]);
    await waitFor(async () => (await ready(dlq)) === 2, { what: "the refused messages dead-lettered" });
    const dead = await ch.get(dlq, { noAck: true });
    assert.ok(dead !== false);
    assert.equal((JSON.parse(dead.content.toString()) as { workflow_id: string }).workflow_id, "mqdenied");
    assert.equal(dead.properties.messageId, "denied-1");
    assert.equal(await ready(queue), 0);
    const runs = await expectRunCount(f, "mqok", 1);
    assert.deepEqual(runs[0]?.params, { date: "allowed" });
    assert.equal((await f.runs("mqdenied")).length, 0, "the principal never saw the refused workflow");
  });

  test("with `workflow` and a mapping, any JSON message becomes one run with mapped params; unmappable ones are dead-lettered", async () => {
    const queue = newQueue();
    const { dlx, dlq } = await deadLetters(queue);
    const l = await start(queue, {
      deadLetterExchange: dlx,
      workflow: "mqmap",
      mapping: {
        params: { n: "fixed" },
        paramsMap: { date: "body.order.day", paths: "join(',', body.order.items[].sku)" },
        when: "body.kind == 'order'",
        idempotencyKey: "to_string(body.order.id)",
      },
    });
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    const order = {
      kind: "order",
      order: { id: 42, day: "2026-12-02", items: [{ sku: "a" }, { sku: "b; rm -rf /" }] },
    };
    publish(queue, order);
    publish(queue, order); // the same order again: the key from body.order.id dedupes it
    publish(queue, { kind: "refund", order: { id: 43 } }); // filtered out by `when`: acked, no run
    publish(queue, { kind: "order", order: { id: 44, items: [] } }); // no day: unmapped, dead-lettered
    await waitFor(() => l.stats.acked === 2 && l.stats.filtered === 1 && l.stats.rejected === 1, {
      what: "2 acks, 1 filtered, 1 rejected",
    });
    assert.deepEqual(reasons, ["unmapped"]);
    const runs = await expectRunCount(f, "mqmap", 1);
    assert.deepEqual(runs[0]?.params, { n: "fixed", date: "2026-12-02", paths: "a,b; rm -rf /" });
    assert.equal(runs[0]?.idempotencyKey, `amqp:${queue}:42`);
    await waitFor(async () => (await ready(dlq)) === 1, { what: "the unmappable message dead-lettered" });
    assert.equal(await ready(queue), 0);
  });

  test("principal down: the message stays in the queue, then triggers exactly one run when it is back", async () => {
    // Ports picked up front: the listener is pointed at the principal before it runs.
    const down = await preparePrincipal({
      workflows: paramWorkflows("mqdown"),
      ports: "reserved",
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    try {
      const queue = newQueue();
      const l = await start(queue, { key: down.key("local-listeners") }, down.ports.api);
      publish(queue, { workflow_id: "mqdown", params: { date: "later" } }, { messageId: "while-down" });
      await waitFor(() => l.stats.requeued >= 1, { what: "a requeue", timeoutMs: 10_000 });
      await waitFor(async () => (await ready(queue)) === 1 && l.stats.paused, {
        what: "the message back in the queue while paused",
      });
      assert.equal(l.stats.acked, 0);
      await down.start();
      await waitFor(() => l.stats.acked === 1, { what: "the ack once the principal is back", timeoutMs: 15_000 });
      const runs = await expectRunCount(down, "mqdown", 1);
      assert.deepEqual(runs[0]?.params, { date: "later" });
      assert.equal(await ready(queue), 0);
    } finally {
      await down.stop();
    }
  });

  test("reconnects after the broker cancels the consumer (queue deleted) and goes on consuming", async () => {
    const queue = newQueue();
    const l = await start(queue);
    await ch.deleteQueue(queue);
    await waitFor(() => l.stats.connections >= 2 && l.stats.consuming, {
      what: "a new connection and consumer",
      timeoutMs: 10_000,
    });
    publish(queue, { workflow_id: "mq", params: { date: "after-reconnect" } }, { messageId: "after" });
    await waitFor(async () => (await f.runs("mq")).some((r) => r.params.date === "after-reconnect"), {
      what: "the run after reconnect",
    });
  });
});

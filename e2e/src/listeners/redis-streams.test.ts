/**
 * The Redis Streams listener against the machine's Redis (127.0.0.1:6379) and a real principal
 * process. Every test uses its own stream names and deletes them.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { Redis } from "ioredis";
import { RedisStreamsListener } from "@cdktr/events/redis";
import { createListeners, parseListenersConfig } from "@cdktr/listeners";
import { noopLogger } from "@cdktr/protocol";
import { cleanup, preparePrincipal, startPrincipal, waitFor, type PrincipalFixture } from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflows, requireServer } from "./helpers.js";
import { ListenerPool } from "./listener-pool.js";

const REDIS_URL = "redis://127.0.0.1:6379";
const GROUP = "cdktr";
const skip = await requireServer("Redis", 6379);

type Options = ConstructorParameters<typeof RedisStreamsListener>[0];

describe("redis streams listener", { skip }, () => {
  let f: PrincipalFixture;
  let redis: Redis;
  const keys: string[] = [];
  const listeners = new ListenerPool<RedisStreamsListener>();

  const newStream = (): string => {
    const s = `cdktr-test-${randomUUID()}`;
    keys.push(s);
    return s;
  };
  const add = async (stream: string, ...fields: (string | Buffer)[]): Promise<string> =>
    String(await redis.call("XADD", stream, "*", ...fields));
  const message = (stream: string, body: unknown): Promise<string> =>
    add(stream, "message", typeof body === "string" ? body : JSON.stringify(body));
  /** Entries of the group not acknowledged yet (any consumer). */
  const pendingCount = async (stream: string): Promise<number> => {
    const summary = (await redis.call("XPENDING", stream, GROUP)) as [number, ...unknown[]];
    return summary[0];
  };
  /** The entries of a stream as `{id, fields}`. */
  const entries = async (stream: string): Promise<{ id: string; fields: Record<string, string> }[]> => {
    const rows = (await redis.call("XRANGE", stream, "-", "+")) as [string, string[]][];
    return rows.map(([id, flat]) => {
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
      return { id, fields };
    });
  };
  const create = (stream: string, extra: Partial<Options> = {}, principal = f): RedisStreamsListener =>
    listeners.track(
      new RedisStreamsListener({
        principal: { host: "127.0.0.1", port: principal.ports.api },
        key: principal.key("local-listeners"),
        url: REDIS_URL,
        stream,
        group: GROUP,
        consumer: "listener-a",
        startId: "0",
        blockMs: 200,
        backoff: { initialMs: 200, maxMs: 1000 },
        triggerTimeoutMs: 1000,
        ...extra,
      }),
    );
  const start = async (stream: string, extra: Partial<Options> = {}, principal = f): Promise<RedisStreamsListener> => {
    const l = create(stream, extra, principal);
    await l.start();
    await waitFor(() => l.stats.consuming, { what: "the listener reading", timeoutMs: 10_000 });
    return l;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: paramWorkflows("rs", "rs2", "rsbad", "rsok", "rsdenied", "rsmap", "rsmax", "rscrash", "rsyaml"),
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    redis = new Redis(REDIS_URL, { lazyConnect: true, protocol: 2 });
    await redis.connect();
  });
  afterEach(() => listeners.stopAll());
  after(async () => {
    if (keys.length > 0) await redis.call("DEL", ...keys).catch(() => undefined);
    redis.disconnect();
    await cleanup();
  });

  test("a trigger message entry becomes exactly one run with its params and is acknowledged", async () => {
    const stream = newStream();
    const l = await start(stream);
    const id = await message(stream, { workflow_id: "rs", params: { date: "2026-11-28" } });
    const runs = await expectRunCount(f, "rs", 1);
    assert.deepEqual(runs[0]?.params, { date: "2026-11-28" });
    assert.equal(runs[0]?.source, "redis");
    assert.equal(runs[0]?.idempotencyKey, `redis:${stream}:${id}`, "the entry id is the key");
    await waitFor(() => l.stats.acked === 1, { what: "the ack" });
    assert.equal(await pendingCount(stream), 0);
  });

  test("with `workflow` and a mapping, any entry becomes one run with mapped params; filtered entries are acked, unmappable ones parked", async () => {
    const stream = newStream();
    const dls = newStream();
    const l = await start(stream, {
      deadLetterStream: dls,
      workflow: "rsmap",
      mapping: {
        params: { n: "fixed" },
        paramsMap: { date: "body.order.day", paths: "join(',', body.order.items[].sku)" },
        when: "fields.kind == 'order'",
        idempotencyKey: "to_string(body.order.id)",
      },
    });
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    const order = { order: { id: 42, day: "2026-12-02", items: [{ sku: "a" }, { sku: "b; rm -rf /" }] } };
    await add(stream, "kind", "order", "message", JSON.stringify(order));
    await add(stream, "kind", "order", "message", JSON.stringify(order)); // same order id: one run
    await add(stream, "kind", "refund", "message", JSON.stringify({ order: { id: 43 } })); // `when` false
    const unmappable = await add(stream, "kind", "order", "message", JSON.stringify({ order: { id: 44 } }));
    await waitFor(() => l.stats.acked === 2 && l.stats.filtered === 1 && l.stats.parked === 1, {
      what: "2 acks, 1 filtered, 1 parked",
    });
    assert.deepEqual(reasons, ["unmapped"]);
    const runs = await expectRunCount(f, "rsmap", 1);
    assert.deepEqual(runs[0]?.params, { n: "fixed", date: "2026-12-02", paths: "a,b; rm -rf /" });
    assert.equal(runs[0]?.idempotencyKey, `redis:${stream}:42`);
    const parked = await entries(dls);
    assert.equal(parked.length, 1);
    assert.equal(parked[0]?.fields.cdktr_id, unmappable);
    assert.equal(parked[0]?.fields.cdktr_reason, "unmapped");
    assert.equal(parked[0]?.fields.kind, "order", "the original fields are kept");
    assert.equal(await pendingCount(stream), 0);
  });

  test("a trigger message's idempotency_key is the run's key: the same key twice is one run", async () => {
    const stream = newStream();
    const l = await start(stream);
    await message(stream, { workflow_id: "rs2", params: { n: "1" }, idempotency_key: "k-1" });
    await message(stream, { workflow_id: "rs2", params: { n: "1" }, idempotency_key: "k-1" });
    await waitFor(() => l.stats.acked === 2, { what: "2 acks" });
    const runs = await expectRunCount(f, "rs2", 1);
    assert.equal(runs[0]?.idempotencyKey, `redis:${stream}:k-1`);
  });

  test("poison entries are parked in the dead-letter stream and acknowledged, never redelivered; good ones flow", async () => {
    const stream = newStream();
    const dls = newStream();
    const l = await start(stream, { deadLetterStream: dls });
    const reasons: string[] = [];
    let refusedByPrincipal = 0;
    l.on("rejected", (r) => reasons.push(r.reason));
    l.on("triggered", (r) => {
      if (!r.success) refusedByPrincipal += 1;
    });
    const poison: string[] = [
      await message(stream, "{not json"),
      await add(stream, "message", Buffer.from([0xff, 0xfe, 0x00])),
      await message(stream, { params: { date: "x" } }),
      await message(stream, { workflow_id: "rsbad", params: { date: { nested: 1 } } }),
      await add(stream, "other", "field"), // no `message` field
      await add(stream, "message", '{"workflow_id":"rsbad"}', "message", '{"workflow_id":"rsbad"}'),
      await message(stream, { workflow_id: "no-such-workflow" }),
      await message(stream, { workflow_id: "rsbad", params: { undeclared: "x" } }),
    ];
    const good = await message(stream, { workflow_id: "rsbad", params: { date: "good" } });
    await waitFor(() => l.stats.parked === poison.length && l.stats.acked === 1, {
      what: "every poison entry parked and the good one acked",
    });
    assert.equal(l.stats.rejected, poison.length);
    const runs = await expectRunCount(f, "rsbad", 1);
    assert.deepEqual(runs[0]?.params, { date: "good" });
    assert.equal(runs[0]?.idempotencyKey, `redis:${stream}:${good}`);
    // Turned away here (`rejected`: the metrics count it by reason) or refused by the principal.
    assert.equal(refusedByPrincipal, 2, "no-such-workflow and the undeclared param");
    assert.deepEqual(reasons.sort(), Array(6).fill("malformed"));
    const parked = await entries(dls);
    assert.deepEqual(
      parked.map((e) => e.fields.cdktr_id),
      poison,
      "each poison entry once, in order",
    );
    assert.deepEqual(
      parked.map((e) => e.fields.cdktr_reason),
      ["malformed", "malformed", "malformed", "malformed", "malformed", "malformed", "refused", "refused"],
    );
    assert.match(parked[6]?.fields.cdktr_error ?? "", /WORKFLOW_NOT_FOUND/);
    assert.equal(parked[0]?.fields.message, "{not json");
    assert.equal(parked[0]?.fields.cdktr_stream, stream);
    assert.equal(await pendingCount(stream), 0, "nothing left pending: no redelivery");
    // A restart with the same consumer finds nothing to handle again.
    await l.stop();
    const again = await start(stream, { deadLetterStream: dls });
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual([again.stats.rejected, again.stats.acked], [0, 0]);
    assert.equal((await entries(dls)).length, poison.length);
  });

  test("with a `workflows` allow-list, an entry for another workflow is parked and never triggered", async () => {
    const stream = newStream();
    const dls = newStream();
    const l = await start(stream, { deadLetterStream: dls, workflows: ["rsok"] });
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    const denied = await message(stream, { workflow_id: "rsdenied", params: { date: "x" } });
    await message(stream, { workflow_id: "rsok", params: { date: "allowed" } });
    await waitFor(() => l.stats.parked === 1 && l.stats.acked === 1, { what: "1 parked and 1 ack" });
    assert.deepEqual(reasons, ["not_allowed"]);
    const parked = await entries(dls);
    assert.deepEqual(
      parked.map((e) => [e.fields.cdktr_id, e.fields.cdktr_reason]),
      [[denied, "not_allowed"]],
    );
    const runs = await expectRunCount(f, "rsok", 1);
    assert.deepEqual(runs[0]?.params, { date: "allowed" });
    assert.equal((await f.runs("rsdenied")).length, 0, "the principal never saw the refused workflow");
    assert.equal(await pendingCount(stream), 0);
  });

  test("an entry delivered more than `maxDeliveries` times is parked without a run", async () => {
    const stream = newStream();
    const dls = newStream();
    await redis.call("XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM");
    const id = await message(stream, { workflow_id: "rsmax", params: { date: "too-often" } });
    // Three deliveries to this consumer without an ack (a listener that crashed on it three times).
    await redis.call("XREADGROUP", "GROUP", GROUP, "listener-a", "COUNT", 10, "STREAMS", stream, ">");
    await redis.call("XREADGROUP", "GROUP", GROUP, "listener-a", "COUNT", 10, "STREAMS", stream, "0");
    await redis.call("XREADGROUP", "GROUP", GROUP, "listener-a", "COUNT", 10, "STREAMS", stream, "0");
    const l = await start(stream, { deadLetterStream: dls, maxDeliveries: 3 });
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    await waitFor(() => l.stats.parked === 1, { what: "the entry parked" });
    const parked = await entries(dls);
    assert.deepEqual(
      parked.map((e) => [e.fields.cdktr_id, e.fields.cdktr_reason]),
      [[id, "max_deliveries"]],
    );
    assert.match(parked[0]?.fields.cdktr_error ?? "", /delivered 4 times/);
    assert.equal(await pendingCount(stream), 0);
    // The next entry (first delivery) is handled normally.
    await message(stream, { workflow_id: "rsmax", params: { date: "once" } });
    const runs = await expectRunCount(f, "rsmax", 1);
    assert.deepEqual(runs[0]?.params, { date: "once" });
  });

  test("principal down: entries stay pending and reading stops, then each triggers exactly one run when it is back", async () => {
    // Ports picked up front: the listener is pointed at the principal before it runs.
    const down = await preparePrincipal({
      workflows: paramWorkflows("rsdown"),
      ports: "reserved",
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    try {
      const stream = newStream();
      const sent = ["a", "b", "c", "d", "e"];
      for (const d of sent) await message(stream, { workflow_id: "rsdown", params: { date: d } });
      // Pauses (2.5 to 5 s) longer than claimIdleMs (2 s): the listener must keep its entries claimed.
      const l = create(stream, { count: 2, claimIdleMs: 2000, backoff: { initialMs: 5000, maxMs: 5000 } }, down);
      await l.start();
      await waitFor(() => l.stats.retried >= 4 && l.stats.paused, {
        what: "two attempts of the first batch while paused",
        timeoutMs: 15_000,
      });
      assert.equal(l.stats.acked, 0);
      assert.equal(l.stats.consuming, false);
      // Reading stopped: only the first batch (count: 2) was read; the rest waits in the stream.
      const summary = (await redis.call("XPENDING", stream, GROUP)) as [number, ...unknown[]];
      assert.equal(summary[0], 2, "only the batch in hand is pending");
      // Held by this consumer and not idle, though longer than claimIdleMs passed: no one may claim it.
      const idle = (await redis.call("XPENDING", stream, GROUP, "IDLE", 2000, "-", "+", 10)) as unknown[];
      assert.deepEqual(idle, []);
      // Attempts while paused are not deliveries: an outage never pushes an entry to max_deliveries.
      const rows = (await redis.call("XPENDING", stream, GROUP, "-", "+", 10)) as [string, string, number, number][];
      assert.deepEqual(
        rows.map((r) => [r[1], r[3]]),
        [
          ["listener-a", 1],
          ["listener-a", 1],
        ],
      );
      await down.start();
      await waitFor(() => l.stats.acked === sent.length, {
        what: "every entry acked once the principal is back",
        timeoutMs: 20_000,
      });
      const runs = await expectRunCount(down, "rsdown", sent.length);
      assert.deepEqual(runs.map((r) => r.params.date).sort(), sent);
      assert.equal(l.stats.paused, false);
      assert.equal(l.stats.consuming, true);
      assert.equal(l.stats.rejected, 0, "no entry parked after the outage");
      assert.equal(await pendingCount(stream), 0);
    } finally {
      await down.stop();
    }
  });

  test("an entry read by a consumer that died without acking is claimed after `claimIdleMs` and triggers exactly one run", async () => {
    const stream = newStream();
    await redis.call("XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM");
    const id = await message(stream, { workflow_id: "rscrash", params: { date: "orphan" } });
    // Another consumer reads it, then dies before it acknowledges.
    const read = (await redis.call(
      "XREADGROUP",
      "GROUP",
      GROUP,
      "dead-consumer",
      "COUNT",
      10,
      "STREAMS",
      stream,
      ">",
    )) as unknown[];
    assert.equal(read.length, 1);
    const readAt = Date.now();
    const l = await start(stream, { claimIdleMs: 1500, claimIntervalMs: 200 });
    await waitFor(() => l.stats.acked === 1, { what: "the claimed entry acked", timeoutMs: 10_000 });
    assert.ok(Date.now() - readAt >= 1500, "not claimed before it was idle for claimIdleMs");
    assert.equal(l.stats.claimed, 1);
    const runs = await expectRunCount(f, "rscrash", 1);
    assert.equal(runs[0]?.idempotencyKey, `redis:${stream}:${id}`);
    assert.equal(await pendingCount(stream), 0);
  });

  test("a listener restarted with the same consumer name re-handles its own pending entries without a second run", async () => {
    const stream = newStream();
    await redis.call("XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM");
    const id = await message(stream, { workflow_id: "rscrash", params: { date: "crash-before-ack" } });
    // The listener's previous life read the entry and triggered the run (as the listener does, with
    // the listeners' key: idempotency keys live in the scope of the key that sent them)...
    await redis.call("XREADGROUP", "GROUP", GROUP, "listener-b", "COUNT", 10, "STREAMS", stream, ">");
    const first = await f.connect({ key: f.key("local-listeners") }).runWorkflow({
      workflowId: "rscrash",
      params: { date: "crash-before-ack" },
      idempotencyKey: `redis:${stream}:${id}`,
      source: "redis",
    });
    // ...then died before XACK. The restarted listener (claims far off) handles it first.
    const l = await start(stream, { consumer: "listener-b", claimIdleMs: 600_000 });
    await waitFor(() => l.stats.acked === 1, { what: "the pending entry acked" });
    assert.equal(l.stats.claimed, 0);
    const runs = (await f.runs("rscrash")).filter((r) => r.params.date === "crash-before-ack");
    assert.deepEqual(
      runs.map((r) => r.runId),
      [first.runId],
    );
    assert.equal(await pendingCount(stream), 0);
  });

  test("reconnects after its connections are killed or the stream is deleted, and goes on reading", async () => {
    const stream = newStream();
    const l = await start(stream, { consumer: "listener-kill" });
    const list = String(await redis.call("CLIENT", "LIST"));
    const ids = [...list.matchAll(/^id=(\d+) .*name=cdktr:listener-kill:/gm)].map((m) => m[1] as string);
    assert.equal(ids.length, 2, "a command connection and a dedicated read connection");
    for (const id of ids) await redis.call("CLIENT", "KILL", "ID", id);
    await waitFor(() => l.stats.connections >= 2 && l.stats.consuming, {
      what: "a new connection",
      timeoutMs: 10_000,
    });
    await message(stream, { workflow_id: "rs", params: { date: "after-kill" } });
    await waitFor(async () => (await f.runs("rs")).some((r) => r.params.date === "after-kill"), {
      what: "the run after the reconnect",
    });
    await redis.call("DEL", stream);
    await waitFor(() => l.stats.connections >= 3 && l.stats.consuming, {
      what: "the group made again",
      timeoutMs: 10_000,
    });
    await message(stream, { workflow_id: "rs", params: { date: "after-delete" } });
    await waitFor(async () => (await f.runs("rs")).some((r) => r.params.date === "after-delete"), {
      what: "the run after the stream was deleted",
    });
  });

  test("`type: redis_streams` in a listeners YAML file: the URL from url_env, entry fields mapped into one workflow, a stable consumer name", async () => {
    const stream = newStream();
    const config = parseListenersConfig(
      `listeners:\n  - type: redis_streams\n    name: orders\n    url_env: TEST_REDIS_URL\n    stream: ${stream}\n    start_id: "0"\n    block_ms: 200\n    workflow: rsyaml\n    params_map: {date: fields.day}\n    idempotency_key: fields.order_id\n`,
      "listeners.yml",
      { TEST_REDIS_URL: REDIS_URL },
    );
    const app = createListeners(config, {
      logger: noopLogger,
      principal: f.connect({ key: f.key("local-listeners") }),
    });
    await app.start();
    try {
      await add(stream, "day", "2026-12-03", "order_id", "7"); // no `message` field: the mapping reads `fields`
      await add(stream, "day", "2026-12-03", "order_id", "7");
      const runs = await expectRunCount(f, "rsyaml", 1);
      assert.deepEqual(runs[0]?.params, { date: "2026-12-03" });
      assert.equal(runs[0]?.idempotencyKey, `redis:${stream}:7`);
      await waitFor(async () => (await pendingCount(stream)) === 0, { what: "both entries acked" });
      const consumers = (await redis.call("XINFO", "CONSUMERS", stream, GROUP)) as unknown[][];
      assert.deepEqual(
        consumers.map((c) => c[1]),
        [`${hostname()}-orders`],
      );
    } finally {
      await app.stop();
    }
  });
});

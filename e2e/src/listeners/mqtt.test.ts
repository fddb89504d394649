/**
 * The MQTT listener against the machine's Mosquitto (127.0.0.1:1883, anonymous) and a real
 * principal process. Every test uses its own topics (`cdktr-test/<uuid>/...`) and client ids, and
 * the suite removes the persistent sessions and retained messages it made.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connectAsync, type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import { MqttListener, type MqttListenerOptions } from "@cdktr/events/mqtt";
import type { ClientKey } from "@cdktr/protocol";
import {
  cleanup,
  preparePrincipal,
  startListeners,
  startPrincipal,
  waitFor,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflows, requireServer } from "./helpers.js";
import { ListenerPool } from "./listener-pool.js";

const MQTT_URL = "mqtt://127.0.0.1:1883";
const skip = await requireServer("Mosquitto", 1883);

/** A message the test client received: its topic, payload text and user properties. */
interface Received {
  topic: string;
  text: string;
  userProperties: Record<string, string | string[]>;
}

describe("mqtt listener", { skip }, () => {
  let f: PrincipalFixture;
  let pub: MqttClient;
  const clientIds: string[] = [];
  const retained: string[] = [];
  const clients: MqttClient[] = [];
  const listeners = new ListenerPool<MqttListener>();

  const newBase = (): string => `cdktr-test/${randomUUID()}`;
  const newClientId = (): string => {
    const id = `cdktr-test-${randomUUID()}`;
    clientIds.push(id);
    return id;
  };
  const client = async (options: IClientOptions = {}): Promise<MqttClient> => {
    const c = await connectAsync(MQTT_URL, { protocolVersion: 5, reconnectPeriod: 0, ...options }, false);
    clients.push(c);
    return c;
  };
  const publish = async (
    topic: string,
    body: unknown,
    options: { userProperties?: Record<string, string>; retain?: boolean } = {},
  ): Promise<void> => {
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    if (options.retain === true) retained.push(topic);
    await pub.publishAsync(topic, payload, {
      qos: 1,
      retain: options.retain ?? false,
      ...(options.userProperties !== undefined ? { properties: { userProperties: options.userProperties } } : {}),
    });
  };
  /** Subscribe a plain client to `topic` and collect what it receives. */
  const collect = async (topic: string): Promise<Received[]> => {
    const got: Received[] = [];
    const c = await client({ clean: true });
    c.on("message", (t: string, payload: Buffer, packet: IPublishPacket) => {
      got.push({ topic: t, text: payload.toString("utf8"), userProperties: packet.properties?.userProperties ?? {} });
    });
    await c.subscribeAsync(topic, { qos: 1 });
    return got;
  };
  const start = async (
    extra: Partial<MqttListenerOptions> & { topics: string[] },
    principal: { port: number; key: ClientKey | null } = { port: f.ports.api, key: f.key("local-listeners") },
  ): Promise<MqttListener> => {
    const l = await listeners.start(
      new MqttListener({
        principal: { host: "127.0.0.1", port: principal.port },
        key: principal.key,
        url: MQTT_URL,
        clientId: extra.clientId ?? newClientId(),
        sessionExpirySeconds: 600,
        backoff: { initialMs: 200, maxMs: 1000 },
        triggerTimeoutMs: 1000,
        ...extra,
      }),
    );
    await waitFor(() => l.stats.subscribed, { what: "the subscriptions", timeoutMs: 10_000 });
    return l;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: paramWorkflows("mq", "mqmap", "mqok", "mqbad", "mqdenied", "mqtake", "mqyaml"),
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    pub = await client({ clean: true });
  });
  afterEach(() => listeners.stopAll());
  after(async () => {
    // Remove the persistent sessions (a clean start with no expiry) and the retained messages.
    for (const clientId of clientIds) {
      const c = await connectAsync(
        MQTT_URL,
        { protocolVersion: 5, clientId, clean: true, reconnectPeriod: 0, properties: { sessionExpiryInterval: 0 } },
        false,
      ).catch(() => null);
      await c?.endAsync();
    }
    for (const topic of retained) await pub.publishAsync(topic, "", { qos: 1, retain: true });
    for (const c of clients) await c.endAsync().catch(() => undefined);
    await cleanup();
  });

  test("with `workflow` and a mapping on a wildcard subscription, a message becomes exactly one run with mapped params", async () => {
    const base = newBase();
    // Published before the listener exists: retained, it is delivered at the first subscription
    // with `retain` true, which the mapping's `when` leaves out.
    await publish(`${base}/sensors/s9/alarm`, { level: "high", id: "old", day: "2000-01-01" }, { retain: true });
    const l = await start({
      topics: [`${base}/sensors/+/alarm`],
      workflow: "mqmap",
      mapping: {
        paramsMap: { date: "body.day", paths: "topic", n: "user_properties.site" },
        when: "body.level == 'high' && !retain",
        idempotencyKey: "body.id",
      },
    });
    const alarm = { level: "high", id: "a-1", day: "2026-12-02" };
    await publish(`${base}/sensors/s1/alarm`, alarm, { userProperties: { site: "north" } });
    await publish(`${base}/sensors/s1/alarm`, alarm, { userProperties: { site: "north" } }); // same key: same run
    await publish(`${base}/sensors/s2/alarm`, { level: "low", id: "a-2", day: "2026-12-02" }); // filtered by `when`
    await publish(`${base}/sensors/s1/status`, { level: "high", id: "a-3", day: "2026-12-02" }); // not subscribed
    await waitFor(() => l.stats.acked === 2 && l.stats.filtered === 2, { what: "2 acks and 2 filtered" });
    const runs = await expectRunCount(f, "mqmap", 1);
    assert.deepEqual(runs[0]?.params, { date: "2026-12-02", paths: `${base}/sensors/s1/alarm`, n: "north" });
    assert.equal(runs[0]?.idempotencyKey, `mqtt:${base}/sensors/s1/alarm:a-1`);
    assert.equal(runs[0]?.source, "mqtt");
    assert.equal(l.stats.rejected, 0);
  });

  test("a trigger message published twice with one idempotency_key starts one run; one without a key gets its own", async () => {
    const base = newBase();
    const l = await start({ topics: [`${base}/orders/#`] });
    const order = { workflow_id: "mq", params: { date: "d1" }, idempotency_key: "order-1" };
    await publish(`${base}/orders/eu/1`, order);
    await publish(`${base}/orders/eu/1`, order);
    await publish(`${base}/orders`, { workflow_id: "mq", params: { date: "d2" } }); // `#` matches the parent too
    await waitFor(() => l.stats.acked === 3, { what: "3 acks" });
    const runs = await expectRunCount(f, "mq", 2);
    const byDate = new Map(runs.map((r) => [r.params.date, r]));
    assert.equal(byDate.get("d1")?.idempotencyKey, `mqtt:${base}/orders/eu/1:order-1`);
    assert.match(byDate.get("d2")?.idempotencyKey ?? "", new RegExp(`^mqtt:${base}/orders:auto:`));
  });

  test("poison messages and workflows outside the allow-list are parked on the dead-letter topic, never redelivered; good ones flow", async () => {
    const base = newBase();
    const deadTopic = `${base}/dead`;
    const dead = await collect(deadTopic);
    const clientId = newClientId();
    const options = {
      clientId,
      topics: [`${base}/in/#`],
      deadLetterTopic: deadTopic,
      workflows: ["mqok", "mqbad"],
      requireIdempotencyKey: true,
    };
    const l = await start(options);
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    await publish(`${base}/in/1`, "{not json");
    await publish(`${base}/in/2`, Buffer.from([0xff, 0xfe, 0x00]));
    await publish(
      `${base}/in/3`,
      { workflow_id: "mqdenied", idempotency_key: "denied-1" },
      { userProperties: { a: "b" } },
    );
    await publish(`${base}/in/4`, { workflow_id: "mqok", params: { date: "no key" } });
    await publish(`${base}/in/5`, { workflow_id: "mqbad", params: { undeclared: "x" }, idempotency_key: "bad-1" });
    await publish(`${base}/in/6`, { workflow_id: "mqok", params: { date: "good" }, idempotency_key: "good-1" });
    await waitFor(() => l.stats.rejected === 5 && l.stats.acked === 1, { what: "5 parked and 1 acked" });
    await waitFor(() => dead.length === 5, { what: "5 messages on the dead-letter topic" });
    assert.deepEqual(reasons.sort(), ["malformed", "malformed", "no_key", "not_allowed"]);
    const byTopic = new Map(dead.map((d) => [d.userProperties["cdktr-topic"], d]));
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((i) => byTopic.get(`${base}/in/${i}`)?.userProperties["cdktr-reason"]),
      ["malformed", "malformed", "not_allowed", "no_key", "refused"],
    );
    const denied = byTopic.get(`${base}/in/3`);
    assert.deepEqual(JSON.parse(denied?.text ?? "null"), { workflow_id: "mqdenied", idempotency_key: "denied-1" });
    assert.equal(denied?.userProperties.a, "b", "the message's own user properties are kept");
    assert.match(String(denied?.userProperties["cdktr-error"]), /mqdenied is not in this listener's workflows/);
    assert.equal(byTopic.get(`${base}/in/5`)?.userProperties["cdktr-code"], "INVALID_PARAMS");
    assert.equal(dead[0]?.topic, deadTopic);
    const runs = await expectRunCount(f, "mqok", 1);
    assert.deepEqual(runs[0]?.params, { date: "good" });
    assert.equal((await f.runs("mqbad")).length, 0);
    assert.equal((await f.runs("mqdenied")).length, 0, "the principal never saw the refused workflow");

    // The same session again: the broker has nothing left to redeliver (every message was acked).
    await listeners.stopAll();
    const again = await start(options);
    await publish(`${base}/in/7`, { workflow_id: "mqok", params: { date: "after" }, idempotency_key: "good-2" });
    await waitFor(() => again.stats.acked === 1, { what: "the new message acked" });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(again.stats.rejected, 0, "no parked message came back");
    assert.equal(dead.length, 5);
    await expectRunCount(f, "mqok", 2);
  });

  test("principal down: messages wait unacknowledged (released and redelivered over reconnects), then each triggers once when it is back", async () => {
    const down = await preparePrincipal({
      workflows: paramWorkflows("mqdown"),
      ports: "reserved",
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    try {
      const base = newBase();
      // keepalive 4 s: a message is held at most 2 s, then released to the broker over a reconnect.
      const l = await start(
        { topics: [`${base}/#`], keepaliveSeconds: 4, triggerTimeoutMs: 500 },
        { port: down.ports.api, key: down.key("local-listeners") },
      );
      for (const n of ["1", "2", "3"])
        await publish(`${base}/jobs`, { workflow_id: "mqdown", params: { n }, idempotency_key: `job-${n}` });
      await waitFor(() => l.stats.retrying >= 1 && l.stats.paused, { what: "a held message", timeoutMs: 10_000 });
      await waitFor(() => l.stats.connections >= 2, {
        what: "the held message released and the connection reopened",
        timeoutMs: 15_000,
      });
      assert.equal(l.stats.acked, 0, "nothing acknowledged while the principal is down");
      await down.start();
      await waitFor(() => l.stats.acked === 3, { what: "3 acks once the principal is back", timeoutMs: 20_000 });
      const runs = await expectRunCount(down, "mqdown", 3);
      assert.deepEqual(runs.map((r) => r.params.n).sort(), ["1", "2", "3"]);
      assert.equal(l.stats.paused, false);
      assert.equal(l.stats.rejected, 0);
    } finally {
      await down.stop();
    }
  });

  test("stopped before acknowledging, restarted with the same client id: the unacked message and those published meanwhile each trigger once", async () => {
    const down = await preparePrincipal({
      workflows: paramWorkflows("mqrestart"),
      ports: "reserved",
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    try {
      const base = newBase();
      const clientId = newClientId();
      const principal = { port: down.ports.api, key: down.key("local-listeners") };
      const first = await start({ clientId, topics: [`${base}/#`] }, principal);
      await publish(`${base}/a`, { workflow_id: "mqrestart", params: { n: "1" }, idempotency_key: "r-1" });
      await waitFor(() => first.stats.retrying >= 1, { what: "the trigger failing", timeoutMs: 10_000 });
      await listeners.stopAll();
      assert.equal(first.stats.acked, 0);
      // Nobody is connected: the broker queues these in the session.
      await publish(`${base}/b`, { workflow_id: "mqrestart", params: { n: "2" }, idempotency_key: "r-2" });
      await publish(`${base}/a`, { workflow_id: "mqrestart", params: { n: "3" }, idempotency_key: "r-3" });
      await down.start();
      const second = await start({ clientId, topics: [`${base}/#`] }, principal);
      await waitFor(() => second.stats.acked === 3, { what: "3 acks after the restart", timeoutMs: 15_000 });
      const runs = await expectRunCount(down, "mqrestart", 3);
      assert.deepEqual(runs.map((r) => r.params.n).sort(), ["1", "2", "3"]);
      assert.deepEqual(runs.map((r) => r.idempotencyKey).sort(), [
        `mqtt:${base}/a:r-1`,
        `mqtt:${base}/a:r-3`,
        `mqtt:${base}/b:r-2`,
      ]);
    } finally {
      await down.stop();
    }
  });

  test("reconnects after the broker drops the connection (session taken over) and goes on consuming", async () => {
    const base = newBase();
    const clientId = newClientId();
    const l = await start({ clientId, topics: [`${base}/#`] });
    const intruder = await client({ clientId, clean: false, properties: { sessionExpiryInterval: 600 } });
    await waitFor(() => l.stats.connections >= 2 && l.stats.subscribed, {
      what: "a new connection and subscription",
      timeoutMs: 10_000,
    });
    await waitFor(() => !intruder.connected, { what: "the intruder taken over in turn" });
    await publish(`${base}/x`, { workflow_id: "mqtake", params: { date: "after" }, idempotency_key: "t-1" });
    const runs = await expectRunCount(f, "mqtake", 1);
    assert.deepEqual(runs[0]?.params, { date: "after" });
  });

  test("two listeners given one client id take the session from each other with a growing backoff, not in a hot loop", async () => {
    const base = newBase();
    const clientId = newClientId();
    const backoff = { initialMs: 200, maxMs: 5000 };
    const a = await start({ clientId, topics: [`${base}/#`], backoff });
    const b = await listeners.start(
      new MqttListener({
        principal: { host: "127.0.0.1", port: f.ports.api },
        key: f.key("local-listeners"),
        url: MQTT_URL,
        clientId,
        topics: [`${base}/#`],
        sessionExpirySeconds: 600,
        backoff,
      }),
    );
    await new Promise((r) => setTimeout(r, 6000));
    const total = a.stats.connections + b.stats.connections;
    // Each takeover costs the other a reconnect: with a backoff reset each time they would
    // reconnect every 100-200 ms (over 30 times each in 6 s); growing, each does a handful.
    assert.ok(total >= 4, `they did fight: ${total} connections`);
    assert.ok(total <= 16, `${total} connections in 6 s`);
  });

  test("`type: mqtt` in a listeners YAML file: the runner process subscribes, maps a message into a run, and exits 0 on SIGTERM", async () => {
    const base = newBase();
    const clientId = newClientId();
    writeFileSync(
      join(f.home, "mqtt-listeners.yml"),
      [
        "listeners:",
        "  - type: mqtt",
        "    name: sensors",
        "    url_env: TEST_MQTT_URL",
        `    client_id: ${clientId}`,
        `    topics: ["${base}/+/reading"]`,
        "    workflow: mqyaml",
        "    params_map: {date: body.day, n: to_string(body.value)}",
        "    idempotency_key: body.id",
        "    trigger_timeout_ms: 2000",
        "",
      ].join("\n"),
    );
    const runner = await startListeners(f, "mqtt-listeners.yml", { env: { TEST_MQTT_URL: MQTT_URL } });
    assert.deepEqual(
      (runner.ready.listeners as { name: string; type: string }[]).map((l) => [l.name, l.type]),
      [["sensors", "mqtt"]],
    );
    // The runner subscribes in the background: publish until the first run appears.
    await waitFor(
      async () => {
        await publish(`${base}/s1/reading`, { id: "r-1", day: "2026-12-02", value: 7 });
        return (await f.runs("mqyaml")).length > 0;
      },
      { what: "a run from the runner process", intervalMs: 500 },
    );
    const runs = await expectRunCount(f, "mqyaml", 1);
    assert.deepEqual(runs[0]?.params, { date: "2026-12-02", n: "7" });
    assert.equal(runs[0]?.idempotencyKey, `mqtt:${base}/s1/reading:r-1`);
    assert.deepEqual(await runner.stop("SIGTERM"), { code: 0, signal: null });
  });
});

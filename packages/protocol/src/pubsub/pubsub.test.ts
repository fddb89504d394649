import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Publisher as ZmqPublisher, Subscriber as ZmqSubscriber } from "zeromq";
import { MAX_SUBSCRIPTION_BYTES } from "../rpc/frames.js";
import { waitFor } from "@cdktr/test-base";
import { topics } from "../topics.js";
import { Publisher } from "./publisher.js";
import { Subscriber, type Published } from "./subscriber.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** Collect everything `sub` yields into an array until it is closed. */
function collect(sub: Subscriber): { got: Published[]; done: Promise<void> } {
  const got: Published[] = [];
  const done = (async () => {
    for await (const m of sub) got.push(m);
  })();
  return { got, done };
}

describe("Publisher + Subscriber", () => {
  it("a subscriber to topics.logs('etl') gets etl lines and never etl2 lines", async () => {
    const pub = new Publisher({ endpoint: "tcp://127.0.0.1:0" });
    const endpoint = await pub.bind();
    cleanups.push(() => pub.close());
    const sub = new Subscriber({ endpoint });
    cleanups.push(() => sub.close());
    sub.connect();
    sub.subscribe(topics.logs("etl"));
    const { got, done } = collect(sub);
    // PUB/SUB drops messages until the subscription reached the publisher: publish until seen.
    let n = 0;
    await waitFor(
      () => {
        n++;
        pub.publish(topics.logs("etl2", "r2", "t"), { n, wf: "etl2" });
        pub.publish(topics.logs("etl", "r1", "t"), { n, wf: "etl" });
        return got.length >= 3;
      },
      { timeoutMs: 5000, intervalMs: 20, what: "3 etl messages" },
    );
    // A final marker on the same topic proves everything before it was delivered in order.
    pub.publish(topics.logs("etl", "r1", "t"), { marker: true });
    await waitFor(() => got.some((m) => (m.body as { marker?: boolean }).marker === true), {
      timeoutMs: 3000,
      what: "marker",
    });
    sub.close();
    await done;
    assert.ok(
      got.every((m) => m.topic === "logs|etl|r1|t|"),
      `unexpected topics: ${got.map((m) => m.topic).join(", ")}`,
    );
    assert.ok(got.every((m) => (m.body as { wf?: string }).wf !== "etl2"));
  });

  it("skips malformed messages and keeps delivering", async () => {
    const raw = new ZmqPublisher({ linger: 0 });
    await raw.bind("tcp://127.0.0.1:*");
    cleanups.push(() => raw.close());
    const sub = new Subscriber({ endpoint: raw.lastEndpoint ?? "" });
    cleanups.push(() => sub.close());
    sub.connect();
    sub.subscribe();
    const { got, done } = collect(sub);
    await waitFor(
      async () => {
        await raw.send(["workflows|", "{not json"]);
        await raw.send(["workflows|"]);
        await raw.send(["workflows|", "{}", "extra"]);
        await raw.send(["workflows|", JSON.stringify({ version: 1, changed: [], removed: [] })]);
        return got.length > 0;
      },
      { timeoutMs: 5000, intervalMs: 20, what: "a valid message" },
    );
    sub.close();
    await done;
    assert.ok(got.every((m) => m.topic === "workflows|" && (m.body as { version: number }).version === 1));
  });

  it("unsubscribe stops delivery of that prefix", async () => {
    const pub = new Publisher({ endpoint: "tcp://127.0.0.1:0" });
    const endpoint = await pub.bind();
    cleanups.push(() => pub.close());
    const sub = new Subscriber({ endpoint });
    cleanups.push(() => sub.close());
    sub.connect();
    sub.subscribe(topics.runs(), topics.workflows());
    const { got, done } = collect(sub);
    await waitFor(
      () => {
        pub.publish(topics.runs("etl", "r1"), { phase: 1 });
        return got.length > 0;
      },
      { timeoutMs: 5000, intervalMs: 20, what: "a run event" },
    );
    sub.unsubscribe(topics.runs());
    // Subscription commands reach the publisher in order: once a message on a prefix subscribed
    // AFTER the unsubscribe arrives, the unsubscribe has taken effect.
    sub.subscribe("sync|");
    await waitFor(
      () => {
        pub.publish("sync|", { sync: true });
        return got.some((m) => m.topic === "sync|");
      },
      { timeoutMs: 5000, intervalMs: 20, what: "sync message" },
    );
    const count = got.length;
    pub.publish(topics.runs("etl", "r1"), { phase: 2 });
    pub.publish(topics.workflows(), { marker: "end" });
    await waitFor(() => got.some((m) => (m.body as { marker?: string }).marker === "end"), {
      timeoutMs: 3000,
      what: "end marker",
    });
    sub.close();
    await done;
    assert.ok(
      got.slice(count).every((m) => m.topic !== "runs|etl|r1|"),
      "no run event after unsubscribe",
    );
  });

  it("publish never throws, even for unserialisable bodies or after close", async () => {
    const pub = new Publisher({ endpoint: "tcp://127.0.0.1:0" });
    await pub.bind();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    pub.publish(topics.workflows(), cyclic);
    pub.publish(topics.workflows(), 10n);
    await pub.close();
    pub.publish(topics.workflows(), { after: "close" });
  });
});

describe("Publisher: subscription size", () => {
  it("a subscription above 64 KiB is refused by libzmq (the peer never gets that topic) while others keep receiving", async () => {
    // Old behaviour: the publish socket accepted subscription frames up to 64 MiB.
    const pub = new Publisher({ endpoint: "tcp://127.0.0.1:0" });
    const endpoint = await pub.bind();
    cleanups.push(() => pub.close());
    const huge = `logs|${"h".repeat(MAX_SUBSCRIPTION_BYTES)}|`;
    const abuser = new ZmqSubscriber({ linger: 0, receiveTimeout: 1500 });
    cleanups.push(() => abuser.close());
    abuser.connect(endpoint);
    abuser.subscribe(huge);
    const sub = new Subscriber({ endpoint });
    cleanups.push(() => sub.close());
    sub.connect();
    sub.subscribe(topics.logs());
    const { got, done } = collect(sub);
    await waitFor(
      () => {
        pub.publish(`${huge}r|t|`, { big: true });
        return got.length >= 3;
      },
      { timeoutMs: 5000, intervalMs: 50, what: "3 messages to the normal subscriber" },
    );
    await assert.rejects(abuser.receive(), (e: unknown) => (e as { code?: unknown }).code === "EAGAIN");
    sub.close();
    await done;
  });
});

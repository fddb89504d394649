/**
 * The publish port's XPUB runs in manual mode: the gate subscribes "the peer whose message was
 * read last". libzmq remembers that peer only for subscription messages; a user message sent
 * upstream by an XSUB peer (or a multi-frame or empty one) is queued without its peer, so every
 * subscription read after it, while the queue is not drained, is applied to the NEXT message's
 * peer. A hostile key could so receive the topics another key proved. The gate must never apply a
 * subscription once such a message was read (it asks for a fresh socket instead).
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { XSubscriber } from "zeromq";
import { waitFor } from "@cdktr/test-base";
import type { KeyIdentity } from "../security/identity.js";
import { generateKeyPair, type ClientKey } from "../security/key-file.js";
import { Publisher } from "./publisher.js";
import { Subscriber } from "./subscriber.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("SubscriptionGate", () => {
  it("after a non-subscription message upstream, no proven subscription lands on another peer's connection", async () => {
    const server = generateKeyPair();
    const client = (name: string): ClientKey => ({ name, ...generateKeyPair(), principalPublicKey: server.publicKey });
    const mallory = client("mallory");
    const olivia = client("olivia");
    const identities = new Map<string, KeyIdentity>([
      [
        mallory.publicKey,
        { name: "mallory", role: "trigger", scope: "mallory", workflows: null, publicKey: mallory.publicKey },
      ],
      [
        olivia.publicKey,
        { name: "olivia", role: "operator", scope: "olivia", workflows: null, publicKey: olivia.publicKey },
      ],
    ]);
    let desynced = 0;
    const pub = new Publisher({
      endpoint: "tcp://127.0.0.1:0",
      auth: {
        keyPair: server,
        identify: (k) => identities.get(k),
        // "slow|" keeps the gate busy (as a store lookup does) while the queue fills behind it.
        permitsTopic: async (identity, topic) => {
          if (topic === "slow|") {
            await sleep(1000);
            return true;
          }
          return identity.name === "olivia";
        },
      },
      onUntrustedUpstream: () => desynced++,
    });
    const endpoint = await pub.bind();
    cleanups.push(() => pub.close());

    // Mallory's raw XSUBs: they can send user messages upstream, and have no local filter.
    const xsub = (): XSubscriber => {
      const x = new XSubscriber({
        linger: 0,
        curveServerKey: server.publicKey,
        curvePublicKey: mallory.publicKey,
        curveSecretKey: mallory.secretKey,
      });
      cleanups.push(() => x.close());
      x.connect(endpoint);
      return x;
    };
    const sender = xsub();
    const receiver = xsub();
    const stolen: string[] = [];
    void (async () => {
      for await (const [topic] of receiver) stolen.push(String(topic));
    })().catch(() => undefined);
    const busy = new Subscriber({ endpoint, key: mallory });
    cleanups.push(() => busy.close());
    const victim = new Subscriber({ endpoint, key: olivia });
    cleanups.push(() => victim.close());
    const got: string[] = [];
    void (async () => {
      for await (const m of victim) got.push(m.topic);
    })();
    busy.connect();
    victim.connect();
    await sleep(500); // handshakes done

    busy.subscribe("slow|"); // the gate now waits 1 s on this one
    await sleep(100);
    // While it waits, libzmq queues what arrives, pipe by pipe in the order the pipes woke up:
    // two user messages (queued without their peer), olivia's proven and plain subscription,
    // then the receiver's plain one. Read in that order, olivia's proof lands on the receiver.
    await sender.send(Buffer.from([2, 120]));
    await sender.send(Buffer.from([2, 121]));
    await sleep(100);
    victim.subscribe("secret|");
    await sleep(100);
    await receiver.send(Buffer.from([1, 122]));
    await sleep(1000); // the gate reads the queue

    // Either the victim gets "secret|" (after the publisher's socket is replaced) or nobody does;
    // mallory's connection never does.
    for (let i = 0; i < 20; i++) {
      pub.publish("secret|x", { i });
      await sleep(25);
    }
    await sleep(200);
    assert.deepEqual(stolen, [], "mallory's XSUB received olivia's topic");
    assert.ok(desynced >= 1, "the publisher was told that subscriptions can no longer be attributed");
  });

  it("a plain subscriber's subscriptions keep working (no false alarm)", async () => {
    const server = generateKeyPair();
    const olivia: ClientKey = { name: "olivia", ...generateKeyPair(), principalPublicKey: server.publicKey };
    let desynced = 0;
    const pub = new Publisher({
      endpoint: "tcp://127.0.0.1:0",
      auth: {
        keyPair: server,
        identify: (k) =>
          k === olivia.publicKey
            ? { name: "olivia", role: "operator", scope: "olivia", workflows: null, publicKey: k }
            : undefined,
        permitsTopic: () => true,
      },
      onUntrustedUpstream: () => desynced++,
    });
    const endpoint = await pub.bind();
    cleanups.push(() => pub.close());
    const sub = new Subscriber({ endpoint, key: olivia });
    cleanups.push(() => sub.close());
    const got: string[] = [];
    void (async () => {
      for await (const m of sub) got.push(m.topic);
    })();
    sub.connect();
    sub.subscribe("a|", "");
    sub.unsubscribe("");
    await waitFor(
      async () => {
        pub.publish("a|1", {});
        await sleep(50);
        return got.length > 0;
      },
      { timeoutMs: 5000, what: "a published message" },
    );
    assert.equal(desynced, 0);
  });

  it("publisher.wants: false for a topic no connection proved a prefix of, true once one did and after it left; an unproven subscription does not count", async () => {
    const server = generateKeyPair();
    const olivia: ClientKey = { name: "olivia", ...generateKeyPair(), principalPublicKey: server.publicKey };
    const pub = new Publisher({
      endpoint: "tcp://127.0.0.1:0",
      auth: {
        keyPair: server,
        identify: (k) =>
          k === olivia.publicKey
            ? { name: "olivia", role: "operator", scope: "olivia", workflows: null, publicKey: k }
            : undefined,
        permitsTopic: (_identity, topic) => topic !== "logs|secret|",
      },
    });
    const endpoint = await pub.bind();
    cleanups.push(() => pub.close());
    const line = "logs|etl|run-1|extract|";
    assert.equal(pub.wants(line), false, "nobody subscribed yet");
    // A raw XSUB's plain subscription (no proof) is not applied, so it wants nothing either.
    const raw = new XSubscriber({
      linger: 0,
      curveServerKey: server.publicKey,
      curvePublicKey: olivia.publicKey,
      curveSecretKey: olivia.secretKey,
    });
    cleanups.push(() => raw.close());
    raw.connect(endpoint);
    await raw.send(Buffer.from("\x01logs|", "latin1"));
    const sub = new Subscriber({ endpoint, key: olivia });
    sub.connect();
    sub.subscribe("logs|secret|", "logs|etl|");
    await waitFor(() => pub.wants(line), { timeoutMs: 5000, what: "the proven subscription to logs|etl|" });
    assert.equal(pub.wants("logs|etl2|run-1|t|"), false, "a prefix ends at a separator");
    assert.equal(pub.wants("logs|secret|r|t|"), false, "a refused subscription is not applied");
    assert.equal(pub.wants("logs|other|r|t|"), false);
    sub.close();
    await sleep(200);
    assert.equal(pub.wants(line), true, "kept after the subscriber left");
  });
});

/**
 * The secure wire at the protocol level, on real sockets: CURVE with ZAP admission, `hello`,
 * permissions, revocation, and proven subscriptions on the publish channel.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Dealer, Subscriber as ZmqSubscriber } from "zeromq";
import { makeTempDir, removeTempDirs, waitFor } from "@cdktr/test-base";
import { API_VERBS, type ApiVerbs } from "../messages.js";
import { isCdktrError } from "../errors.js";
import { PROTOCOL } from "../rpc/frames.js";
import { RpcClient } from "../rpc/rpc-client.js";
import { RpcServer } from "../rpc/rpc-server.js";
import { Publisher } from "../pubsub/publisher.js";
import { Subscriber } from "../pubsub/subscriber.js";
import type { KeyIdentity } from "./identity.js";
import { type ClientKey, type KeyPair, findClientKey, generateKeyPair, readKeyFile, writeKeyFile } from "./key-file.js";
import { helloProof, sharedSecret } from "./proofs.js";
import { z85Decode, z85Encode } from "./z85.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
  removeTempDirs();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A principal-side key registry for tests: enrolled identities by public key. */
class Keys {
  readonly server: KeyPair = generateKeyPair();
  readonly enrolled = new Map<string, KeyIdentity>();

  /** A client key, enrolled unless `enrol` is false. */
  client(name: string, role: KeyIdentity["role"] = "operator", enrol = true): ClientKey {
    const pair = generateKeyPair();
    if (enrol)
      this.enrolled.set(pair.publicKey, { name, role, scope: name, workflows: null, publicKey: pair.publicKey });
    return { name, ...pair, principalPublicKey: this.server.publicKey };
  }

  revoke(key: ClientKey): void {
    this.enrolled.delete(key.publicKey);
  }
}

async function secureServer(keys: Keys, permits = (_i: KeyIdentity, _v: string) => true): Promise<RpcServer<ApiVerbs>> {
  const server = new RpcServer({
    endpoint: "tcp://127.0.0.1:0",
    verbs: API_VERBS,
    serverId: "secure",
    auth: { keyPair: keys.server, identify: (k) => keys.enrolled.get(k), permits },
  });
  await server.bind();
  cleanups.push(() => server.close());
  return server;
}

function rpcClient(endpoint: string, key: ClientKey | null, timeoutMs = 1500): RpcClient<ApiVerbs> {
  const c = new RpcClient({ endpoint, verbs: API_VERBS, key, timeoutMs, retry: { attempts: 1 } });
  cleanups.push(() => c.close());
  return c;
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(isCdktrError(e), `a CdktrError: ${String(e)}`);
    return e;
  }
  assert.fail("expected the call to reject");
}

/** A raw DEALER speaking the frames by hand (CURVE when given a key). */
function rawDealer(endpoint: string, key: ClientKey | null): Dealer {
  // sendTimeout: a refused handshake drops the pipe, and a DEALER with none waits forever to send.
  const d = new Dealer({
    linger: 0,
    sendTimeout: 2000,
    receiveTimeout: 800,
    routingId: `raw-${Math.random().toString(36).slice(2)}`,
  });
  if (key !== null) {
    d.curveServerKey = key.principalPublicKey;
    d.curvePublicKey = key.publicKey;
    d.curveSecretKey = key.secretKey;
  }
  d.connect(endpoint);
  cleanups.push(() => d.close());
  return d;
}

async function rawCall(
  d: Dealer,
  verb: string,
  body: unknown,
): Promise<{ status: string; body: unknown } | "no reply"> {
  try {
    await d.send([PROTOCOL, "r1", "0", verb, JSON.stringify(body)]);
    const [, , status, reply] = await d.receive();
    return { status: String(status), body: JSON.parse(String(reply)) as unknown };
  } catch {
    return "no reply";
  }
}

describe("Z85 and proofs", () => {
  it("encodes ZeroMQ's test vector and round-trips a key", () => {
    const bytes = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
    assert.equal(z85Encode(bytes), "HelloWorld");
    assert.deepEqual(z85Decode("HelloWorld"), bytes);
    const { publicKey } = generateKeyPair();
    assert.equal(z85Encode(z85Decode(publicKey)), publicKey);
    assert.throws(() => z85Decode("not z85 ~"), /not a Z85 string/);
  });

  it("the X25519 secret is the same on both sides and a proof binds challenge and keys", () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const ab = sharedSecret(a.secretKey, b.publicKey);
    assert.deepEqual(ab, sharedSecret(b.secretKey, a.publicKey));
    const c = generateKeyPair();
    assert.notDeepEqual(ab, sharedSecret(c.secretKey, b.publicKey));
    assert.notEqual(helloProof(ab, "x", a.publicKey, b.publicKey), helloProof(ab, "y", a.publicKey, b.publicKey));
  });
});

describe("key files", () => {
  it("are written 0600 in a 0700 directory, read back, and refused when others may read them", () => {
    const dir = join(makeTempDir(), "keys");
    const pair = generateKeyPair();
    const principal = generateKeyPair();
    const path = join(dir, "local-operator.json");
    writeKeyFile(path, {
      name: "local-operator",
      role: "operator",
      scope: "local-operator",
      ...pair,
      principalPublicKey: principal.publicKey,
    });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(readKeyFile(path).secretKey, pair.secretKey);
    assert.throws(
      () => writeKeyFile(path, readKeyFile(path)),
      (e: unknown) => isCodedWith(e, "KEY_FILE_EXISTS"),
    );
    chmodSync(path, 0o644);
    assert.throws(
      () => readKeyFile(path),
      (e: unknown) => isCodedWith(e, "KEY_FILE_UNSAFE") && /chmod 600/.test(String(e)),
    );
    chmodSync(path, 0o600);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ name: "x", role: "operator", publicKey: "short" }), { mode: 0o600 });
    assert.throws(
      () => readKeyFile(bad),
      (e: unknown) => isCodedWith(e, "KEY_FILE_INVALID") && /key\.publicKey/.test(String(e)),
    );
  });

  it("a client finds CDKTR_KEY_FILE first, else its local key, and none with CDKTR_AUTH=off", () => {
    const home = makeTempDir();
    const principal = generateKeyPair();
    const local = generateKeyPair();
    const other = generateKeyPair();
    writeKeyFile(join(home, ".cdktr", "keys", "local-agent.json"), {
      name: "local-agent",
      role: "agent",
      ...local,
      principalPublicKey: principal.publicKey,
    });
    const named = join(home, "elsewhere.json");
    writeKeyFile(named, { name: "remote", role: "trigger", ...other, principalPublicKey: principal.publicKey });
    assert.equal(findClientKey("local-agent", { HOME: home })?.publicKey, local.publicKey);
    assert.equal(findClientKey("local-agent", { HOME: home, CDKTR_KEY_FILE: named })?.name, "remote");
    assert.equal(findClientKey("local-operator", { HOME: home }), null);
    assert.equal(findClientKey("local-agent", { HOME: home, CDKTR_AUTH: "off" }), null);
    assert.throws(
      () => findClientKey("local-agent", { HOME: home, CDKTR_KEY_FILE: join(home, "missing.json") }),
      /does not exist/,
    );
  });
});

function isCodedWith(e: unknown, code: string): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === code;
}

describe("RpcServer with CURVE, ZAP and hello", () => {
  it("an enrolled key proves itself once and its identity reaches the handler", async () => {
    const keys = new Keys();
    const seen: (string | undefined)[] = [];
    const server = await secureServer(keys);
    server.handle("listAgents", (_b, ctx) => {
      seen.push(ctx.identity?.name);
      return { agents: [], nextCursor: null };
    });
    const c = rpcClient(server.endpoint ?? "", keys.client("ops"));
    assert.deepEqual(await c.request("listAgents", {}), { agents: [], nextCursor: null });
    await c.request("listAgents", {});
    assert.deepEqual(seen, ["ops", "ops"]);
    assert.equal(c.identity?.role, "operator");
  });

  it("plaintext peers and unenrolled keys get no reply at all, and nothing runs", async () => {
    const keys = new Keys();
    let handled = 0;
    const server = await secureServer(keys);
    server.handle("listAgents", () => {
      handled++;
      return { agents: [], nextCursor: null };
    });
    const ep = server.endpoint ?? "";
    assert.equal(await rawCall(rawDealer(ep, null), "ping", {}), "no reply");
    assert.equal(await rawCall(rawDealer(ep, keys.client("stranger", "operator", false)), "ping", {}), "no reply");
    const err = await rejection(
      rpcClient(ep, keys.client("stranger2", "operator", false), 600).request("listAgents", {}),
    );
    assert.equal(err.code, "TIMEOUT");
    assert.match(err.message, /is key `stranger2` enrolled/);
    assert.equal(handled, 0);
  });

  it("an enrolled key without hello gets UNAUTHENTICATED; a wrong proof is refused", async () => {
    const keys = new Keys();
    const server = await secureServer(keys);
    const key = keys.client("ops");
    const d = rawDealer(server.endpoint ?? "", key);
    const before = await rawCall(d, "ping", {});
    assert.ok(before !== "no reply");
    assert.equal(before.status, "error");
    assert.equal((before.body as { code: string }).code, "UNAUTHENTICATED");
    const step1 = await rawCall(d, "hello", { publicKey: key.publicKey });
    assert.ok(step1 !== "no reply");
    const challenge = (step1.body as { challenge: string }).challenge;
    const wrongShared = sharedSecret(generateKeyPair().secretKey, key.principalPublicKey);
    const forged = await rawCall(d, "hello", {
      publicKey: key.publicKey,
      challenge,
      proof: helloProof(wrongShared, challenge, key.publicKey, key.principalPublicKey),
    });
    assert.ok(forged !== "no reply");
    assert.equal((forged.body as { code: string }).code, "UNAUTHENTICATED");
    assert.match((forged.body as { message: string }).message, /wrong proof/);
    const still = await rawCall(d, "ping", {});
    assert.ok(still !== "no reply");
    assert.equal((still.body as { code: string }).code, "UNAUTHENTICATED");
  });

  it("a verb the key's role may not call is PERMISSION_DENIED", async () => {
    const keys = new Keys();
    const server = await secureServer(keys, (identity, verb) => identity.role === "operator" || verb === "ping");
    server.handle("listAgents", () => ({ agents: [], nextCursor: null }));
    const c = rpcClient(server.endpoint ?? "", keys.client("reader", "reader"));
    assert.equal((await c.request("ping", {})).principalId, "secure");
    const err = await rejection(c.request("listAgents", {}));
    assert.equal(err.code, "PERMISSION_DENIED");
    assert.match(err.message, /key `reader` \(role reader\) may not call listAgents/);
  });

  it("a revoked key is refused at once on its open connection", async () => {
    const keys = new Keys();
    const server = await secureServer(keys);
    server.handle("listAgents", () => ({ agents: [], nextCursor: null }));
    const key = keys.client("ops");
    const c = rpcClient(server.endpoint ?? "", key);
    await c.request("listAgents", {});
    keys.revoke(key);
    const err = await rejection(c.request("listAgents", {}));
    assert.equal(err.code, "UNAUTHENTICATED");
    assert.match(err.message, /not enrolled \(or was revoked\)/);
  });

  it("after a server restart the client proves its key again by itself", async () => {
    const keys = new Keys();
    const first = await secureServer(keys);
    const ep = first.endpoint ?? "";
    const c = rpcClient(ep, keys.client("ops"), 3000);
    assert.equal((await c.request("ping", {})).principalId, "secure");
    await first.close();
    const second = new RpcServer({
      endpoint: ep,
      verbs: API_VERBS,
      serverId: "restarted",
      auth: { keyPair: keys.server, identify: (k) => keys.enrolled.get(k), permits: () => true },
    });
    await second.bind();
    cleanups.push(() => second.close());
    const pong = await waitFor(async () => (await c.request("ping", {})).principalId, {
      timeoutMs: 10_000,
      what: "ping after restart",
    });
    assert.equal(pong, "restarted");
  });
});

describe("Publisher with proven subscriptions", () => {
  it("a key receives only the topics its role permits; plaintext and forged subscriptions receive nothing", async () => {
    const keys = new Keys();
    const pub = new Publisher({
      endpoint: "tcp://127.0.0.1:0",
      auth: {
        keyPair: keys.server,
        identify: (k) => keys.enrolled.get(k),
        permitsTopic: (identity, topic) => identity.role === "reader" || topic.startsWith("runs|mine|"),
      },
    });
    const ep = await pub.bind();
    cleanups.push(() => pub.close());

    const listen = (key: ClientKey | null, topic: string): string[] => {
      const got: string[] = [];
      const sub = new Subscriber({ endpoint: ep, key });
      cleanups.push(() => sub.close());
      sub.connect();
      sub.subscribe(topic);
      void (async () => {
        for await (const m of sub) got.push(m.topic);
      })();
      return got;
    };
    const reader = listen(keys.client("reader", "reader"), "runs|");
    const own = listen(keys.client("trig", "trigger"), "runs|mine|");
    const greedy = listen(keys.client("trig2", "trigger"), "runs|");
    const plain = listen(null, "runs|");
    // A raw CURVE subscriber with an enrolled key but a forged proof.
    const forgedKey = keys.client("trig3", "trigger");
    const raw = new ZmqSubscriber({
      linger: 0,
      curveServerKey: forgedKey.principalPublicKey,
      curvePublicKey: forgedKey.publicKey,
      curveSecretKey: forgedKey.secretKey,
    });
    cleanups.push(() => raw.close());
    raw.connect(ep);
    raw.subscribe(`!auth ${forgedKey.publicKey} AAAA runs|mine|`, "runs|mine|");
    const forged: string[] = [];
    void (async () => {
      for await (const [t] of raw) forged.push(String(t));
    })();

    await sleep(600);
    for (let i = 0; i < 5; i++) {
      pub.publish("runs|mine|r1|", { i });
      pub.publish("runs|theirs|r2|", { i });
      await sleep(50);
    }
    await waitFor(() => reader.length >= 10 && own.length >= 5, { what: "deliveries" });
    await sleep(300);
    assert.deepEqual(new Set(reader), new Set(["runs|mine|r1|", "runs|theirs|r2|"]));
    assert.deepEqual(new Set(own), new Set(["runs|mine|r1|"]));
    assert.deepEqual(greedy, [], "a trigger key asking for every run gets nothing");
    assert.deepEqual(plain, [], "a plaintext subscriber gets nothing");
    assert.deepEqual(forged, [], "a forged proof gets nothing");
  });
});

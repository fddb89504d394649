/**
 * The secure wire on a real principal process (docs/security.md): nothing reaches it without an
 * enrolled key, `hello` binds a connection to its key, every role is held to the matrix, leases
 * and run tokens guard agent reports, idempotency keys live in their key's scope, and a revoked
 * key loses every port at once.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Subscriber as ZmqSubscriber, type Dealer } from "zeromq";
import {
  PROTOCOL,
  Subscriber,
  clientKeyOf,
  readKeyFile,
  generateKeyPair,
  helloProof,
  isCdktrError,
  sharedSecret,
  topics,
  type ClientKey,
  type LogLine,
  type PrincipalClient,
} from "@cdktr/protocol";
import {
  cleanup,
  helloWorkflowYaml,
  preparePrincipal,
  startPrincipal,
  waitFor,
  workflowYaml,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { countRows, rawDealer, rawRequest, registerAgent, type RawReply } from "./helpers.js";

// A suite that hangs fails on its own after 90 s, naming the test it was in, instead of the whole file.
afterEach(cleanup);

const now = (): string => new Date().toISOString();
const TABLES = ["runs", "task_runs", "status_history", "logs", "idempotency_keys", "keys"] as const;
const rowCounts = (p: PrincipalFixture): number[] => TABLES.map((t) => countRows(p.dbPath, t));

/** Rejects with a CdktrError of `code`. */
async function refused(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isCdktrError(e), `a CdktrError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

/** Send one request by hand; resolves with the reply, or "no reply" when none comes in time. */
function rawCall(d: Dealer, verb: string, body: unknown): Promise<RawReply | "no reply"> {
  return rawRequest(d, [PROTOCOL, `r${Math.random()}`, "0", verb, JSON.stringify(body)]);
}

/**
 * Send requests by hand without waiting; then resolve with the first reply, or "no reply" in time.
 * A send that times out (the refused handshake dropped the connection) is "no reply" too.
 */
async function sendAllThenListen(d: Dealer, calls: readonly [string, unknown][]): Promise<unknown> {
  try {
    for (const [verb, body] of calls) await d.send([PROTOCOL, `r${Math.random()}`, "0", verb, JSON.stringify(body)]);
    return (await d.receive()).map(String);
  } catch {
    return "no reply";
  }
}

/** A key pinning this principal that it never enrolled. */
function strangerKey(p: PrincipalFixture): ClientKey {
  return { name: "stranger", ...generateKeyPair(), principalPublicKey: p.publicKey ?? "" };
}

function logLine(runId: string, seq: number, workflowId = "hello"): LogLine {
  return { time: now(), runId, workflowId, taskId: "hello", stream: "stdout", level: "info", seq, line: `line ${seq}` };
}

/** Collect the topics a subscriber receives. */
function collect(sub: Subscriber): string[] {
  const got: string[] = [];
  void (async () => {
    for await (const m of sub) got.push(m.topic);
  })();
  return got;
}

/**
 * Trigger `hello` until every list of `got` has seen an event (ZeroMQ's slow joiner: a
 * subscription takes effect a moment after it is made); resolves with the runs triggered.
 */
async function triggerUntilSeen(client: PrincipalClient, ...got: (readonly string[])[]): Promise<string[]> {
  const runs: string[] = [];
  const seen = (): boolean => got.every((g) => g.length > 0);
  await waitFor(
    async () => {
      if (seen()) return true;
      runs.push((await client.runWorkflow({ workflowId: "hello" })).runId);
      await new Promise((r) => setTimeout(r, 100));
      return seen();
    },
    { timeoutMs: 10_000, what: "a published event" },
  );
  return runs;
}

describe("keys on first start", { timeout: 90_000 }, () => {
  it("the principal makes its pair and the local client keys (0600 in a 0700 directory), enrols them, never overwrites them, never logs a secret", async () => {
    const p = await preparePrincipal();
    const first = await p.start();
    const files = readdirSync(p.keysDir).sort();
    assert.deepEqual(files, [
      "local-agent.json",
      "local-dashboard.json",
      "local-listeners.json",
      "local-operator.json",
      "local-scheduler.json",
      "principal.json",
    ]);
    assert.equal(statSync(p.keysDir).mode & 0o777, 0o700);
    for (const f of files) assert.equal(statSync(join(p.keysDir, f)).mode & 0o777, 0o600, f);
    const principalFile = JSON.parse(readFileSync(join(p.keysDir, "principal.json"), "utf8")) as Record<string, string>;
    assert.equal(principalFile.role, "principal");
    assert.equal(first.ready.publicKey, principalFile.publicKey, "the ready line shows the key clients pin");
    assert.equal(first.ready.auth, "on");
    const { keys } = await p.client.request("listKeys", {});
    assert.deepEqual(
      keys.map((k) => [k.name, k.role, k.scope, k.revokedAt]),
      [
        ["local-agent", "agent", "local-agent", null],
        ["local-dashboard", "dashboard", "local-dashboard", null],
        ["local-listeners", "trigger", "local-listeners", null],
        ["local-operator", "operator", "local-operator", null],
        ["local-scheduler", "scheduler", "local-scheduler", null],
      ],
    );
    assert.ok(keys.every((k) => !("secretKey" in k)));
    const before = Object.fromEntries(files.map((f) => [f, readFileSync(join(p.keysDir, f), "utf8")]));
    await p.stop();
    const second = await p.start();
    for (const f of files) assert.equal(readFileSync(join(p.keysDir, f), "utf8"), before[f], `${f} kept`);
    assert.equal((await p.client.request("listKeys", {})).keys.length, 5, "nothing enrolled twice");
    const secrets = files.map((f) => (JSON.parse(before[f] ?? "{}") as { secretKey: string }).secretKey);
    for (const line of [...first.lines, ...second.lines])
      for (const s of secrets) assert.ok(!line.includes(s), "no secret key in the principal's output");
  });

  it("rotating the principal pair: a new pair at the next start, the local key files pinned to it, their own pairs and enrolments kept", async () => {
    const p = await preparePrincipal();
    await p.start();
    const principalPath = join(p.keysDir, "principal.json");
    const oldPrincipal = readKeyFile(principalPath).publicKey;
    const oldOperator = readKeyFile(join(p.keysDir, "local-operator.json"));
    await p.stop();
    renameSync(principalPath, `${principalPath}.old`);
    const second = await p.start();
    const rotated = readKeyFile(principalPath).publicKey;
    assert.notEqual(rotated, oldPrincipal);
    assert.equal(second.ready.publicKey, rotated);
    const operator = readKeyFile(join(p.keysDir, "local-operator.json"));
    assert.deepEqual(
      [operator.principalPublicKey, operator.publicKey, operator.secretKey],
      [rotated, oldOperator.publicKey, oldOperator.secretKey],
    );
    const fresh = p.connect({ key: clientKeyOf(operator) });
    assert.equal((await fresh.request("listKeys", {})).keys.length, 5, "the same keys, still enrolled");
    const stale = p.connect({ key: clientKeyOf(oldOperator), timeoutMs: 800 });
    await refused(stale.ping({ retry: false }), "TIMEOUT");
  });

  it("a keys directory that cannot be made fails the start, naming the path and CDKTR_KEYS_DIR", async () => {
    const p = await preparePrincipal();
    writeFileSync(join(p.home, "a-file"), "not a directory");
    const bad = join(p.home, "a-file", "keys");
    const svc = await p.start({ waitReady: false, env: { CDKTR_KEYS_DIR: bad } });
    const exit = await svc.exited;
    assert.equal(exit.code, 1);
    const text = svc.lines.join("\n");
    assert.ok(text.includes(bad), text);
    assert.match(text, /CDKTR_KEYS_DIR/);
  });

  it("authentication off is refused on 0.0.0.0 (exit 2, saying what to set), and on loopback it is plaintext, warned about at every start", async () => {
    const p = await preparePrincipal({ auth: "off" });
    const svc = await p.start({ waitReady: false, env: { CDKTR_PRINCIPAL_HOST: "0.0.0.0" } });
    assert.equal((await svc.exited).code, 2);
    const text = svc.lines.join("\n");
    assert.match(text, /CDKTR_AUTH: off is allowed only when the principal binds to a loopback address/);
    assert.match(text, /CDKTR_PRINCIPAL_HOST is "0\.0\.0\.0"/);
    assert.match(text, /Remove CDKTR_AUTH=off .* or set CDKTR_PRINCIPAL_HOST=127\.0\.0\.1/);
    assert.ok(!text.includes("    at "), "no stack trace");

    const ok = await p.start();
    assert.equal(ok.ready.auth, "off");
    const warning = ok.lines.find((l) => l.includes("authentication is OFF"));
    assert.ok(
      warning !== undefined && (JSON.parse(warning) as { level?: unknown }).level === "warn",
      "warned at start",
    );
    assert.deepEqual(readdirSync(p.home).includes(".cdktr"), false, "no keys made");
    assert.equal(p.key(), null);
    const { runId } = await p.client.runWorkflow({ workflowId: "hello" });
    assert.equal((await p.client.getRun(runId)).run.triggeredBy, null);
    await registerAgent(p.client, "plain");
    const w = await p.client.fetchWork({ agentId: "plain", waitMs: 0, freeSlots: 1 });
    await p.client.confirmAssignment({ agentId: "plain", runId, token: w.assignment?.token ?? "" });
    const done = await p.client.runStatus({ agentId: "plain", runId, status: "COMPLETED", time: now() });
    assert.equal(done.applied, true, "no token needed without authentication");
  });
});

describe("no enrolled key, no access", { timeout: 90_000 }, () => {
  it("a plaintext DEALER and an unenrolled CURVE key get no reply on the API and log ports and write nothing", async () => {
    const p = await startPrincipal();
    const before = rowCounts(p);
    const agentsBefore = (await p.client.listAgents()).agents.length;
    for (const key of [null, strangerKey(p)]) {
      const api = rawDealer(key, { receiveTimeout: 1500 });
      const logs = rawDealer(key, { receiveTimeout: 1500 });
      try {
        api.connect(p.endpoints.api);
        logs.connect(p.endpoints.logs);
        const replies = await Promise.all([
          sendAllThenListen(api, [
            ["ping", {}],
            ["hello", { publicKey: key?.publicKey ?? generateKeyPair().publicKey }],
            ["runWorkflow", { workflowId: "hello", idempotencyKey: "k" }],
            [
              "registerAgent",
              { agentId: "intruder", host: "h", capacity: 1, labels: [], version: "x", runningRuns: [] },
            ],
          ]),
          sendAllThenListen(logs, [
            ["ping", {}],
            ["logBatch", { agentId: "intruder", lines: [logLine("r", 1)] }],
          ]),
        ]);
        assert.deepEqual(replies, ["no reply", "no reply"], key === null ? "plaintext" : "unenrolled key");
      } finally {
        api.close();
        logs.close();
      }
    }
    assert.deepEqual(rowCounts(p), before, "no row written");
    assert.equal((await p.client.listAgents()).agents.length, agentsBefore, "no agent registered");
  });

  it("a plaintext or unenrolled subscriber, or a forged subscription, receives nothing on the publish port", async () => {
    const p = await startPrincipal();
    const watcher = new Subscriber({ endpoint: p.endpoints.publish, key: p.key() });
    const plain = new Subscriber({ endpoint: p.endpoints.publish, key: null });
    const stranger = new Subscriber({ endpoint: p.endpoints.publish, key: strangerKey(p) });
    const agentKey = p.key("local-agent");
    assert.ok(agentKey !== null);
    const forged = new ZmqSubscriber({
      linger: 0,
      curveServerKey: agentKey.principalPublicKey,
      curvePublicKey: agentKey.publicKey,
      curveSecretKey: agentKey.secretKey,
    });
    try {
      const seen: Record<string, string[]> = {};
      for (const [name, sub] of [
        ["watcher", watcher],
        ["plain", plain],
        ["stranger", stranger],
      ] as const) {
        sub.connect();
        sub.subscribe("");
        seen[name] = collect(sub);
      }
      // An enrolled agent key (agents may receive no topic) with a forged proof of "everything".
      forged.connect(p.endpoints.publish);
      forged.subscribe(`!auth ${agentKey.publicKey} AAAA `, "");
      const forgedGot: string[] = [];
      void (async () => {
        for await (const [t] of forged) forgedGot.push(String(t));
      })();
      await triggerUntilSeen(p.client, seen.watcher ?? []);
      await p.client.runWorkflow({ workflowId: "hello" });
      await waitFor(() => (seen.watcher?.length ?? 0) >= 2, { what: "events for the operator" });
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual([seen.plain, seen.stranger, forgedGot], [[], [], []]);
    } finally {
      watcher.close();
      plain.close();
      stranger.close();
      forged.close();
    }
  });

  it("an enrolled key without hello gets UNAUTHENTICATED; a hello with a wrong proof is refused and binds nothing", async () => {
    const p = await startPrincipal();
    const key = p.key();
    assert.ok(key !== null);
    const d = rawDealer(key, { receiveTimeout: 3000 });
    try {
      d.connect(p.endpoints.api);
      const before = await rawCall(d, "runWorkflow", { workflowId: "hello" });
      assert.ok(before !== "no reply");
      assert.equal((before.body as { code: string }).code, "UNAUTHENTICATED");
      const step1 = await rawCall(d, "hello", { publicKey: key.publicKey });
      assert.ok(step1 !== "no reply");
      const challenge = (step1.body as { challenge: string }).challenge;
      const wrong = sharedSecret(generateKeyPair().secretKey, key.principalPublicKey);
      const forged = await rawCall(d, "hello", {
        publicKey: key.publicKey,
        challenge,
        proof: helloProof(wrong, challenge, key.publicKey, key.principalPublicKey),
      });
      assert.ok(forged !== "no reply");
      assert.deepEqual(
        [(forged.body as { code: string }).code, /wrong proof/.test((forged.body as { message: string }).message)],
        ["UNAUTHENTICATED", true],
      );
      const after = await rawCall(d, "runWorkflow", { workflowId: "hello" });
      assert.ok(after !== "no reply");
      assert.equal((after.body as { code: string }).code, "UNAUTHENTICATED");
      // The right proof binds the connection.
      const again = await rawCall(d, "hello", { publicKey: key.publicKey });
      assert.ok(again !== "no reply");
      const c2 = (again.body as { challenge: string }).challenge;
      const right = sharedSecret(key.secretKey, key.principalPublicKey);
      const ok = await rawCall(d, "hello", {
        publicKey: key.publicKey,
        challenge: c2,
        proof: helloProof(right, c2, key.publicKey, key.principalPublicKey),
      });
      assert.ok(ok !== "no reply");
      assert.equal((ok.body as { identity: { name: string } }).identity.name, "local-operator");
      const pong = await rawCall(d, "ping", {});
      assert.ok(pong !== "no reply");
      assert.equal(pong.status, "ok");
    } finally {
      d.close();
    }
    assert.equal(countRows(p.dbPath, "runs"), 0);
  });
});

describe("roles", { timeout: 90_000 }, () => {
  it("a trigger key triggers and follows its own runs only: no agent verbs, no logs, no cancel, no other key's runs", async () => {
    const p = await startPrincipal();
    const hook = p.connect({ key: (await p.createKey("hook", "trigger")).key });
    const hookLogs = p.connectLogs({ key: p.key("local-listeners") });
    const theirs = (await p.client.runWorkflow({ workflowId: "hello" })).runId;
    const mine = await hook.runWorkflow({ workflowId: "hello", source: "webhook" });
    const own = await hook.getRun(mine.runId);
    assert.deepEqual([own.run.triggeredBy, own.run.source], ["hook", "webhook"]);
    assert.equal((await p.client.getRun(theirs)).run.triggeredBy, "local-operator");

    await refused(
      hook.registerAgent({ agentId: "x", host: "h", capacity: 1, labels: [], version: "v", runningRuns: [] }),
      "PERMISSION_DENIED",
      /key `hook` \(role trigger\) may not call registerAgent/,
    );
    await refused(hook.fetchWork({ agentId: "x", waitMs: 0, freeSlots: 1 }), "PERMISSION_DENIED");
    await refused(hook.cancelRun(mine.runId), "PERMISSION_DENIED");
    await refused(hook.cancelRun(theirs), "PERMISSION_DENIED");
    await refused(hook.listAgents(), "PERMISSION_DENIED");
    await refused(hook.request("listKeys", {}), "PERMISSION_DENIED");
    await refused(hookLogs.logBatch({ agentId: "x", lines: [logLine(mine.runId, 1)] }), "PERMISSION_DENIED");
    await refused(hook.getRun(theirs), "RUN_NOT_FOUND", /among the runs key `hook` triggered/);
    await refused(hook.queryLogs({ runId: theirs }), "RUN_NOT_FOUND");
    await refused(hook.queryLogs({}), "PERMISSION_DENIED", /pass runId/);
    assert.deepEqual((await hook.queryLogs({ runId: mine.runId })).lines, []);
    assert.deepEqual(
      (await hook.listRuns({})).runs.map((r) => r.runId),
      [mine.runId],
      "only its own runs are listed",
    );
    assert.equal((await p.client.listRuns({})).runs.length, 2, "an operator lists every run");
    assert.equal((await p.client.getRun(mine.runId)).run.status, "QUEUED", "nothing was cancelled");
    assert.equal(countRows(p.dbPath, "logs"), 0);
  });

  it("a trigger key's subscriptions: its own run's topics arrive, a broader prefix and other runs do not", async () => {
    const p = await startPrincipal();
    const created = await p.createKey("follower", "trigger");
    const me = p.connect({ key: created.key });
    const mine = (await me.runWorkflow({ workflowId: "hello" })).runId;
    const own = new Subscriber({ endpoint: p.endpoints.publish, key: created.key });
    const broad = new Subscriber({ endpoint: p.endpoints.publish, key: created.key });
    const operator = new Subscriber({ endpoint: p.endpoints.publish, key: p.key() });
    try {
      own.connect();
      own.subscribe(topics.runs("hello", mine), topics.workflows());
      broad.connect();
      broad.subscribe(topics.runs("hello"), topics.runs(), "");
      operator.connect();
      operator.subscribe(topics.runs("hello"));
      const [gotOwn, gotBroad, gotOp] = [collect(own), collect(broad), collect(operator)];
      await triggerUntilSeen(p.client, gotOp);
      // Its subscription was made before the operator's, which is active now; give the gate a moment more.
      await new Promise((r) => setTimeout(r, 500));
      await p.client.cancelRun(mine); // a runs| event of the trigger's own run
      await waitFor(() => gotOwn.length > 0, { what: "the trigger's own run event" });
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(new Set(gotOwn), new Set([topics.runs("hello", mine)]));
      assert.deepEqual(gotBroad, [], "a prefix broader than one run gets nothing");
    } finally {
      own.close();
      broad.close();
      operator.close();
    }
  });

  it("a reader reads everything but cannot trigger or cancel; a key with a workflow allow-list triggers only those", async () => {
    const p = await startPrincipal({ workflows: { "hello.yml": helloWorkflowYaml(), "other.yml": workflowYaml() } });
    const reader = p.connect({ key: (await p.createKey("audit", "reader")).key });
    const runId = (await p.client.runWorkflow({ workflowId: "hello" })).runId;
    await refused(reader.runWorkflow({ workflowId: "hello" }), "PERMISSION_DENIED", /role reader/);
    await refused(reader.cancelRun(runId), "PERMISSION_DENIED");
    assert.equal((await reader.getRun(runId)).run.runId, runId);
    assert.equal((await reader.listRuns({})).runs.length, 1);
    assert.deepEqual((await reader.queryLogs({})).lines, []);
    assert.deepEqual((await reader.listAgents()).agents, []);
    const narrow = p.connect({ key: (await p.createKey("narrow", "trigger", { workflows: ["other"] })).key });
    await refused(narrow.runWorkflow({ workflowId: "hello" }), "PERMISSION_DENIED", /may trigger only `other`/);
    assert.equal(countRows(p.dbPath, "runs"), 1);
  });

  it("a dashboard key reads everything, triggers and cancels for a person (triggeredBy names both), and nothing else; no other key may name an actor", async () => {
    const p = await startPrincipal({ workflows: { "hello.yml": helloWorkflowYaml() } });
    const dashboard = p.connect({ key: (await p.createKey("web", "dashboard")).key });
    const trigger = p.connect({ key: (await p.createKey("ci", "trigger")).key });
    const other = (await trigger.runWorkflow({ workflowId: "hello" })).runId;
    const { runId } = await dashboard.runWorkflow({ workflowId: "hello", actor: "alice" });
    assert.equal((await dashboard.getRun(runId)).run.triggeredBy, "web:alice");
    assert.equal((await dashboard.getRun(other)).run.triggeredBy, "ci", "a dashboard reads every run");
    assert.equal((await dashboard.listRuns({})).runs.length, 2);
    assert.deepEqual((await dashboard.listAgents()).agents, []);
    assert.equal((await dashboard.cancelRun(runId, { actor: "alice" })).cancelled, true);
    await refused(trigger.runWorkflow({ workflowId: "hello", actor: "alice" }), "PERMISSION_DENIED", /role dashboard/);
    await refused(p.client.runWorkflow({ workflowId: "hello", actor: "alice" }), "PERMISSION_DENIED", /role operator/);
    await refused(p.client.cancelRun(other, { actor: "alice" }), "PERMISSION_DENIED", /leave `actor` out/);
    await refused(dashboard.request("listKeys", {}), "PERMISSION_DENIED");
    await refused(dashboard.runWorkflows([{ workflowId: "hello" }]), "PERMISSION_DENIED");
    await refused(dashboard.runWorkflow({ workflowId: "hello", actor: "a|b" }), "BAD_REQUEST");
    assert.equal(countRows(p.dbPath, "runs"), 2, "refused triggers create nothing");
  });

  it("cron: idempotency keys: a trigger key may not claim one; two scheduler keys of one scope dedupe, other scopes do not collide", async () => {
    const p = await startPrincipal();
    const cron = "cron:hello:2030-01-01T00:00:00.000Z";
    const hook = p.connect({ key: (await p.createKey("hook", "trigger")).key });
    await refused(
      hook.runWorkflow({ workflowId: "hello", idempotencyKey: cron }),
      "PERMISSION_DENIED",
      /reserved for the cron occurrences of scheduler keys/,
    );
    assert.equal(countRows(p.dbPath, "runs"), 0, "nothing claimed");
    const s1 = p.connect({ key: (await p.createKey("sched-1", "scheduler", { scope: "scheduler" })).key });
    const s2 = p.connect({ key: (await p.createKey("sched-2", "scheduler", { scope: "scheduler" })).key });
    const a = await s1.runWorkflow({ workflowId: "hello", idempotencyKey: cron, source: "scheduler" });
    const b = await s2.runWorkflow({ workflowId: "hello", idempotencyKey: cron, source: "scheduler" });
    assert.deepEqual([a.duplicate, b.duplicate, b.runId], [false, true, a.runId], "replicas of one scope dedupe");
    const local = p.connect({ key: p.key("local-scheduler") });
    const c = await local.runWorkflow({ workflowId: "hello", idempotencyKey: cron });
    assert.equal(c.duplicate, false, "another scope: no collision");
    const hookKey = await hook.runWorkflow({ workflowId: "hello", idempotencyKey: "delivery-1" });
    const opKey = await p.client.runWorkflow({ workflowId: "hello", idempotencyKey: "delivery-1" });
    assert.notEqual(hookKey.runId, opKey.runId, "one client cannot claim another's keys");
    assert.equal((await s1.getRun(a.runId)).run.triggeredBy, "sched-1");
    await refused(s2.getRun(a.runId), "RUN_NOT_FOUND", /a scheduler key reads only its own runs/);
    assert.equal((await s2.listRuns({})).runs.length, 4, "a scheduler lists every run (catch-up)");
  });
});

describe("leases bound to keys", { timeout: 90_000 }, () => {
  it("agent key A cannot confirm, report or send logs for a run leased to agent key B; a stale or missing token is refused", async () => {
    const p = await startPrincipal({ env: { CDKTR_ASSIGNMENT_LEASE_MS: "1500" } });
    const keyA = (await p.createKey("agents-a", "agent")).key;
    const keyB = (await p.createKey("agents-b", "agent")).key;
    const a = p.connect({ key: keyA });
    const b = p.connect({ key: keyB });
    const aLogs = p.connectLogs({ key: keyA });
    const bLogs = p.connectLogs({ key: keyB });
    await registerAgent(a, "a1");
    await registerAgent(b, "b1");
    await refused(registerAgent(a, "b1"), "PERMISSION_DENIED", /in use by an agent of key `agents-b`/);
    await refused(a.heartbeat({ agentId: "b1", runningRuns: [] }), "PERMISSION_DENIED");

    const { runId } = await p.client.runWorkflow({ workflowId: "hello" });
    const w = await b.fetchWork({ agentId: "b1", waitMs: 1000, freeSlots: 1 });
    assert.equal(w.assignment?.run.runId, runId);
    const token = w.assignment?.token ?? "";
    await refused(
      a.confirmAssignment({ agentId: "a1", runId, token }),
      "PERMISSION_DENIED",
      /not leased to key `agents-a`/,
    );
    await b.confirmAssignment({ agentId: "b1", runId, token });
    const task = { runId, taskId: "hello", attempt: 1, status: "RUNNING" as const, time: now() };
    const before = rowCounts(p);
    await refused(a.taskStatus({ ...task, agentId: "a1", token }), "PERMISSION_DENIED");
    await refused(a.taskStatus({ ...task, agentId: "b1", token }), "PERMISSION_DENIED");
    await refused(a.runStatus({ agentId: "a1", runId, token, status: "FAILED", time: now() }), "PERMISSION_DENIED");
    await refused(
      aLogs.logBatch({ agentId: "a1", lines: [logLine(runId, 1)], tokens: { [runId]: token } }),
      "PERMISSION_DENIED",
    );
    await refused(b.taskStatus({ ...task, agentId: "b1" }), "STALE_ASSIGNMENT", /no assignment token/);
    await refused(b.taskStatus({ ...task, agentId: "b1", token: "guessed" }), "STALE_ASSIGNMENT");
    await refused(bLogs.logBatch({ agentId: "b1", lines: [logLine(runId, 1)] }), "STALE_ASSIGNMENT");
    assert.deepEqual(rowCounts(p).slice(0, 4), before.slice(0, 4), "no run, task, history or log row changed");
    assert.equal((await p.client.getRun(runId)).run.status, "RUNNING");

    assert.equal((await b.taskStatus({ ...task, agentId: "b1", token })).applied, true);
    assert.deepEqual(await bLogs.logBatch({ agentId: "b1", lines: [logLine(runId, 1)], tokens: { [runId]: token } }), {
      stored: 1,
      duplicates: 0,
    });

    // A lease that expired: the run is fetched again by the same key with a new token; the old one is stale.
    const second = (await p.client.runWorkflow({ workflowId: "hello" })).runId;
    const first = await b.fetchWork({ agentId: "b1", waitMs: 1000, freeSlots: 1 });
    assert.equal(first.assignment?.run.runId, second);
    const stale = first.assignment?.token ?? "";
    // fetchWork answers before the assignment's commit: see it ASSIGNED first, then QUEUED again.
    await waitFor(async () => (await p.client.getRun(second)).run.status === "ASSIGNED", { what: "assignment" });
    await waitFor(async () => (await p.client.getRun(second)).run.status === "QUEUED", { what: "lease expiry" });
    const again = await b.fetchWork({ agentId: "b1", waitMs: 1000, freeSlots: 1 });
    assert.equal(again.assignment?.run.runId, second);
    await refused(b.confirmAssignment({ agentId: "b1", runId: second, token: stale }), "STALE_ASSIGNMENT");
    const fresh = again.assignment?.token ?? "";
    await b.confirmAssignment({ agentId: "b1", runId: second, token: fresh });
    await refused(
      b.runStatus({ agentId: "b1", runId: second, token: stale, status: "COMPLETED", time: now() }),
      "STALE_ASSIGNMENT",
    );
    await refused(
      bLogs.logBatch({ agentId: "b1", lines: [logLine(second, 1)], tokens: { [second]: stale } }),
      "STALE_ASSIGNMENT",
    );
    const done = await b.runStatus({ agentId: "b1", runId: second, token: fresh, status: "COMPLETED", time: now() });
    assert.deepEqual(done, { applied: true, status: "COMPLETED" });
    const late = await bLogs.logBatch({ agentId: "b1", lines: [logLine(second, 9)], tokens: { [second]: fresh } });
    assert.equal(late.stored, 1, "a finished run's token still checks (spooled lines)");
  });

  it("several agents may share one agent key: each holds the leases it fetched", async () => {
    const p = await startPrincipal();
    const shared = (await p.createKey("pool", "agent")).key;
    const [x, y] = [p.connect({ key: shared }), p.connect({ key: shared })];
    await registerAgent(x, "pool-1");
    await registerAgent(y, "pool-2");
    const r1 = (await p.client.runWorkflow({ workflowId: "hello" })).runId;
    const r2 = (await p.client.runWorkflow({ workflowId: "hello" })).runId;
    const w1 = await x.fetchWork({ agentId: "pool-1", waitMs: 0, freeSlots: 1 });
    const w2 = await y.fetchWork({ agentId: "pool-2", waitMs: 0, freeSlots: 1 });
    assert.deepEqual([w1.assignment?.run.runId, w2.assignment?.run.runId], [r1, r2]);
    await x.confirmAssignment({ agentId: "pool-1", runId: r1, token: w1.assignment?.token ?? "" });
    await y.confirmAssignment({ agentId: "pool-2", runId: r2, token: w2.assignment?.token ?? "" });
    for (const [c, agentId, runId, token] of [
      [x, "pool-1", r1, w1.assignment?.token],
      [y, "pool-2", r2, w2.assignment?.token],
    ] as const) {
      const res = await c.runStatus({ agentId, runId, token, status: "COMPLETED", time: now() });
      assert.deepEqual(res, { applied: true, status: "COMPLETED" });
    }
  });
});

describe("keys verbs and revocation", { timeout: 90_000 }, () => {
  it("enrollKey, listKeys and revokeKey are an operator's; names and public keys are unique", async () => {
    const p = await startPrincipal();
    const pair = generateKeyPair();
    const body = { name: "ci", role: "trigger" as const, publicKey: pair.publicKey, workflows: ["hello"] };
    const { key } = await p.client.request("enrollKey", body);
    assert.deepEqual([key.name, key.role, key.scope, key.workflows], ["ci", "trigger", "ci", ["hello"]]);
    assert.deepEqual((await p.client.request("enrollKey", body)).key, key, "a resend is harmless");
    await refused(p.client.request("enrollKey", { ...body, publicKey: generateKeyPair().publicKey }), "KEY_IN_USE");
    await refused(p.client.request("enrollKey", { ...body, name: "ci2" }), "KEY_IN_USE");
    await refused(p.client.request("revokeKey", { name: "nobody" }), "KEY_NOT_FOUND");
    const reader = p.connect({ key: (await p.createKey("audit", "reader")).key });
    await refused(reader.request("listKeys", {}), "PERMISSION_DENIED");
    await refused(reader.request("revokeKey", { name: "ci" }), "PERMISSION_DENIED");
    await refused(
      reader.request("enrollKey", { name: "x", role: "operator", publicKey: generateKeyPair().publicKey }),
      "PERMISSION_DENIED",
    );
    const revoked = await p.client.request("revokeKey", { name: "ci" });
    assert.equal(revoked.revoked, true);
    const listed = (await p.client.request("listKeys", {})).keys.find((k) => k.name === "ci");
    assert.ok(listed?.revokedAt !== null);
  });

  it("a revoked key loses the API and log ports at once, and its subscriptions on the publish port; other keys keep working", async () => {
    const p = await startPrincipal();
    const created = await p.createKey("doomed", "operator");
    const api = p.connect({ key: created.key, timeoutMs: 1500 });
    const logs = p.connectLogs({ key: created.key, timeoutMs: 1500 });
    assert.match((await api.ping()).principalId, /principal/);
    await logs.ping();
    const doomedSub = new Subscriber({ endpoint: p.endpoints.publish, key: created.key });
    const keptSub = new Subscriber({ endpoint: p.endpoints.publish, key: p.key() });
    try {
      doomedSub.connect();
      doomedSub.subscribe(topics.runs("hello"));
      keptSub.connect();
      keptSub.subscribe(topics.runs("hello"));
      const [gotDoomed, gotKept] = [collect(doomedSub), collect(keptSub)];
      await triggerUntilSeen(p.client, gotDoomed, gotKept);

      await p.client.request("revokeKey", { name: "doomed" });
      await refused(api.ping(), "UNAUTHENTICATED", /not enrolled \(or was revoked\)/);
      await refused(api.runWorkflow({ workflowId: "hello" }), "UNAUTHENTICATED");
      await refused(logs.ping(), "UNAUTHENTICATED");
      const fresh = p.connect({ key: created.key, timeoutMs: 1000 });
      await refused(fresh.ping(), "TIMEOUT", /is key `doomed` enrolled/);

      // The publish socket was re-bound: the kept subscriber reconnects by itself, the revoked one cannot.
      const [doomedBefore, keptBefore] = [gotDoomed.length, gotKept.length];
      await waitFor(
        async () => {
          await p.client.runWorkflow({ workflowId: "hello" });
          await new Promise((r) => setTimeout(r, 100));
          return gotKept.length > keptBefore;
        },
        { timeoutMs: 15_000, what: "events after the re-bind" },
      );
      for (let i = 0; i < 5; i++) await p.client.runWorkflow({ workflowId: "hello" });
      await waitFor(() => gotKept.length >= keptBefore + 5, { what: "the kept subscriber's events" });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(gotDoomed.length, doomedBefore, "the revoked key receives nothing after revocation");
      assert.equal(countRows(p.dbPath, "runs", "WHERE triggered_by = 'doomed'"), 0);
    } finally {
      doomedSub.close();
      keptSub.close();
    }
  });
});

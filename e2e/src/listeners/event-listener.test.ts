/**
 * EventListener against a real principal process.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { EventListener, runListener, sleep, type TriggerResult } from "@cdktr/events";
import { PrincipalClient } from "@cdktr/protocol";
import { cleanup, freePorts, startPrincipal, waitFor, workflowYaml, type PrincipalFixture } from "@cdktr/test-utils";

const HELLO = workflowYaml({ name: "Hello", tasks: { hello: { name: "Hello", cmd: "echo", args: ["hello"] } } });

/** Triggers `hello` once when started, then waits for the stop signal. */
class OnceListener extends EventListener {
  readonly results: TriggerResult[] = [];
  protected async startListening(signal: AbortSignal): Promise<void> {
    this.results.push(await this.runWorkflow("hello", { params: {} }));
    await sleep(60_000, signal);
  }
}

class FailingListener extends EventListener {
  protected async startListening(): Promise<void> {
    throw new Error("boom");
  }
}

describe("EventListener with a real principal", () => {
  let port = 0;
  let principal: PrincipalFixture;
  /** The listeners' key, as the listeners app uses it (a trigger key made by the principal). */
  const key = () => principal.key("local-listeners");
  before(async () => {
    principal = await startPrincipal({ workflows: { "hello.yml": HELLO } });
    port = principal.ports.api;
  });
  after(cleanup);

  it("runWorkflow works without start(): run id, idempotency key, source = class name", async () => {
    const l = new OnceListener({ principal: { host: "127.0.0.1", port }, key: key() });
    const seen: TriggerResult[] = [];
    l.on("triggered", (r) => seen.push(r));
    const a = await l.runWorkflow("hello", { idempotencyKey: "k-1" });
    assert.equal(a.success, true);
    assert.equal(typeof a.runId, "string");
    assert.equal(a.duplicate, false);
    const again = await l.runWorkflow("hello", { idempotencyKey: "k-1" });
    assert.equal(again.runId, a.runId);
    assert.equal(again.duplicate, true);
    assert.equal(seen.length, 2);
    // what the principal recorded: the listener's class name as source, the key sent
    const api = new PrincipalClient({ port, env: {}, key: principal.key() });
    try {
      const { run } = await api.getRun(a.runId ?? "");
      assert.equal(run.source, "OnceListener");
      assert.equal(run.idempotencyKey, "k-1");
      const labelled = await l.runWorkflow("hello", {
        source: "custom-source",
        scheduledFor: "2026-01-02T03:04:05.000Z",
      });
      const rec = (await api.getRun(labelled.runId ?? "")).run;
      assert.equal(rec.source, "custom-source");
      assert.equal(rec.scheduledFor, "2026-01-02T03:04:05.000Z");
    } finally {
      api.close();
    }
    await l.stop(); // closes the client it created
  });

  it("runWorkflows: one request, a result per trigger in order; a dead principal fails every trigger, retryable", async () => {
    const l = new OnceListener({ principal: { host: "127.0.0.1", port }, key: key() });
    const seen: TriggerResult[] = [];
    l.on("triggered", (r) => seen.push(r));
    const results = await l.runWorkflows([
      { workflowId: "hello", idempotencyKey: "batch-1" },
      { workflowId: "nope" },
      { workflowId: "hello", idempotencyKey: "batch-1" },
      { workflowId: "hello", source: "batch-source" },
    ]);
    assert.deepEqual(
      results.map((r) => [r.workflowId, r.success, r.duplicate, r.error?.code ?? null]),
      [
        ["hello", true, false, null],
        ["nope", false, false, "WORKFLOW_NOT_FOUND"],
        ["hello", true, true, null],
        ["hello", true, false, null],
      ],
    );
    assert.equal(results[2]?.runId, results[0]?.runId);
    assert.equal(results[0]?.idempotencyKey, "batch-1");
    assert.match(results[1]?.idempotencyKey ?? "", /^[0-9a-f-]{36}$/, "a generated key is reported");
    assert.deepEqual(seen, results, "`triggered` once per trigger");
    const api = new PrincipalClient({ port, env: {}, key: principal.key() });
    try {
      assert.equal((await api.getRun(results[3]?.runId ?? "")).run.source, "batch-source");
      assert.equal((await api.getRun(results[0]?.runId ?? "")).run.source, "OnceListener");
    } finally {
      api.close();
    }
    await l.stop();

    const [unused = 1] = await freePorts(1);
    const dead = new OnceListener({ principal: { port: unused }, timeoutMs: 500, key: null });
    const failed = await dead.runWorkflows([{ workflowId: "a" }, { workflowId: "b" }], { retry: false });
    assert.deepEqual(
      failed.map((r) => [r.workflowId, r.success, r.error?.retryable]),
      [
        ["a", false, true],
        ["b", false, true],
      ],
    );
    await dead.stop();
  });

  it("deadline: already past is DEADLINE_EXCEEDED; retries against a dead principal stop at the deadline", async () => {
    const [unused = 1] = await freePorts(1);
    const l = new OnceListener({ principal: { port: unused }, timeoutMs: 5000, key: null });
    const past = await l.runWorkflow("hello", { deadline: Date.now() - 1 });
    assert.equal(past.success, false);
    assert.equal(past.error?.code, "DEADLINE_EXCEEDED");
    assert.match(past.error?.message ?? "", /hello/);
    // Without the deadline the client would make 3 attempts of 5 s each.
    const t0 = Date.now();
    const r = await l.runWorkflow("hello", { deadline: new Date(t0 + 1000) });
    const took = Date.now() - t0;
    assert.equal(r.success, false);
    assert.equal(r.error?.retryable, true);
    assert.ok(took < 2500, `gave up after ${took} ms with a 1 s deadline (3 capped attempts would take ~3.6 s)`);
    await l.stop();
  });

  it("`new Listener()` reads CDKTR_PRINCIPAL_PORT (and CDKTR_KEY_FILE); an unknown workflow is a result, not a throw", async () => {
    const saved = process.env.CDKTR_PRINCIPAL_PORT;
    const savedKey = process.env.CDKTR_KEY_FILE;
    process.env.CDKTR_PRINCIPAL_PORT = String(port);
    process.env.CDKTR_KEY_FILE = join(principal.keysDir, "local-listeners.json");
    try {
      const l = new OnceListener();
      const r = await l.runWorkflow("nope");
      assert.equal(r.success, false);
      assert.equal(r.runId, null);
      assert.equal(r.error?.code, "WORKFLOW_NOT_FOUND");
      assert.equal(r.error?.retryable, false);
      await l.stop();
    } finally {
      if (saved === undefined) delete process.env.CDKTR_PRINCIPAL_PORT;
      else process.env.CDKTR_PRINCIPAL_PORT = saved;
      if (savedKey === undefined) delete process.env.CDKTR_KEY_FILE;
      else process.env.CDKTR_KEY_FILE = savedKey;
    }
  });

  it("a transport failure is success: false, retryable", async () => {
    const [unused = 1] = await freePorts(1);
    const l = new OnceListener({ principal: { port: unused }, timeoutMs: 300, key: null });
    const r = await l.runWorkflow("hello", { retry: false });
    assert.equal(r.success, false);
    assert.equal(r.error?.retryable, true);
    assert.ok(["TIMEOUT", "UNAVAILABLE"].includes(r.error?.code ?? ""), r.error?.code);
    await l.stop();
  });

  it("start/stop are idempotent; the loop gets an AbortSignal", async () => {
    const l = new OnceListener({ principal: { port }, key: key() });
    const stopped: unknown[] = [];
    l.on("stopped", (s) => stopped.push(s));
    await l.start();
    await l.start();
    assert.equal(l.running, true);
    await waitFor(() => l.results.length === 1, { what: "the loop's trigger" });
    assert.equal(l.results[0]?.success, true);
    await l.stop();
    await l.stop();
    assert.equal(l.running, false);
    assert.deepEqual(stopped, [{ error: null }]);
    assert.equal(await l.done(), null);
  });

  it("a failing loop emits `error` and done() resolves with it", async () => {
    const l = new FailingListener({ principal: { port }, key: key() });
    const errors: string[] = [];
    l.on("error", (e) => errors.push(e.message));
    await l.start();
    const e = await l.done();
    assert.equal(e?.message, "boom");
    assert.deepEqual(errors, ["boom"]);
    assert.equal(l.running, false);
  });

  it("runListener: a signal stops the listener and exits 0; a second signal exits 130 at once", async () => {
    const l = new OnceListener({ principal: { port }, key: key() });
    const codes: number[] = [];
    await runListener(l, { signals: ["SIGUSR2"], exit: (c) => codes.push(c) });
    await waitFor(() => l.results.length === 1, { what: "the loop's trigger" });
    process.kill(process.pid, "SIGUSR2");
    await waitFor(() => codes.length === 1, { what: "the exit after stop" });
    assert.deepEqual(codes, [0]);
    assert.equal(l.running, false);
    process.removeAllListeners("SIGUSR2");

    // a loop that takes 1 s to wind down: the second signal does not wait for it
    class SlowStop extends EventListener {
      protected async startListening(signal: AbortSignal): Promise<void> {
        await sleep(60_000, signal);
        await sleep(1000);
      }
    }
    const slow = new SlowStop({ principal: { port } });
    const codes2: number[] = [];
    await runListener(slow, { signals: ["SIGUSR2"], exit: (c) => codes2.push(c) });
    process.kill(process.pid, "SIGUSR2");
    await sleep(100);
    process.kill(process.pid, "SIGUSR2");
    await waitFor(() => codes2.length === 1, { what: "the forced exit" });
    assert.deepEqual(codes2, [130]);
    await waitFor(() => codes2.length === 2, { what: "the graceful stop finishing" });
    process.removeAllListeners("SIGUSR2");
  });
});

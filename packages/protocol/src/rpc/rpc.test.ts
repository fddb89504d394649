import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Router } from "zeromq";
import { freePort, waitFor } from "@cdktr/test-base";
import { API_VERBS, type ApiVerbs } from "../messages.js";
import { CdktrError, isCdktrError } from "../errors.js";
import { PROTOCOL } from "./frames.js";
import { PrincipalClient } from "./principal-client.js";
import { RpcClient } from "./rpc-client.js";
import { RpcServer } from "./rpc-server.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function startServer(
  setup?: (s: RpcServer<ApiVerbs>) => void,
  endpoint = "tcp://127.0.0.1:0",
): Promise<RpcServer<ApiVerbs>> {
  const server = new RpcServer({ endpoint, verbs: API_VERBS, serverId: "test-principal" });
  setup?.(server);
  await server.bind();
  cleanups.push(() => server.close());
  return server;
}

function client(
  endpoint: string,
  opts: Partial<ConstructorParameters<typeof PrincipalClient>[0]> = {},
): PrincipalClient {
  const c = new PrincipalClient({ endpoint, timeoutMs: 2000, ...opts });
  cleanups.push(() => c.close());
  return c;
}

async function rawRouter(): Promise<{ sock: Router; endpoint: string }> {
  const sock = new Router({ linger: 0, receiveTimeout: 5000 });
  await sock.bind("tcp://127.0.0.1:*");
  cleanups.push(() => sock.close());
  return { sock, endpoint: sock.lastEndpoint ?? "" };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejection(p: Promise<unknown>): Promise<CdktrError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CdktrError, `expected a CdktrError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the call to reject");
}

describe("RpcServer + RpcClient", () => {
  it("resolves 64 concurrent requests on one client to their own callers, replied out of order", async () => {
    const order: string[] = [];
    const server = await startServer((s) =>
      s.handle("getWorkflow", async ({ workflowId }) => {
        await sleep(Math.floor(Math.random() * 20));
        order.push(workflowId);
        throw new CdktrError("WORKFLOW_NOT_FOUND", `no workflow ${workflowId}`);
      }),
    );
    const c = client(server.endpoint ?? "");
    const ids = Array.from({ length: 64 }, (_, i) => `wf-${i}`);
    const results = await Promise.all(
      ids.map((id) =>
        c.getWorkflow(id).then(
          () => "resolved",
          (e: CdktrError) => e.message,
        ),
      ),
    );
    assert.deepEqual(
      results,
      ids.map((id) => `no workflow ${id}`),
    );
    assert.equal(order.length, 64);
    assert.notDeepEqual(order, ids, "handlers should have finished out of order (random sleeps)");
  });

  it("at most maxInFlightPerPeer requests of one connection run at once; one more gets RESOURCE_EXHAUSTED at once", async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let started = 0;
    const server = new RpcServer({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS, maxInFlightPerPeer: 10 });
    server.handle("getWorkflow", async ({ workflowId }) => {
      started++;
      await held;
      throw new CdktrError("WORKFLOW_NOT_FOUND", `no workflow ${workflowId}`);
    });
    await server.bind();
    cleanups.push(() => server.close());
    const c = client(server.endpoint ?? "", { timeoutMs: 5000, retry: { attempts: 1 } });
    const other = client(server.endpoint ?? "", { timeoutMs: 5000, retry: { attempts: 1 } });
    const outcome = (id: string, via = c): Promise<string> =>
      via.getWorkflow(id).then(
        () => "resolved",
        (e: CdktrError) => e.code,
      );
    const first = Array.from({ length: 10 }, (_, i) => outcome(`wf-${i}`));
    await waitFor(() => started === 10, { what: "ten handlers running" });
    // One more from the same connection is refused at once; another connection is not held back.
    assert.equal(await outcome("wf-10"), "RESOURCE_EXHAUSTED");
    const fromOther = outcome("wf-other", other);
    await waitFor(() => started === 11, { what: "the other connection's handler running" });
    release();
    assert.deepEqual(await Promise.all(first), Array(10).fill("WORKFLOW_NOT_FOUND"));
    assert.equal(await fromOther, "WORKFLOW_NOT_FOUND");
    // Once replied, the connection may send again.
    assert.equal(await outcome("wf-11"), "WORKFLOW_NOT_FOUND");
    assert.equal(started, 12);
  });

  it("passes the parsed body and a context, and returns the handler's reply", async () => {
    let seen: { peer: string; requestId: string; deadline: number | null } | undefined;
    const server = await startServer((s) =>
      s.handle("cancelRun", (body, ctx) => {
        seen = { peer: ctx.peer, requestId: ctx.requestId, deadline: ctx.deadline };
        return { runId: body.runId, status: "CANCELLED", cancelled: true };
      }),
    );
    const c = client(server.endpoint ?? "");
    const before = Date.now();
    const reply = await c.cancelRun("run-1");
    assert.deepEqual(reply, { runId: "run-1", status: "CANCELLED", cancelled: true });
    assert.ok(seen !== undefined);
    assert.match(seen.peer, /^c-[0-9a-f]{24}$/);
    assert.ok(seen.requestId.length > 0);
    assert.ok(seen.deadline !== null && seen.deadline >= before + 2000);
    const ping = await c.ping();
    assert.equal(ping.principalId, "test-principal", "built-in ping handler answers");
  });

  it("turns a thrown CdktrError into its code and anything else into INTERNAL", async () => {
    const server = await startServer((s) =>
      s
        .handle("getRun", ({ runId }) => {
          throw new CdktrError("RUN_NOT_FOUND", `run ${runId} not found; list runs with \`cdktr runs\``);
        })
        .handle("listAgents", () => {
          throw new TypeError("boom");
        }),
    );
    const c = client(server.endpoint ?? "", { retry: { attempts: 1 } });
    const notFound = await rejection(c.getRun("r-9"));
    assert.equal(notFound.code, "RUN_NOT_FOUND");
    assert.equal(notFound.retryable, false);
    assert.match(notFound.message, /run r-9 not found/);
    const internal = await rejection(c.listAgents());
    assert.equal(internal.code, "INTERNAL");
  });

  it("refuses an invalid body locally with the field path", async () => {
    const server = await startServer();
    const c = client(server.endpoint ?? "");
    const err = await rejection(c.request("getRun", { runId: 42 } as never));
    assert.equal(err.code, "BAD_REQUEST");
    assert.match(err.message, /body\.runId: .*expected string/);
  });

  it("refuses an oversize request locally with MESSAGE_TOO_LARGE", async () => {
    const server = await startServer();
    const c = client(server.endpoint ?? "");
    const err = await rejection(c.runWorkflow({ workflowId: "etl", params: { big: "x".repeat(1_100_000) } }));
    assert.equal(err.code, "MESSAGE_TOO_LARGE");
  });

  it("gives a typed TIMEOUT by the deadline when the server never replies", async () => {
    const { sock, endpoint } = await rawRouter();
    const received: string[] = [];
    void (async () => {
      try {
        for (;;) received.push(String((await sock.receive())[4]));
      } catch {
        /* closed */
      }
    })();
    const c = client(endpoint, { timeoutMs: 300, retry: { attempts: 1 } });
    const t0 = Date.now();
    const err = await rejection(c.ping());
    const elapsed = Date.now() - t0;
    assert.equal(err.code, "TIMEOUT");
    assert.ok(isCdktrError(err, "TIMEOUT"));
    assert.match(err.message, new RegExp(`no reply from ${endpoint.replace(/\./g, "\\.")} within 300 ms`));
    assert.ok(elapsed >= 290, `rejected after ${elapsed} ms, before the deadline`);
    assert.ok(elapsed < 3000, `rejected after ${elapsed} ms, long after the deadline`);
    assert.deepEqual(received, ["ping"]);
  });

  it("retries an idempotent verb on TIMEOUT, but never a non-idempotent one", async () => {
    const { sock, endpoint } = await rawRouter();
    const received: { verb: string; requestId: string }[] = [];
    void (async () => {
      try {
        for (;;) {
          const f = await sock.receive();
          received.push({ verb: String(f[4]), requestId: String(f[2]) });
        }
      } catch {
        /* closed */
      }
    })();
    const c = client(endpoint, { timeoutMs: 200, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 } });
    assert.equal((await rejection(c.heartbeat({ agentId: "a1", runningRuns: [] }))).code, "TIMEOUT");
    await waitFor(() => received.length === 3, { timeoutMs: 2000, what: "3 heartbeat attempts" });
    assert.equal(new Set(received.map((r) => r.requestId)).size, 3, "each attempt has its own request id");
    received.length = 0;
    assert.equal(
      (await rejection(c.fetchWork({ agentId: "a1", waitMs: 0, freeSlots: 1 }, { timeoutMs: 200 }))).code,
      "TIMEOUT",
    );
    await sleep(300);
    assert.deepEqual(
      received.map((r) => r.verb),
      ["fetchWork"],
      "fetchWork is sent exactly once",
    );
  });

  it("discards a late reply and matches the next reply to its own request", async () => {
    const { sock, endpoint } = await rawRouter();
    const c = client(endpoint, { timeoutMs: 300, retry: { attempts: 1 } });
    const first = rejection(c.ping());
    const [rid1, , id1] = await sock.receive();
    assert.equal((await first).code, "TIMEOUT");
    const second = c.ping();
    const [rid2, , id2] = await sock.receive();
    const pong = (who: string) => JSON.stringify({ principalId: who, version: "1", time: new Date().toISOString() });
    await sock.send([rid1 as Buffer, PROTOCOL, id1 as Buffer, "ok", pong("late")]);
    await sock.send([rid2 as Buffer, PROTOCOL, id2 as Buffer, "ok", pong("on-time")]);
    assert.equal((await second).principalId, "on-time");
  });

  it("rejects an invalid reply with INTERNAL and a foreign protocol reply with PROTOCOL_MISMATCH", async () => {
    const { sock, endpoint } = await rawRouter();
    const c = client(endpoint, { retry: { attempts: 1 } });
    const bad = rejection(c.ping());
    const [r1, , i1] = await sock.receive();
    await sock.send([r1 as Buffer, PROTOCOL, i1 as Buffer, "ok", JSON.stringify({ principalId: 1 })]);
    const e1 = await bad;
    assert.equal(e1.code, "INTERNAL");
    assert.match(e1.message, /invalid ping reply .*reply\.principalId/);
    const foreign = rejection(c.ping());
    const [r2, , i2] = await sock.receive();
    await sock.send([r2 as Buffer, "cdktr/2", i2 as Buffer, "ok", "{}"]);
    assert.equal((await foreign).code, "PROTOCOL_MISMATCH");
  });

  it("does not execute a request sent while no server ran, once a server starts", async () => {
    const port = await freePort();
    const endpoint = `tcp://127.0.0.1:${port}`;
    const c = client(endpoint, { timeoutMs: 300 });
    const err = await rejection(c.runWorkflow({ workflowId: "etl" }));
    assert.equal(err.code, "TIMEOUT");
    assert.match(err.message, /could not reach .* is the principal running\?/);
    let runCalls = 0;
    await startServer(
      (s) =>
        s.handle("runWorkflow", () => {
          runCalls++;
          return { runId: "r1", duplicate: false, skipped: false, status: "QUEUED" };
        }),
      endpoint,
    );
    // A later request on the same connection proves the client is connected: anything queued
    // before it would have been delivered first.
    const pong = await c.ping({ timeoutMs: 5000 });
    assert.equal(pong.principalId, "test-principal");
    assert.equal(runCalls, 0);
  });

  it("reuses the generated idempotency key when runWorkflow is retried after a lost reply", async () => {
    const keys: (string | undefined)[] = [];
    const server = await startServer((s) =>
      s.handle("runWorkflow", async (body) => {
        keys.push(body.idempotencyKey);
        if (keys.length === 1) await sleep(1200); // answer after the caller's deadline
        return { runId: "run-1", duplicate: keys.length > 1, skipped: false, status: "QUEUED" };
      }),
    );
    const c = client(server.endpoint ?? "", {
      timeoutMs: 500,
      retry: { attempts: 5, baseDelayMs: 10, maxDelayMs: 20 },
    });
    const reply = await c.runWorkflow({ workflowId: "etl", source: "test" });
    assert.equal(reply.runId, "run-1");
    assert.ok(keys.length >= 2, `expected a retry, the handler saw ${keys.length} request(s)`);
    assert.match(keys[0] ?? "", /^auto:[0-9a-z]{9}-[0-9a-f-]{36}$/);
    assert.ok(
      keys.every((k) => k === keys[0]),
      `keys differ: ${keys.join(", ")}`,
    );
    const n = keys.length;
    await c.runWorkflow({ workflowId: "etl", idempotencyKey: "mine" });
    assert.equal(keys[n], "mine", "a caller's key is sent as is");
    await c.runWorkflow({ workflowId: "etl" });
    assert.match(keys[n + 1] ?? "", /^auto:/);
    assert.notEqual(keys[n + 1], keys[0], "each call gets a fresh key");
  });

  it("aborts the handler's signal at the caller's deadline", async () => {
    let aborted: unknown;
    const server = await startServer((s) =>
      s.handle(
        "fetchWork",
        (_body, ctx) =>
          new Promise((resolve) => {
            ctx.signal.addEventListener("abort", () => {
              aborted = ctx.signal.reason;
              // Reply later than the caller's own timer: the server's deadline timer and the
              // client's fire in the same millisecond, and a reply that wins the race would
              // resolve the call this test expects to time out.
              setTimeout(() => resolve({ assignment: null, cancel: [] }), 200);
            });
          }),
      ),
    );
    const c = client(server.endpoint ?? "");
    const err = await rejection(c.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 }, { timeoutMs: 200 }));
    assert.equal(err.code, "TIMEOUT");
    await waitFor(() => aborted !== undefined, { timeoutMs: 2000, what: "abort" });
    assert.ok(isCdktrError(aborted, "DEADLINE_EXCEEDED"));
  });

  it("rejects pending calls with CLOSED on close(), and later calls too", async () => {
    const { endpoint } = await rawRouter();
    const c = new RpcClient({ endpoint, verbs: API_VERBS, timeoutMs: 5000 });
    const pending = rejection(c.request("ping", {}));
    await sleep(50);
    c.close();
    assert.equal((await pending).code, "CLOSED");
    assert.equal((await rejection(c.request("ping", {}))).code, "CLOSED");
  });

  it("answers SHUTTING_DOWN while closing and lets running handlers finish", async () => {
    let release: (() => void) | undefined;
    const server = await startServer((s) =>
      s.handle(
        "listAgents",
        () =>
          new Promise((resolve) => {
            release = () => resolve({ agents: [], nextCursor: null });
          }),
      ),
    );
    const c = client(server.endpoint ?? "", { retry: { attempts: 1 } });
    const slow = c.listAgents();
    await waitFor(() => release !== undefined, { timeoutMs: 2000, what: "handler started" });
    const closing = server.close();
    const refused = await rejection(c.ping());
    assert.equal(refused.code, "SHUTTING_DOWN");
    release?.();
    assert.deepEqual(await slow, { agents: [], nextCursor: null });
    await closing;
  });
  it("drops a reply to a client that went away and keeps serving others", async () => {
    let release: (() => void) | undefined;
    const server = await startServer((s) =>
      s.handle(
        "listAgents",
        () =>
          new Promise((resolve) => {
            release = () => resolve({ agents: [], nextCursor: null });
          }),
      ),
    );
    const gone = new PrincipalClient({ endpoint: server.endpoint ?? "", retry: { attempts: 1 } });
    const call = rejection(gone.listAgents());
    await waitFor(() => release !== undefined, { timeoutMs: 2000, what: "handler started" });
    gone.close();
    assert.equal((await call).code, "CLOSED");
    release?.(); // the reply is now unroutable (EHOSTUNREACH on the mandatory ROUTER)
    const c = client(server.endpoint ?? "");
    assert.equal((await c.ping()).principalId, "test-principal");
  });

  it("explains a bind failure and names the endpoint", async () => {
    const first = await startServer();
    const second = new RpcServer({ endpoint: first.endpoint ?? "", verbs: API_VERBS });
    cleanups.push(() => second.close());
    await assert.rejects(second.bind(), (e: Error & { code?: string }) => {
      assert.equal(e.code, "EADDRINUSE");
      assert.match(e.message, new RegExp(`cannot bind ${(first.endpoint ?? "").replace(/\./g, "\\.")}.*in use`));
      return true;
    });
  });
});

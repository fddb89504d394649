import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Router } from "zeromq";
import { API_VERBS, LOG_VERBS, type ApiVerbs, type LogVerbs } from "../messages.js";
import { CdktrError, type AdvertisedEndpoints } from "../errors.js";
import { LeaderWatch } from "./leader-watch.js";
import { LogClient } from "./log-client.js";
import { PrincipalClient } from "./principal-client.js";
import { RpcServer } from "./rpc-server.js";
import { waitFor } from "@cdktr/test-base";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** A principal's API and log servers, in a test: a leader, or a standby refusing writes. */
interface Fake {
  api: RpcServer<ApiVerbs>;
  logs: RpcServer<LogVerbs>;
  ends: AdvertisedEndpoints;
  /** Verbs this principal executed (not refused). */
  done: string[];
  /** Verbs it refused with NOT_LEADER. */
  refused: string[];
}

const RUN = { runId: "r1", duplicate: false, skipped: false, status: "QUEUED" } as const;

/**
 * `leaderOf()`: the leader to name in NOT_LEADER (undefined: none, an election); null makes this
 * principal the leader.
 */
async function fake(leaderOf: () => AdvertisedEndpoints | null | undefined): Promise<Fake> {
  const api = new RpcServer({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS });
  const logs = new RpcServer({ endpoint: "tcp://127.0.0.1:0", verbs: LOG_VERBS });
  const f: Fake = { api, logs, ends: { api: "", logs: "", publish: "" }, done: [], refused: [] };
  const gate = (verb: string): void => {
    const leader = leaderOf();
    if (leader === null) {
      f.done.push(verb);
      return;
    }
    f.refused.push(verb);
    throw new CdktrError("NOT_LEADER", "a standby: send writes to the leader", { leader });
  };
  api
    .handle("ping", () => {
      const leader = leaderOf();
      return {
        principalId: "p",
        version: "1",
        time: new Date().toISOString(),
        role: leader === null ? ("leader" as const) : ("standby" as const),
        leader: leader === null ? f.ends : (leader ?? null),
      };
    })
    .handle("runWorkflow", () => {
      gate("runWorkflow");
      return RUN;
    })
    .handle("cancelRun", () => {
      gate("cancelRun");
      return { runId: "r1", status: "CANCELLED", cancelled: true };
    })
    .handle("registerAgent", () => {
      gate("registerAgent");
      return { heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 5000, cancel: [], leader: f.ends };
    });
  logs.handle("logBatch", ({ lines }) => {
    gate("logBatch");
    return { stored: lines.length, duplicates: 0 };
  });
  const apiEp = await api.bind();
  const logsEp = await logs.bind();
  f.ends = { api: apiEp, logs: logsEp, publish: "tcp://127.0.0.1:1" };
  cleanups.push(
    () => api.close(),
    () => logs.close(),
  );
  return f;
}

/** A principal that takes requests and never answers (hung, or cut off after receiving). */
async function silent(): Promise<{ endpoint: string; received: () => number }> {
  const sock = new Router({ linger: 0 });
  await sock.bind("tcp://127.0.0.1:*");
  let n = 0;
  void (async () => {
    try {
      for await (const _ of sock) n++;
    } catch {
      // closed
    }
  })();
  cleanups.push(() => sock.close());
  return { endpoint: sock.lastEndpoint ?? "", received: () => n };
}

function client(endpoints: string[], opts: Partial<ConstructorParameters<typeof PrincipalClient>[0]> = {}) {
  const c = new PrincipalClient({ endpoints, timeoutMs: 1000, env: {}, key: null, ...opts });
  cleanups.push(() => c.close());
  return c;
}

async function rejection(p: Promise<unknown>): Promise<CdktrError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CdktrError, `expected a CdktrError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the call to reject");
}

const line = (seq: number) => ({
  time: new Date().toISOString(),
  runId: "r1",
  workflowId: "wf",
  taskId: "t",
  stream: "stdout" as const,
  level: "info" as const,
  seq,
  line: `line ${seq}`,
});

describe("clients of several principals follow the leader", () => {
  it("a write refused by a standby with NOT_LEADER is resent to the leader it names, which is learned", async () => {
    let leader: Fake | undefined;
    const standby = await fake(() => leader?.ends);
    leader = await fake(() => null);
    const c = client([standby.ends.api, leader.ends.api]);
    const moves: AdvertisedEndpoints[] = [];
    c.onLeaderChange((l) => moves.push(l));

    assert.deepEqual(await c.runWorkflow({ workflowId: "wf", source: "cli" }), RUN);
    assert.deepEqual(standby.refused, ["runWorkflow"]);
    assert.deepEqual(leader.done, ["runWorkflow"]);
    assert.deepEqual(c.leader, leader.ends);
    assert.deepEqual(moves, [leader.ends]);
    assert.equal(c.endpoint, leader.ends.api);

    // The next call goes straight to the leader.
    await c.cancelRun("r1");
    assert.deepEqual(standby.refused, ["runWorkflow"]);
    assert.deepEqual(leader.done, ["runWorkflow", "cancelRun"]);
  });

  it("a ping of a standby teaches the leader's endpoints; a leader's registerAgent reply confirms them", async () => {
    let leader: Fake | undefined;
    const standby = await fake(() => leader?.ends);
    leader = await fake(() => null);
    const c = client([standby.ends.api, leader.ends.api]);
    assert.equal(c.leader, null, "unknown before any reply");
    assert.deepEqual(await c.findLeader(), leader.ends);
    assert.equal(c.endpoint, leader.ends.api);
    const reply = await c.registerAgent({
      agentId: "a",
      host: "h",
      capacity: 1,
      labels: [],
      version: "1",
      runningRuns: [],
    });
    assert.deepEqual(reply.leader, leader.ends);
    assert.deepEqual(standby.refused, []);
  });

  it("NOT_LEADER without a leader (an election) backs off and tries the next principal", async () => {
    const electing = await fake(() => undefined);
    const leader = await fake(() => null);
    const c = client([electing.ends.api, leader.ends.api], { retry: { baseDelayMs: 200, maxDelayMs: 400 } });
    const t0 = performance.now();
    await c.cancelRun("r1");
    const took = performance.now() - t0;
    assert.deepEqual(electing.refused, ["cancelRun"]);
    assert.deepEqual(leader.done, ["cancelRun"]);
    assert.ok(took >= 100, `backed off before moving on (took ${took.toFixed(0)} ms)`);
  });

  it("one principal in an election: the call waits for it to lead, then succeeds", async () => {
    let electing = true;
    const p = await fake(() => (electing ? undefined : null));
    setTimeout(() => {
      electing = false;
    }, 600).unref();
    const c = client([p.ends.api], { retry: { baseDelayMs: 100, maxDelayMs: 200 } });
    await c.cancelRun("r1");
    assert.ok(p.refused.length >= 2, `refused ${p.refused.length} times before leading`);
    assert.deepEqual(p.done, ["cancelRun"]);
  });

  it("gives up with NOT_LEADER once leaderWaitMs has passed without a leader", async () => {
    const p = await fake(() => undefined);
    const c = client([p.ends.api], { leaderWaitMs: 500, retry: { baseDelayMs: 50, maxDelayMs: 100 } });
    const err = await rejection(c.cancelRun("r1"));
    assert.equal(err.code, "NOT_LEADER");
  });

  it("silence moves on: an idempotent call is resent to the next principal", async () => {
    const hung = await silent();
    const leader = await fake(() => null);
    const c = client([hung.endpoint, leader.ends.api], { timeoutMs: 500 });
    await c.cancelRun("r1");
    assert.equal(hung.received(), 1);
    assert.deepEqual(leader.done, ["cancelRun"]);
  });

  it("silence never turns an at-most-once request into a duplicate: unkeyed runWorkflow and fetchWork are not resent", async () => {
    const hung = await silent();
    const leader = await fake(() => null);
    const c = client([hung.endpoint, leader.ends.api], { timeoutMs: 500 });
    const err = await rejection(c.request("runWorkflow", { workflowId: "wf", source: "cli" }));
    assert.equal(err.code, "TIMEOUT");
    assert.equal(hung.received(), 1);
    assert.deepEqual(leader.done, [], "the unkeyed trigger sent to the silent principal is not resent");
    // ...but the client moved: the next request goes to the other principal.
    assert.deepEqual(await c.runWorkflow({ workflowId: "wf", source: "cli" }), RUN);
    assert.deepEqual(leader.done, ["runWorkflow"]);
  });

  it("a fetchWork sent to a silent principal is not resent", async () => {
    const hung = await silent();
    const leader = await fake(() => null);
    leader.api.handle("fetchWork", () => {
      leader.done.push("fetchWork");
      return { assignment: null, cancel: [] };
    });
    const c = client([hung.endpoint, leader.ends.api], { timeoutMs: 500 });
    const err = await rejection(c.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 }));
    assert.equal(err.code, "TIMEOUT");
    assert.deepEqual(leader.done, []);
  });

  it("when the leader moves, calls waiting on the old one end now: an idempotent one is resent to the new leader, a fetchWork fails", async () => {
    const hung = await silent();
    const leader = await fake(() => null);
    leader.api.handle("fetchWork", () => {
      leader.done.push("fetchWork");
      return { assignment: null, cancel: [] };
    });
    const c = client([hung.endpoint, leader.ends.api], { timeoutMs: 30_000 });
    c.leaderWatch.set({ api: hung.endpoint, logs: "tcp://127.0.0.1:1", publish: "tcp://127.0.0.1:2" });
    const t0 = performance.now();
    const cancel = c.cancelRun("r1");
    const fetch = rejection(c.fetchWork({ agentId: "a", waitMs: 20_000, freeSlots: 1 }));
    await waitFor(() => hung.received() === 2);
    c.leaderWatch.set(leader.ends);
    assert.deepEqual(await cancel, { runId: "r1", status: "CANCELLED", cancelled: true });
    const cut = await fetch;
    assert.equal(cut.code, "TIMEOUT", "cut by the move: outcome unknown, retryable like any silence");
    assert.equal(cut.retryable, true);
    assert.match(cut.message, /the leader moved/);
    assert.ok(performance.now() - t0 < 5000, "long before the 30 s timeout");
    assert.deepEqual(leader.done, ["cancelRun"], "the fetch is not resent");
    await c.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
    assert.deepEqual(leader.done, ["cancelRun", "fetchWork"]);
  });

  it("the log client follows NOT_LEADER to the leader's log endpoint and resends the batch", async () => {
    let leader: Fake | undefined;
    const standby = await fake(() => leader?.ends);
    leader = await fake(() => null);
    const logs = new LogClient({ endpoint: standby.ends.logs, timeoutMs: 1000, env: {}, key: null });
    cleanups.push(() => logs.close());
    assert.deepEqual(await logs.logBatch({ agentId: "a", lines: [line(1), line(2)] }, { retry: false }), {
      stored: 2,
      duplicates: 0,
    });
    assert.deepEqual(standby.refused, ["logBatch"]);
    assert.deepEqual(leader.done, ["logBatch"]);
    assert.equal(logs.endpoint, leader.ends.logs);
  });

  it("a log client sharing the API client's leader watch moves with it", async () => {
    let leader: Fake | undefined;
    const standby = await fake(() => leader?.ends);
    leader = await fake(() => null);
    const watch = new LeaderWatch({ configured: null });
    const c = client([standby.ends.api, leader.ends.api], { leaderWatch: watch });
    const logs = new LogClient({ endpoint: standby.ends.logs, leaderWatch: watch, env: {}, key: null });
    cleanups.push(() => logs.close());
    await c.registerAgent({ agentId: "a", host: "h", capacity: 1, labels: [], version: "1", runningRuns: [] });
    assert.equal(logs.endpoint, leader.ends.logs);
    await logs.logBatch({ agentId: "a", lines: [line(1)] });
    assert.deepEqual(standby.refused, ["registerAgent"]);
    assert.deepEqual(leader.done, ["registerAgent", "logBatch"]);
  });

  it("a leader advertising another name for its API is still reached where it answered", async () => {
    const p = await fake(() => null);
    const real = p.ends.api;
    p.ends = { ...p.ends, api: "tcp://principal-1.invalid:5561" };
    const c = client([real, "tcp://127.0.0.1:1"]);
    assert.deepEqual(await c.findLeader(), { ...p.ends, api: real });
    assert.equal(c.endpoint, real);
    await c.cancelRun("r1");
  });

  it("with one configured principal that leads, nothing moves and logs stay on the configured endpoint", async () => {
    const p = await fake(() => null);
    const c = client([p.ends.api], { logsPort: 7001, publishPort: 7002 });
    const moves: AdvertisedEndpoints[] = [];
    c.onLeaderChange((l) => moves.push(l));
    await c.ping();
    await c.cancelRun("r1");
    assert.deepEqual(moves, []);
    assert.equal(c.endpoint, p.ends.api);
    assert.equal(c.leader?.logs, p.ends.api.replace(/:\d+$/, ":7001"));
  });

  it("followLeader: false talks to its one principal: a standby's NOT_LEADER reaches the caller, and what replies say of the leader does not move it", async () => {
    let leader: Fake | undefined;
    const standby = await fake(() => leader?.ends);
    leader = await fake(() => null);
    const c = client([standby.ends.api], { followLeader: false });
    const pong = await c.ping();
    assert.deepEqual(pong.leader, leader.ends, "the standby names the leader");
    const err = await rejection(c.runWorkflow({ workflowId: "wf", source: "test" }, { retry: false }));
    assert.equal(err.code, "NOT_LEADER");
    assert.deepEqual(err.leader, leader.ends);
    await rejection(c.runWorkflow({ workflowId: "wf", source: "test" }, { retry: false }));
    assert.deepEqual(standby.refused, ["runWorkflow", "runWorkflow"]);
    assert.deepEqual(leader.done, [], "nothing went to the leader");
  });
});

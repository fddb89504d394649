/**
 * Issue 13, the dispatcher and the agent registry under abuse: a flood of `fetchWork` long-polls
 * from one agent, agents with huge labels, lost agents that pile up, and a cancel whose commit
 * fails. Every test runs the real principal process (real sockets, real SQLite).
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { z } from "zod";
import { API_VERBS, RpcClient, isCdktrError } from "@cdktr/protocol";
import {
  POLL_FLOOD_SCRIPT,
  cleanup,
  spawnService,
  startPrincipal,
  waitFor,
  type PrincipalFixture,
} from "@cdktr/test-utils";

afterEach(cleanup);

const POLLS = 60_000;

interface FloodStatus {
  answered: number;
  assigned: string[];
  errors: number;
}

describe("dispatcher limits", { timeout: 90_000 }, () => {
  it(`${POLLS} fetchWork long-polls from one agent: all beyond its free slots answered at once, ping stays fast, no run lost`, async () => {
    const p = await startPrincipal();
    const agent = p.connect({ key: p.key("local-agent") });
    const capacity = 3;
    await agent.registerAgent({ agentId: "greedy", host: "h", capacity, labels: [], version: "t", runningRuns: [] });
    // One run held by the agent takes one of its slots.
    const first = await p.client.runWorkflow({ workflowId: "hello" });
    const w = await agent.fetchWork({ agentId: "greedy", waitMs: 0, freeSlots: capacity });
    assert.equal(w.assignment?.run.runId, first.runId);
    await agent.confirmAssignment({ agentId: "greedy", runId: first.runId, token: w.assignment?.token ?? "" });
    const free = capacity - 1;

    // The polls come from another process (same agent id and key), so that the pings measured
    // here do not queue behind the flood's own work in this process.
    let status: FloodStatus = { answered: 0, assigned: [], errors: 0 };
    const flood = await spawnService({
      script: POLL_FLOOD_SCRIPT,
      name: "poll-flood",
      env: {
        FLOOD_PORT: String(p.ports.api),
        FLOOD_KEY_FILE: join(p.keysDir, "local-agent.json"),
        FLOOD_AGENT: "greedy",
        FLOOD_CAPACITY: String(capacity),
        FLOOD_COUNT: String(POLLS),
        FLOOD_WAIT_MS: "55000",
      },
      readyTimeoutMs: 30_000,
      onLine: (line) => {
        if (line.startsWith('{"message":"status"')) status = JSON.parse(line) as FloodStatus;
      },
    });
    const pings: number[] = [];
    await waitFor(
      async () => {
        const t = Date.now();
        await p.client.ping({ timeoutMs: 20_000, retry: false });
        pings.push(Date.now() - t);
        return status.answered >= POLLS - free;
      },
      { timeoutMs: 50_000, intervalMs: 100, what: `${POLLS - free} polls answered at once` },
    );
    if (process.env.CDKTR_TEST_VERBOSE) process.stderr.write(`pings during the flood (ms): ${JSON.stringify(pings)}\n`);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      status,
      { message: "status", answered: POLLS - free, assigned: [], errors: 0 },
      "the free slots stay parked",
    );
    const slowest = Math.max(...pings);
    assert.ok(slowest < 2000, `a ping took ${slowest} ms during the flood (all: ${pings.join(", ")})`);
    // The parked polls still work: each new run goes to one of them; none is lost.
    const runs: string[] = [];
    for (let i = 0; i < free; i++) runs.push((await p.client.runWorkflow({ workflowId: "hello" })).runId);
    await waitFor(() => status.assigned.length === free, { timeoutMs: 10_000, what: "parked polls assigned" });
    assert.deepEqual([...status.assigned].sort(), [...runs].sort());
    for (const id of runs) assert.equal((await p.client.getRun(id)).run.status, "ASSIGNED");
    // At capacity now: a further poll gets nothing at once instead of parking.
    const t = Date.now();
    assert.deepEqual(await agent.fetchWork({ agentId: "greedy", waitMs: 30_000, freeSlots: 1 }), {
      assignment: null,
      cancel: [],
    });
    assert.ok(Date.now() - t < 5000);
    await flood.stop();
  });

  it("a lost agent is forgotten after CDKTR_AGENT_GC_AFTER_MS; an active one stays", async () => {
    const p = await startPrincipal({
      env: { CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "400", CDKTR_AGENT_GC_AFTER_MS: "800" },
    });
    const agent = p.connect({ key: p.key("local-agent") });
    for (const id of ["gone", "kept"]) {
      await agent.registerAgent({ agentId: id, host: "h", capacity: 1, labels: [], version: "t", runningRuns: [] });
    }
    const beat = setInterval(
      () => void agent.heartbeat({ agentId: "kept", runningRuns: [] }).catch(() => undefined),
      100,
    );
    try {
      const status = async (): Promise<string[]> =>
        (await p.client.allAgents()).map((a) => `${a.agentId}:${a.status}`).sort();
      await waitFor(async () => (await status()).includes("gone:LOST"), { what: "gone LOST" });
      await waitFor(async () => (await status()).join() === "kept:ACTIVE", { timeoutMs: 5000, what: "gone forgotten" });
      assert.ok(p.service?.lines.some((l) => l.includes("lost agent forgotten")));
    } finally {
      clearInterval(beat);
    }
  });

  it("malformed session fields (fetchWork, registerAgent, heartbeat, confirmAssignment) get BAD_REQUEST naming the field; nothing changes, the principal keeps serving", async () => {
    const p = await startPrincipal();
    // A client that sends whatever it is given (an old, buggy or hostile agent).
    const anyBody = <V extends keyof typeof API_VERBS>(verb: V) => ({ ...API_VERBS[verb], request: z.any() });
    const loose = new RpcClient({
      endpoint: `tcp://127.0.0.1:${p.ports.api}`,
      verbs: {
        ...API_VERBS,
        fetchWork: anyBody("fetchWork"),
        registerAgent: anyBody("registerAgent"),
        heartbeat: anyBody("heartbeat"),
        confirmAssignment: anyBody("confirmAssignment"),
      },
      key: p.key("local-agent"),
      timeoutMs: 10_000,
    });
    const agent = { agentId: "odd", host: "h", capacity: 1, labels: [], version: "t", runningRuns: [] };
    const session = "s3ss10n-0001";
    const cases: [
      verb: "fetchWork" | "registerAgent" | "heartbeat" | "confirmAssignment",
      body: object,
      names: RegExp,
    ][] = [
      ["fetchWork", { agentId: "odd", waitMs: 0, freeSlots: 1, session }, /seq.*give both `session` and `seq`/s],
      ["fetchWork", { agentId: "odd", waitMs: 0, freeSlots: 1, seq: 1 }, /give both `session` and `seq`/],
      ["fetchWork", { agentId: "odd", waitMs: 0, freeSlots: 1, session: "a b", seq: 1 }, /session.*8-64 letters/s],
      ["fetchWork", { agentId: "odd", waitMs: 0, freeSlots: 1, session, seq: 0 }, /seq/],
      ["registerAgent", { ...agent, session: "x".repeat(65) }, /session.*8-64 letters/s],
      ["registerAgent", { ...agent, session, predecessor: { session } }, /predecessor/],
      ["registerAgent", { ...agent, session, predecessor: { session: "?", started: [] } }, /predecessor.*session/s],
      ["heartbeat", { agentId: "odd", runningRuns: [], session, settledThrough: -1 }, /settledThrough/],
      ["confirmAssignment", { agentId: "odd", runId: "r", token: "t", time: "yesterday" }, /time/],
    ];
    try {
      for (const [verb, body, names] of cases) {
        const err: unknown = await loose.request(verb, body as never).then(
          () => null,
          (e: unknown) => e,
        );
        assert.ok(isCdktrError(err, "BAD_REQUEST"), `${verb} ${JSON.stringify(body)}: ${String(err)}`);
        assert.match(String((err as Error).message), names, `${verb} ${JSON.stringify(body)}`);
      }
      assert.deepEqual((await p.client.listAgents()).agents, [], "no registration was taken");
      const ok = await p.connect({ key: p.key("local-agent") }).registerAgent({ ...agent, session });
      assert.equal(typeof ok.heartbeatIntervalMs, "number");
      assert.deepEqual(
        (await p.client.listAgents()).agents.map((a) => a.agentId),
        ["odd"],
      );
    } finally {
      loose.close();
    }
  });

  it("registration bounds labels (BAD_REQUEST saying the fix); listAgents pages cover every agent once and always fit", async () => {
    const p = await startPrincipal({ env: { CDKTR_MAX_MESSAGE_BYTES: "65536" } });
    // A client without the new bounds (an old or hostile one): the principal refuses by itself.
    const loose = new RpcClient({
      endpoint: `tcp://127.0.0.1:${p.ports.api}`,
      verbs: { ...API_VERBS, registerAgent: { ...API_VERBS.registerAgent, request: z.any() } },
      key: p.key("local-agent"),
      timeoutMs: 10_000,
      maxMessageBytes: 64 * 1024 * 1024,
    });
    try {
      const huge = { agentId: "huge", host: "h", capacity: 1, version: "t", runningRuns: [] };
      for (const labels of [["x".repeat(200_000)], Array.from({ length: 65 }, (_, i) => `l${i}`)]) {
        const err: unknown = await loose.request("registerAgent", { ...huge, labels }).then(
          () => null,
          (e: unknown) => e,
        );
        assert.ok(isCdktrError(err, "BAD_REQUEST") || isCdktrError(err, "MESSAGE_TOO_LARGE"), String(err));
        if (labels.length > 1)
          assert.match(String((err as Error).message), /at most 64 labels: remove some from CDKTR_AGENT_LABELS/);
      }
    } finally {
      loose.close();
    }
    // 40 agents each with the largest labels allowed: more than one message's worth in total.
    const agent = p.connect({ key: p.key("local-agent") });
    const labels = Array.from({ length: 64 }, (_, i) => `${String(i).padStart(2, "0")}${"y".repeat(126)}`);
    const ids = Array.from({ length: 40 }, (_, i) => `agent-${String(i).padStart(2, "0")}`);
    for (const id of ids)
      await agent.registerAgent({ agentId: id, host: "h", capacity: 2, labels, version: "t", runningRuns: [] });
    const first = await p.client.listAgents();
    assert.ok(first.nextCursor !== null && first.agents.length < 40, "more than one page");
    for (const limit of [undefined, 1, 7, 1000]) {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      for (;;) {
        const page = await p.client.listAgents({
          ...(limit === undefined ? {} : { limit }),
          ...(cursor === undefined ? {} : { cursor }),
        });
        pages++;
        assert.ok(page.agents.length >= 1 && page.agents.length <= (limit ?? 100));
        seen.push(...page.agents.map((a) => a.agentId));
        if (page.nextCursor === null) break;
        cursor = page.nextCursor;
      }
      assert.deepEqual(seen, ids, `limit ${limit}: every agent exactly once, in id order`);
      if (limit === 1) assert.equal(pages, 40);
    }
    assert.deepEqual(
      (await p.client.allAgents()).map((a) => a.agentId),
      ids,
    );
  });

  it("a cancel, confirm, lease expiry or crash whose commit fails changes nothing in memory: the run stays dispatchable", async () => {
    const p = await startPrincipal({
      // A lease long enough for a loaded machine to confirm within it, a heartbeat timeout far
      // above the 200 ms heartbeats: only the injected faults may refuse anything.
      env: { CDKTR_ASSIGNMENT_LEASE_MS: "1000", CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "5000" },
    });
    const agent = p.connect({ key: p.key("local-agent"), timeoutMs: 3000 });
    await agent.registerAgent({ agentId: "a", host: "h", capacity: 4, labels: [], version: "t", runningRuns: [] });
    const beat = setInterval(() => void agent.heartbeat({ agentId: "a", runningRuns: [] }).catch(() => undefined), 200);
    try {
      // cancel
      const r1 = (await p.client.runWorkflow({ workflowId: "hello" })).runId;
      let heal = fault(p, "NEW.status = 'CANCELLED'");
      await refused(p.client.cancelRun(r1, { retry: false }));
      assert.equal((await p.client.getRun(r1)).run.status, "QUEUED");
      heal();
      const w1 = await agent.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
      assert.equal(w1.assignment?.run.runId, r1, "the run is still in the queue after the failed cancel");
      // Now ASSIGNED: only its agent can say whether it started it. This one never confirms: the
      // run ends CANCELLED when its lease ends, instead of going back to the queue.
      assert.deepEqual(await p.client.cancelRun(r1), { runId: r1, status: "ASSIGNED", cancelled: true });
      const cancelled = await waitFor(
        async () => {
          const r = (await p.client.getRun(r1)).run;
          return r.status === "CANCELLED" ? r : undefined;
        },
        { timeoutMs: 10_000, what: "the unconfirmed cancelled run CANCELLED at its lease's end" },
      );
      assert.equal(cancelled.message, "cancelled by request before its agent started it");

      // confirm
      const r2 = (await p.client.runWorkflow({ workflowId: "hello" })).runId;
      const w2 = await agent.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
      assert.equal(w2.assignment?.run.runId, r2);
      heal = fault(p, "NEW.status = 'RUNNING'");
      const confirm2 = { agentId: "a", runId: r2, token: w2.assignment?.token ?? "" };
      await refused(agent.confirmAssignment(confirm2, { retry: false }));
      heal();
      assert.equal((await agent.confirmAssignment(confirm2)).run.status, "RUNNING", "confirming again works");

      // lease expiry
      const r3 = (await p.client.runWorkflow({ workflowId: "hello" })).runId;
      heal = fault(p, "OLD.status = 'ASSIGNED' AND NEW.status = 'QUEUED'");
      assert.equal((await agent.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 })).assignment?.run.runId, r3);
      await new Promise((r) => setTimeout(r, 3000)); // several lease checks, each refused
      assert.equal((await p.client.getRun(r3)).run.status, "ASSIGNED");
      assert.equal((await agent.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 })).assignment, null);
      heal();
      const again = await agent.fetchWork({ agentId: "a", waitMs: 5000, freeSlots: 1 });
      assert.equal(again.assignment?.run.runId, r3, "requeued once the expiry committed");

      // crash (agent lost)
      clearInterval(beat);
      heal = fault(p, "NEW.status = 'CRASHED'");
      await waitFor(() => p.service?.lines.some((l) => l.includes("could not mark a run CRASHED")), {
        timeoutMs: 20_000,
        what: "a failed crash commit",
      });
      assert.equal((await p.client.getRun(r2)).run.status, "RUNNING");
      heal();
      await waitFor(async () => (await p.client.getRun(r2)).run.status === "CRASHED", { what: "crashed on retry" });
    } finally {
      clearInterval(beat);
    }
  });
});

/** Make the principal's database refuse run updates matching `when` (a real failed commit); returns the undo. */
function fault(p: PrincipalFixture, when: string): () => void {
  const db = new Database(p.dbPath, { timeout: 5000 });
  db.exec(
    `CREATE TRIGGER injected_fault BEFORE UPDATE OF status ON runs WHEN ${when} BEGIN SELECT RAISE(ABORT, 'injected fault'); END`,
  );
  return () => {
    db.exec("DROP TRIGGER injected_fault");
    db.close();
  };
}

async function refused(call: Promise<unknown>): Promise<void> {
  const outcome = await call.then(
    () => "succeeded",
    (e: unknown) => (isCdktrError(e) ? e.message : String(e)),
  );
  assert.match(outcome, /injected fault/);
}

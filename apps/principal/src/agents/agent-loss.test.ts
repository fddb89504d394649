import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ManualClock, noopLogger, type RunRecord } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { Dispatcher } from "../dispatch/dispatcher.js";
import { UlidGenerator } from "../ids.js";
import type { PrincipalEvents } from "../publish/principal-events.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import { definition, runInput } from "../test/workflow-fixture.js";
import { AgentLoss } from "./agent-loss.js";
import { AgentRegistry } from "./agent-registry.js";

after(() => removeTempDirs());

const TIMEOUT_MS = 30_000;
const LEASE_MS = 10_000;
const reg = { host: "h", capacity: 1, labels: [], version: "1", runningRuns: [] };

/** The principal's dispatch and agent-loss logic on a fake clock and a real SQLite file. */
function setup() {
  const clock = new ManualClock();
  const store = SqliteStore.open({ path: join(makeTempDir(), "db"), clock });
  const published: RunRecord[] = [];
  const events: PrincipalEvents = {
    run: (r) => published.push(r),
    tasks: () => {},
    log: () => {},
    workflows: () => {},
  };
  const dispatcher = new Dispatcher({ store, clock, leaseMs: LEASE_MS, onRunChanged: events.run });
  const agents = new AgentRegistry(clock, TIMEOUT_MS);
  const ids = new UlidGenerator(clock);
  const loss = new AgentLoss({
    clock,
    heartbeatTimeoutMs: TIMEOUT_MS,
    agents,
    dispatcher,
    store,
    ids,
    logger: noopLogger,
    events,
  });
  /** What the principal's periodic check does, then let the store commit what it caused. */
  const check = async (): Promise<void> => {
    dispatcher.expireLeases();
    loss.check();
    await clock.settle();
    await store.drain();
  };
  const trigger = async (extra = ""): Promise<string> => {
    const wf = definition("wf", extra);
    const { run } = await store.createRun(runInput(ids.next(), wf));
    dispatcher.enqueue(run, wf);
    return run.runId;
  };
  const status = async (runId: string) => (await store.getRun(runId))?.run;
  return { clock, store, dispatcher, agents, loss, check, trigger, status, published };
}

describe("agent loss (fake clock, real SQLite)", () => {
  it("an unconfirmed lease expires, then a silent agent is declared lost: its run CRASHED and requeued (on_agent_lost: requeue)", async () => {
    const s = setup();
    s.agents.register({ agentId: "a", ...reg });
    const runId = await s.trigger("on_agent_lost: requeue");
    const first = await s.dispatcher.fetchWork({ agentId: "a", labels: [] }, 0);
    assert.equal(first.assignment?.run.runId, runId);

    await s.clock.advance(LEASE_MS + 1); // a never confirms
    s.agents.touch("a");
    await s.check();
    assert.equal((await s.status(runId))?.status, "QUEUED", "the lease expired: back in the queue");

    s.agents.register({ agentId: "b", ...reg });
    const second = await s.dispatcher.fetchWork({ agentId: "b", labels: [] }, 0);
    assert.equal(second.assignment?.run.runId, runId);
    await s.dispatcher.confirm("b", runId, second.assignment?.token ?? "");
    assert.equal((await s.status(runId))?.status, "RUNNING");

    await s.clock.advance(TIMEOUT_MS); // b goes silent: not lost yet
    s.agents.touch("a");
    await s.check();
    assert.equal((await s.status(runId))?.status, "RUNNING");
    assert.equal(s.agents.active("b")?.agentId, "b");

    await s.clock.advance(1);
    s.agents.touch("a");
    await s.check();
    assert.equal(s.agents.active("b"), undefined, "b is lost");
    const crashed = await s.store.getRun(runId);
    assert.equal(crashed?.run.status, "CRASHED");
    assert.equal(crashed?.run.reason, "agent_lost");
    assert.deepEqual(
      crashed?.tasks.map((t) => t.status),
      ["CRASHED"],
    );
    assert.match(crashed?.run.message ?? "", /^agent `b` sent no heartbeat for 30000 ms; requeued as run \w+$/);

    assert.equal(s.dispatcher.queuedCount(), 1, "the replacement run is queued");
    const again = await s.dispatcher.fetchWork({ agentId: "a", labels: [] }, 0);
    const requeued = again.assignment?.run;
    assert.ok(requeued !== undefined && requeued.runId !== runId);
    assert.equal(requeued.source, "requeue");
    assert.equal(requeued.message, `requeue of run ${runId} (agent \`b\` sent no heartbeat for 30000 ms)`);
    assert.ok(s.published.some((r) => r.runId === runId && r.status === "CRASHED"));
    await s.store.close();
  });

  it("a RUNNING run its agent stops listing is CRASHED one timeout later (no requeue by default); unknown reported runs come back as cancels", async () => {
    const s = setup();
    s.agents.register({ agentId: "a", ...reg });
    const runId = await s.trigger();
    const got = await s.dispatcher.fetchWork({ agentId: "a", labels: [] }, 0);
    await s.dispatcher.confirm("a", runId, got.assignment?.token ?? "");
    const heartbeat = (running: string[]): string[] => {
      s.agents.touch("a", running);
      return s.loss.reconcile("a", running);
    };
    assert.deepEqual(heartbeat([runId, "ghost"]), ["ghost"], "a run the principal does not know: stop it");
    assert.deepEqual(heartbeat([]), [], "unlisted: not crashed at once");
    await s.clock.advance(TIMEOUT_MS);
    heartbeat([]);
    await s.check();
    assert.equal((await s.status(runId))?.status, "RUNNING", "the agent is alive and the timeout not over");
    await s.clock.advance(1);
    heartbeat([]);
    await s.check();
    const run = await s.status(runId);
    assert.equal(run?.status, "CRASHED");
    assert.equal(run?.message, `agent \`a\` stopped reporting this run for ${TIMEOUT_MS} ms (it restarted?)`);
    assert.equal(s.dispatcher.queuedCount(), 0, "on_agent_lost defaults to fail");
    await s.store.close();
  });
});

describe("assignments fetched with a session: the agent's word settles them (fake clock, real SQLite)", () => {
  const S1 = "session-one";
  const S2 = "session-two";
  const fetch = (s: ReturnType<typeof setup>, session: string, seq: number) =>
    s.dispatcher.fetchWork({ agentId: "a", labels: [], session, seq }, 0);
  const isStale = (e: unknown): boolean => (e as { code?: string }).code === "STALE_ASSIGNMENT";

  it("is committed before the reply, never expires by time, and starts on the agent's word alone", async () => {
    const s = setup();
    s.agents.register({ agentId: "a", ...reg, session: S1 });
    const runId = await s.trigger();
    const got = await fetch(s, S1, 1);
    assert.equal(got.assignment?.run.runId, runId);
    // No drain: the reply itself waited for the commit.
    assert.equal((await s.status(runId))?.status, "ASSIGNED", "committed before the reply");
    assert.match(got.assignment?.token ?? "", new RegExp(`^s1\\.${S1}\\.1\\.`));

    await s.clock.advance(LEASE_MS * 3);
    s.agents.touch("a");
    await s.check();
    assert.equal((await s.status(runId))?.status, "ASSIGNED", "no lease expiry: the agent may have started it");
    // Its fetch not settled yet: nothing happens.
    s.loss.reconcile("a", { runningRuns: [], session: S1, settledThrough: 0 });
    await s.check();
    assert.equal((await s.status(runId))?.status, "ASSIGNED");
    // Listed as started: nothing happens either; its confirmation (late, past the old lease) is accepted.
    s.loss.reconcile("a", { runningRuns: [runId], session: S1, settledThrough: 1 });
    await s.check();
    assert.equal((await s.status(runId))?.status, "ASSIGNED");
    await s.dispatcher.confirm("a", runId, got.assignment?.token ?? "");
    assert.equal((await s.status(runId))?.status, "RUNNING");
    await s.store.close();
  });

  it("an assignment its agent settled without starting goes back to the queue, and its token is refused from then on", async () => {
    const s = setup();
    s.agents.register({ agentId: "a", ...reg, capacity: 2, session: S1 });
    const started = await s.trigger();
    const dropped = await s.trigger();
    const one = await fetch(s, S1, 1);
    const two = await fetch(s, S1, 2);
    assert.deepEqual([one.assignment?.run.runId, two.assignment?.run.runId], [started, dropped]);
    // A heartbeat: fetch 1 settled and started (listed), fetch 2 settled and not started.
    s.loss.reconcile("a", { runningRuns: [started], session: S1, settledThrough: 2 });
    await s.check();
    assert.equal((await s.status(started))?.status, "ASSIGNED");
    assert.equal((await s.status(dropped))?.status, "QUEUED", "the agent says it never started it");
    await assert.rejects(s.dispatcher.confirm("a", dropped, two.assignment?.token ?? ""), isStale);
    // Handed out again, once.
    const again = await fetch(s, S1, 3);
    assert.equal(again.assignment?.run.runId, dropped);
    assert.notEqual(again.assignment?.token, two.assignment?.token);
    await s.store.close();
  });

  it("a restarted agent's predecessor: its unstarted assignments go back to the queue, its started ones are CRASHED", async () => {
    const s = setup();
    s.agents.register({ agentId: "a", ...reg, capacity: 3, session: S1 });
    const unstarted = await s.trigger("on_agent_lost: requeue");
    const started = await s.trigger();
    const unknown = await s.trigger();
    await fetch(s, S1, 1);
    await fetch(s, S1, 2);
    // The third went to a process the registration does not vouch for.
    await s.dispatcher.fetchWork({ agentId: "a", labels: [], session: "session-zero", seq: 7 }, 0);

    const reregistration = { agentId: "a", ...reg, capacity: 3, session: S2, settledThrough: 0 };
    s.agents.register(reregistration);
    s.loss.reconcile("a", { ...reregistration, predecessor: { session: S1, started: [started] } });
    await s.check();
    assert.equal((await s.status(unstarted))?.status, "QUEUED", "never started: queued again, not crashed");
    const crashed = await s.store.getRun(started);
    assert.equal(crashed?.run.status, "CRASHED");
    assert.equal(crashed?.run.reason, "agent_lost");
    assert.match(crashed?.run.message ?? "", /session session-one\) is gone/);
    assert.equal((await s.status(unknown))?.status, "CRASHED", "nothing vouches for it: it may have started");
    await s.store.close();
  });

  it("a lost agent's assignment is CRASHED like its running runs (it may have started it)", async () => {
    const s = setup();
    s.agents.register({ agentId: "a", ...reg, session: S1 });
    const runId = await s.trigger("on_agent_lost: requeue");
    await fetch(s, S1, 1);
    await s.clock.advance(TIMEOUT_MS + 1);
    await s.check();
    const crashed = await s.store.getRun(runId);
    assert.equal(crashed?.run.status, "CRASHED");
    assert.equal(s.dispatcher.queuedCount(), 1, "on_agent_lost: requeue queued a new run");
    await s.store.close();
  });

  it("an assignment whose commit fails is not sent: the fetch gets nothing and the run stays queued", async () => {
    const s = setup();
    s.agents.register({ agentId: "a", ...reg, session: S1 });
    const runId = await s.trigger();
    const assignRun = s.store.assignRun.bind(s.store);
    s.store.assignRun = () => Promise.reject(new Error("disk I/O error"));
    const got = await fetch(s, S1, 1);
    assert.equal(got.assignment, null);
    assert.equal((await s.status(runId))?.status, "QUEUED");
    s.store.assignRun = assignRun;
    const again = await fetch(s, S1, 2);
    assert.equal(again.assignment?.run.runId, runId);
    await s.store.close();
  });
});

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { isCdktrError, type RunRecord } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { ManualClock } from "@cdktr/protocol";
import { UlidGenerator } from "../ids.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import { definition, runInput } from "../test/workflow-fixture.js";
import { Dispatcher } from "./dispatcher.js";

after(() => removeTempDirs());

function setup(leaseMs = 1000): {
  clock: ManualClock;
  store: SqliteStore;
  d: Dispatcher;
  ids: UlidGenerator;
  events: RunRecord[];
} {
  const clock = new ManualClock();
  const store = SqliteStore.open({ path: join(makeTempDir(), "db"), clock });
  const events: RunRecord[] = [];
  const d = new Dispatcher({ store, clock, leaseMs, onRunChanged: (r) => events.push(r) });
  return { clock, store, d, ids: new UlidGenerator(clock), events };
}

async function trigger(s: ReturnType<typeof setup>, wf = definition("wf")): Promise<string> {
  const { run } = await s.store.createRun(runInput(s.ids.next(), wf));
  s.d.enqueue(run, wf);
  return run.runId;
}

const agent = (agentId: string, labels: string[] = []) => ({ agentId, labels });

describe("Dispatcher (fake clock, real SQLite)", () => {
  it("expires an unconfirmed lease only after leaseMs of fake time; the stale token is refused, the new one works", async () => {
    const s = setup(1000);
    const runId = await trigger(s);
    const a = await s.d.fetchWork(agent("a"), 0);
    assert.equal(a.assignment?.run.runId, runId);
    await s.clock.advance(1000);
    assert.deepEqual(s.d.expireLeases(), [], "not before the lease is over");
    await s.clock.advance(1);
    assert.deepEqual(s.d.expireLeases(), [runId]);
    await s.store.drain();
    assert.equal((await s.store.getRun(runId))?.run.status, "QUEUED");
    await assert.rejects(s.d.confirm("a", runId, a.assignment?.token ?? ""), (e: unknown) =>
      isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    const b = await s.d.fetchWork(agent("b"), 0);
    assert.equal(b.assignment?.run.runId, runId);
    const run = await s.d.confirm("b", runId, b.assignment?.token ?? "");
    assert.equal(run.status, "RUNNING");
    assert.deepEqual(
      s.events.map((e) => e.status),
      ["ASSIGNED", "QUEUED", "ASSIGNED", "RUNNING"],
    );
    await s.store.close();
  });

  it("a confirmation arriving after the lease passed is refused even before the expiry check ran", async () => {
    const s = setup(500);
    const runId = await trigger(s);
    const a = await s.d.fetchWork(agent("a"), 0);
    await s.clock.advance(501);
    await assert.rejects(s.d.confirm("a", runId, a.assignment?.token ?? ""), (e: unknown) =>
      isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    // Back in the queue once the expiry is committed (memory follows the commit).
    for (let i = 0; i < 100 && s.d.get(runId)?.run.status !== "QUEUED"; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.d.get(runId)?.run.status, "QUEUED");
    assert.equal((await s.store.getRun(runId))?.run.status, "QUEUED");
    await s.store.close();
  });

  it("FIFO with max_active_runs: later runs of a full workflow wait, other workflows pass; a parked fetch gets the freed slot", async () => {
    const s = setup();
    const limited = definition("limited", "max_active_runs: 1");
    const l1 = await trigger(s, limited);
    const l2 = await trigger(s, limited);
    const free = await trigger(s, definition("free"));
    const f1 = await s.d.fetchWork(agent("a"), 0);
    assert.equal(f1.assignment?.run.runId, l1);
    const f2 = await s.d.fetchWork(agent("a"), 0);
    assert.equal(f2.assignment?.run.runId, free, "l2 is not eligible while l1 is active");
    assert.equal((await s.d.fetchWork(agent("a"), 0)).assignment, null);
    const parked = s.d.fetchWork(agent("b"), 10_000);
    await s.d.confirm("a", l1, f1.assignment?.token ?? "");
    s.d.remove(l1); // l1 finished
    const got = await parked;
    assert.equal(got.assignment?.run.runId, l2);
    await s.store.close();
  });

  it("labels filter, a parked fetch is woken by a new run, cancels wake the holder's parked fetch", async () => {
    const s = setup();
    const parkedCpu = s.d.fetchWork(agent("cpu", ["linux"]), 10_000);
    const parkedGpu = s.d.fetchWork(agent("gpu", ["gpu", "linux"]), 10_000);
    const gpuRun = await trigger(s, definition("g", "agent_labels: [gpu]"));
    const got = await parkedGpu;
    assert.equal(got.assignment?.run.runId, gpuRun);
    await s.d.confirm("gpu", gpuRun, got.assignment?.token ?? "");
    const anyRun = await trigger(s);
    assert.equal((await parkedCpu).assignment?.run.runId, anyRun);
    const parkedAgain = s.d.fetchWork(agent("gpu", ["gpu"]), 10_000);
    s.d.requestCancel(gpuRun);
    assert.deepEqual(await parkedAgain, { assignment: null, cancel: [gpuRun] });
    assert.deepEqual(s.d.cancelsFor("gpu"), [gpuRun]);
    // Delivered once: the next fetch parks instead of returning the same cancel in a loop.
    const next = s.d.fetchWork(agent("gpu", ["gpu"]), 10_000);
    const gpuRun2 = await trigger(s, definition("g", "agent_labels: [gpu]"));
    const got2 = await next;
    assert.equal(got2.assignment?.run.runId, gpuRun2);
    assert.deepEqual(got2.cancel, [gpuRun], "still listed alongside (harmless repeat)");
    await s.store.close();
  });

  it("rebuilds from the store: queue order kept, ASSIGNED leases restart from now", async () => {
    const s = setup(1000);
    const r1 = await trigger(s);
    const r2 = await trigger(s);
    const a = await s.d.fetchWork(agent("a"), 0);
    assert.equal(a.assignment?.run.runId, r1);
    await s.store.drain();
    await s.clock.advance(5000); // the "principal was down" for longer than the lease
    const d2 = new Dispatcher({ store: s.store, clock: s.clock, leaseMs: 1000 });
    d2.load(await s.store.loadActiveRuns());
    assert.deepEqual(d2.expireLeases(), [], "fresh lease after a restart");
    assert.equal((await d2.confirm("a", r1, a.assignment?.token ?? "")).status, "RUNNING");
    assert.equal((await d2.fetchWork(agent("b"), 0)).assignment?.run.runId, r2);
    await s.store.close();
  });

  it("a parked fetchWork waits on the dispatcher's clock: answered empty after waitMs of fake time, not before", async () => {
    const s = setup();
    let answered = false;
    const parked = s.d.fetchWork(agent("a"), 5_000).then((r) => {
      answered = true;
      return r;
    });
    await s.clock.advance(4_999);
    assert.equal(answered, false);
    await s.clock.advance(1);
    assert.deepEqual(await parked, { assignment: null, cancel: [] });
    await s.store.close();
  });
});

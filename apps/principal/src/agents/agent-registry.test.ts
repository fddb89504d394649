import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "@cdktr/protocol";
import { AgentRegistry } from "./agent-registry.js";

const reg = { host: "h", capacity: 2, labels: ["x"], version: "1", runningRuns: [] };

describe("AgentRegistry (fake clock)", () => {
  it("declares an agent lost only after the timeout, once, and heartbeats push the deadline", async () => {
    const clock = new ManualClock();
    const r = new AgentRegistry(clock, 30_000);
    r.register({ agentId: "a", ...reg });
    await clock.advance(29_000);
    assert.equal(r.touch("a"), true);
    await clock.advance(29_000);
    assert.deepEqual(r.expire(), []);
    await clock.advance(1_001);
    assert.deepEqual(
      r.expire().map((a) => a.agentId),
      ["a"],
    );
    assert.deepEqual(r.expire(), [], "reported once");
    assert.equal(r.touch("a"), false, "a lost agent must register again");
    assert.equal(r.active("a"), undefined);
    r.register({ agentId: "a", ...reg });
    assert.equal(r.active("a")?.status, "ACTIVE");
  });

  it("orphans (known from stored runs after a restart) get one full timeout from now and must register", async () => {
    const clock = new ManualClock();
    const r = new AgentRegistry(clock, 10_000);
    r.trackOrphan("ghost");
    assert.equal(r.touch("ghost"), false, "heartbeat from an orphan -> reregister");
    assert.deepEqual(r.list(), []);
    await clock.advance(10_000);
    assert.deepEqual(r.expire(), []);
    await clock.advance(1);
    assert.deepEqual(
      r.expire().map((a) => a.agentId),
      ["ghost"],
    );
  });

  it("an orphan tracked with a grace (after a takeover) is not lost before the timeout plus the grace", async () => {
    const clock = new ManualClock();
    const r = new AgentRegistry(clock, 3_000);
    r.trackOrphan("slow-to-move", null, 10_000);
    await clock.advance(12_999);
    assert.deepEqual(r.expire(), [], "its requests to the dead leader are still timing out");
    await clock.advance(2);
    assert.deepEqual(
      r.expire().map((a) => a.agentId),
      ["slow-to-move"],
    );
  });

  it("one key holds at most maxPerKey agent ids: a new one forgets the key's longest-lost, or is refused", async () => {
    const clock = new ManualClock();
    const r = new AgentRegistry(clock, 1000, 3_600_000, 3);
    for (const id of ["a1", "a2", "a3"]) r.register({ agentId: id, ...reg }, "k");
    r.register({ agentId: "b1", ...reg }, "other");
    assert.throws(
      () => r.register({ agentId: "a4", ...reg }, "k"),
      (e: unknown) =>
        (e as { code?: string }).code === "PERMISSION_DENIED" && /CDKTR_MAX_AGENTS_PER_KEY/.test(String(e)),
    );
    r.register({ agentId: "a2", ...reg }, "k");
    await clock.advance(600);
    r.touch("a1");
    r.touch("a2");
    r.touch("b1");
    await clock.advance(600);
    assert.deepEqual(
      r.expire().map((a) => a.agentId),
      ["a3"],
    );
    r.register({ agentId: "a4", ...reg }, "k");
    assert.deepEqual(
      r
        .list()
        .map((a) => a.agentId)
        .sort(),
      ["a1", "a2", "a4", "b1"],
      "a3 (lost) forgotten for a4; the other key untouched",
    );
  });
});

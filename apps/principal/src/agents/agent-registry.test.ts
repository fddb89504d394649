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
});

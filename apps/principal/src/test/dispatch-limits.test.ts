/**
 * Issue 13, the dispatcher and the agent registry under abuse: a flood of `fetchWork` long-polls
 * from one agent, agents with huge labels, lost agents that pile up, and a cancel whose commit
 * fails. Every test runs the real principal process (real sockets, real SQLite).
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanup, spawnService, startPrincipal, waitFor } from "@cdktr/test-utils";

afterEach(cleanup);

const POLLS = 60_000;
const FLOOD = fileURLToPath(new URL("./fixtures/poll-flood.js", import.meta.url));

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
      script: FLOOD,
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
});

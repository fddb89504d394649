import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { isCdktrError } from "@cdktr/protocol";
import { killAllServices, removeTempDirs, waitFor } from "@cdktr/test-utils";
import { clients, makeFixture, registerAgent, spawnPrincipal, workflowYaml } from "./helpers.js";

afterEach(async () => {
  await killAllServices();
});
after(() => removeTempDirs());

const now = (): string => new Date().toISOString();

describe("agents and dispatch", () => {
  it("an agent silent past the heartbeat timeout: its runs CRASHED (and requeued when asked); late reports only recorded", async () => {
    const f = await makeFixture(
      {
        "plain.yml": workflowYaml(),
        "again.yml": workflowYaml("on_agent_lost: requeue\nparams:\n  who:\n    type: string\n    default: x\n"),
      },
      { CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "1500" },
    );
    await spawnPrincipal(f);
    const c = clients(f);
    try {
      const plain = await c.api.runWorkflow({ workflowId: "plain" });
      const again = await c.api.runWorkflow({ workflowId: "again", params: { who: "me" } });
      await registerAgent(c.api, "doomed");
      for (const expected of [plain.runId, again.runId]) {
        const w = await c.api.fetchWork({ agentId: "doomed", waitMs: 0, freeSlots: 2 });
        assert.equal(w.assignment?.run.runId, expected, "FIFO by run id");
        await c.api.confirmAssignment({ agentId: "doomed", runId: expected, token: w.assignment?.token ?? "" });
      }
      await c.api.taskStatus({
        agentId: "doomed",
        runId: plain.runId,
        taskId: "only",
        attempt: 1,
        status: "RUNNING",
        time: now(),
      });
      // A healthy agent keeps heartbeating the whole time and loses nothing.
      await registerAgent(c.api, "healthy");
      const beat = setInterval(
        () => void c.api.heartbeat({ agentId: "healthy", runningRuns: [] }).catch(() => undefined),
        150,
      );
      try {
        await waitFor(async () => (await c.api.getRun(plain.runId)).run.status === "CRASHED", {
          timeoutMs: 5000,
          what: "CRASHED",
        });
        const crashed = await c.api.getRun(plain.runId);
        assert.equal(crashed.run.reason, "agent_lost");
        assert.deepEqual(
          crashed.tasks.map((t) => [t.status, t.reason]),
          [["CRASHED", "agent_lost"]],
        );

        const lost2 = await waitFor(async () => {
          const r = await c.api.getRun(again.runId);
          return r.run.status === "CRASHED" ? r : undefined;
        });
        const requeued = await c.api.listRuns({ workflowId: "again", status: ["QUEUED"] });
        assert.equal(requeued.runs.length, 1);
        const fresh = requeued.runs[0];
        assert.equal(fresh?.source, "requeue");
        assert.deepEqual(fresh?.params, { who: "me" });
        assert.match(fresh?.message ?? "", new RegExp(again.runId));
        assert.match(lost2.run.message ?? "", new RegExp(fresh?.runId ?? "?"));
        assert.equal(
          (await c.api.listRuns({ workflowId: "plain", status: ["QUEUED"] })).runs.length,
          0,
          "on_agent_lost fail: no requeue",
        );

        // The lost agent comes back late: recorded, not applied, nothing restarted.
        const late = await c.api.runStatus({ agentId: "doomed", runId: plain.runId, status: "COMPLETED", time: now() });
        assert.deepEqual(late, { applied: false, status: "CRASHED" });
        const lateTask = await c.api.taskStatus({
          agentId: "doomed",
          runId: plain.runId,
          taskId: "only",
          attempt: 1,
          status: "COMPLETED",
          time: now(),
        });
        assert.deepEqual(lateTask, { applied: false });
        assert.equal((await c.api.getRun(plain.runId)).run.status, "CRASHED");
        const hb = await c.api.heartbeat({ agentId: "doomed", runningRuns: [plain.runId] });
        assert.equal(hb.reregister, true);
        const reg = await c.api.registerAgent({
          agentId: "doomed",
          host: "h",
          capacity: 2,
          labels: [],
          version: "t",
          runningRuns: [plain.runId],
        });
        assert.deepEqual(reg.cancel, [plain.runId], "a crashed run the agent still runs must be stopped");
        const agents = await c.api.listAgents();
        assert.deepEqual(agents.agents.map((a) => [a.agentId, a.status]).sort(), [
          ["doomed", "ACTIVE"],
          ["healthy", "ACTIVE"],
        ]);
        // The requeued run is handed to the next fetch.
        const w = await c.api.fetchWork({ agentId: "healthy", waitMs: 0, freeSlots: 1 });
        assert.equal(w.assignment?.run.runId, fresh?.runId);
      } finally {
        clearInterval(beat);
      }
    } finally {
      c.close();
    }
  });

  it("cancel: a QUEUED run is never handed out; a RUNNING one is told to its agent at once (pending fetchWork and heartbeat)", async () => {
    const f = await makeFixture();
    await spawnPrincipal(f);
    const c = clients(f);
    try {
      const queued = await c.api.runWorkflow({ workflowId: "hello" });
      const cq = await c.api.cancelRun(queued.runId);
      assert.deepEqual(cq, { runId: queued.runId, status: "CANCELLED", cancelled: true });
      await registerAgent(c.api, "a");
      assert.equal((await c.api.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 })).assignment, null);

      const running = await c.api.runWorkflow({ workflowId: "hello" });
      const w = await c.api.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
      assert.equal(w.assignment?.run.runId, running.runId);
      await c.api.confirmAssignment({ agentId: "a", runId: running.runId, token: w.assignment?.token ?? "" });
      const parked = c.api.fetchWork({ agentId: "a", waitMs: 20_000, freeSlots: 1 }, { timeoutMs: 25_000 });
      await new Promise((r) => setTimeout(r, 100));
      const cr = await c.api.cancelRun(running.runId);
      assert.deepEqual(cr, { runId: running.runId, status: "RUNNING", cancelled: true });
      const answered = await parked;
      assert.deepEqual(answered, { assignment: null, cancel: [running.runId] });
      const hb = await c.api.heartbeat({ agentId: "a", runningRuns: [running.runId] });
      assert.deepEqual(hb, { cancel: [running.runId], reregister: false });
      await c.api.taskStatus({
        agentId: "a",
        runId: running.runId,
        taskId: "hello",
        attempt: 1,
        status: "RUNNING",
        time: now(),
      });
      await c.api.taskStatus({
        agentId: "a",
        runId: running.runId,
        taskId: "hello",
        attempt: 1,
        status: "CANCELLED",
        time: now(),
        signal: "SIGTERM",
      });
      const done = await c.api.runStatus({
        agentId: "a",
        runId: running.runId,
        status: "CANCELLED",
        time: now(),
        reason: "cancelled",
      });
      assert.deepEqual(done, { applied: true, status: "CANCELLED" });
      const final = await c.api.getRun(running.runId);
      assert.deepEqual(
        final.tasks.map((t) => [t.taskId, t.status]),
        [
          ["goodbye", "CANCELLED"],
          ["hello", "CANCELLED"],
        ],
      );
      assert.deepEqual((await c.api.heartbeat({ agentId: "a", runningRuns: [] })).cancel, []);
      const again = await c.api.cancelRun(running.runId);
      assert.equal(again.cancelled, false);
      await assert.rejects(c.api.cancelRun("nope"), (e: unknown) => isCdktrError(e, "RUN_NOT_FOUND"));
      await assert.rejects(
        c.api.runStatus({ agentId: "a", runId: running.runId, status: "COMPLETED", time: now() }),
        (e: unknown) => isCdktrError(e, "INVALID_TRANSITION"),
      );
    } finally {
      c.close();
    }
  });

  it("overlap skip and queue, and a parked fetchWork answered the moment a run becomes eligible", async () => {
    const f = await makeFixture({
      "skip.yml": workflowYaml("max_active_runs: 1\noverlap: skip"),
      "queue.yml": workflowYaml("max_active_runs: 1\noverlap: queue"),
    });
    await spawnPrincipal(f);
    const c = clients(f);
    try {
      const s1 = await c.api.runWorkflow({ workflowId: "skip" });
      const s2 = await c.api.runWorkflow({ workflowId: "skip" });
      assert.equal(s1.status, "QUEUED");
      assert.deepEqual({ skipped: s2.skipped, status: s2.status }, { skipped: true, status: "SKIPPED" });
      assert.equal((await c.api.getRun(s2.runId)).run.reason, "overlap_skip");
      assert.equal((await c.api.cancelRun(s1.runId)).status, "CANCELLED");
      const s3 = await c.api.runWorkflow({ workflowId: "skip" });
      assert.equal(s3.status, "QUEUED", "a slot freed: accepted again");
      await c.api.cancelRun(s3.runId);

      const q1 = await c.api.runWorkflow({ workflowId: "queue" });
      const q2 = await c.api.runWorkflow({ workflowId: "queue" });
      assert.equal(q2.status, "QUEUED");
      await registerAgent(c.api, "a", [], 2);
      const w1 = await c.api.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 2 });
      assert.equal(w1.assignment?.run.runId, q1.runId);
      await c.api.confirmAssignment({ agentId: "a", runId: q1.runId, token: w1.assignment?.token ?? "" });
      assert.equal(
        (await c.api.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 })).assignment,
        null,
        "q2 waits for the slot",
      );
      const parked = c.api.fetchWork({ agentId: "a", waitMs: 20_000, freeSlots: 1 }, { timeoutMs: 25_000 });
      await new Promise((r) => setTimeout(r, 100));
      await c.api.runStatus({ agentId: "a", runId: q1.runId, status: "FAILED", time: now(), reason: "exit_code" });
      const w2 = await parked;
      assert.equal(w2.assignment?.run.runId, q2.runId);
    } finally {
      c.close();
    }
  });

  it("an agent re-registering without its RUNNING run may still deliver its queued final report; one that keeps not reporting it crashes", async () => {
    const f = await makeFixture(undefined, { CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "1500" });
    await spawnPrincipal(f);
    const c = clients(f);
    try {
      await registerAgent(c.api, "a", [], 2);
      const r1 = await c.api.runWorkflow({ workflowId: "hello" });
      const r2 = await c.api.runWorkflow({ workflowId: "hello" });
      for (const runId of [r1.runId, r2.runId]) {
        const w = await c.api.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
        assert.equal(w.assignment?.run.runId, runId);
        await c.api.confirmAssignment({ agentId: "a", runId, token: w.assignment?.token ?? "" });
      }
      // The agent finished r1 while the principal could not hear it, and re-registers first.
      const reg = await c.api.registerAgent({
        agentId: "a",
        host: "h",
        capacity: 2,
        labels: [],
        version: "t",
        runningRuns: [r2.runId],
      });
      assert.deepEqual(reg.cancel, []);
      const late = await c.api.runStatus({ agentId: "a", runId: r1.runId, status: "COMPLETED", time: now() });
      assert.deepEqual(late, { applied: true, status: "COMPLETED" }, "queued final report still applies");
      // r2 is then never listed again although the agent keeps heartbeating.
      const beat = setInterval(
        () => void c.api.heartbeat({ agentId: "a", runningRuns: [] }).catch(() => undefined),
        150,
      );
      try {
        await waitFor(async () => (await c.api.getRun(r2.runId)).run.status === "CRASHED", {
          timeoutMs: 5000,
          what: "unreported run CRASHED",
        });
        assert.match((await c.api.getRun(r2.runId)).run.message ?? "", /stopped reporting/);
        assert.equal((await c.api.listAgents()).agents[0]?.status, "ACTIVE", "the agent itself is fine");
      } finally {
        clearInterval(beat);
      }
    } finally {
      c.close();
    }
  });

  it("agent labels: a run goes only to agents having all the workflow's labels", async () => {
    const f = await makeFixture({ "gpu.yml": workflowYaml("agent_labels: [gpu, linux]"), "any.yml": workflowYaml() });
    await spawnPrincipal(f);
    const c = clients(f);
    try {
      const gpu = await c.api.runWorkflow({ workflowId: "gpu" });
      const any = await c.api.runWorkflow({ workflowId: "any" });
      await registerAgent(c.api, "cpu", ["linux"]);
      await registerAgent(c.api, "big", ["gpu", "linux", "x"]);
      const w1 = await c.api.fetchWork({ agentId: "cpu", waitMs: 0, freeSlots: 1 });
      assert.equal(w1.assignment?.run.runId, any.runId, "skips the older gpu run it cannot take");
      assert.equal((await c.api.fetchWork({ agentId: "cpu", waitMs: 0, freeSlots: 1 })).assignment, null);
      const w2 = await c.api.fetchWork({ agentId: "big", waitMs: 0, freeSlots: 1 });
      assert.equal(w2.assignment?.run.runId, gpu.runId);
      await assert.rejects(c.api.fetchWork({ agentId: "stranger", waitMs: 0, freeSlots: 1 }), (e: unknown) =>
        isCdktrError(e, "AGENT_NOT_REGISTERED"),
      );
    } finally {
      c.close();
    }
  });
});

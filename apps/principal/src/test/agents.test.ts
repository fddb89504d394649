import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { isCdktrError } from "@cdktr/protocol";
import { cleanup, startPrincipal, waitFor, workflowYaml } from "@cdktr/test-utils";
import { registerAgent } from "./helpers.js";

afterEach(cleanup);

const now = (): string => new Date().toISOString();

describe("agents and dispatch", () => {
  it("an agent silent past the heartbeat timeout: its runs CRASHED (and requeued when asked); late reports only recorded", async () => {
    const p = await startPrincipal({
      workflows: {
        "plain.yml": workflowYaml(),
        "again.yml": workflowYaml({
          header: "on_agent_lost: requeue\nparams:\n  who:\n    type: string\n    default: x\n",
        }),
      },
      env: { CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "1500" },
    });
    const plain = await p.client.runWorkflow({ workflowId: "plain" });
    const again = await p.client.runWorkflow({ workflowId: "again", params: { who: "me" } });
    await registerAgent(p.client, "doomed");
    const tokens = new Map<string, string>();
    for (const expected of [plain.runId, again.runId]) {
      const w = await p.client.fetchWork({ agentId: "doomed", waitMs: 0, freeSlots: 2 });
      assert.equal(w.assignment?.run.runId, expected, "FIFO by run id");
      await p.client.confirmAssignment({ agentId: "doomed", runId: expected, token: w.assignment?.token ?? "" });
      tokens.set(expected, w.assignment?.token ?? "");
    }
    await p.client.taskStatus({
      agentId: "doomed",
      runId: plain.runId,
      token: tokens.get(plain.runId),
      taskId: "only",
      attempt: 1,
      status: "RUNNING",
      time: now(),
    });
    // A healthy agent keeps heartbeating the whole time and loses nothing.
    await registerAgent(p.client, "healthy");
    const beat = setInterval(
      () => void p.client.heartbeat({ agentId: "healthy", runningRuns: [] }).catch(() => undefined),
      150,
    );
    try {
      await waitFor(async () => (await p.client.getRun(plain.runId)).run.status === "CRASHED", {
        timeoutMs: 5000,
        what: "CRASHED",
      });
      const crashed = await p.client.getRun(plain.runId);
      assert.equal(crashed.run.reason, "agent_lost");
      assert.deepEqual(
        crashed.tasks.map((t) => [t.status, t.reason]),
        [["CRASHED", "agent_lost"]],
      );

      const lost2 = await waitFor(async () => {
        const r = await p.client.getRun(again.runId);
        return r.run.status === "CRASHED" ? r : undefined;
      });
      const requeued = await p.client.listRuns({ workflowId: "again", status: ["QUEUED"] });
      assert.equal(requeued.runs.length, 1);
      const fresh = requeued.runs[0];
      assert.equal(fresh?.source, "requeue");
      assert.deepEqual(fresh?.params, { who: "me" });
      assert.match(fresh?.message ?? "", new RegExp(again.runId));
      assert.match(lost2.run.message ?? "", new RegExp(fresh?.runId ?? "?"));
      assert.equal(
        (await p.client.listRuns({ workflowId: "plain", status: ["QUEUED"] })).runs.length,
        0,
        "on_agent_lost fail: no requeue",
      );

      // The lost agent comes back late: recorded, not applied, nothing restarted.
      const late = await p.client.runStatus({
        agentId: "doomed",
        runId: plain.runId,
        token: tokens.get(plain.runId),
        status: "COMPLETED",
        time: now(),
      });
      assert.deepEqual(late, { applied: false, status: "CRASHED" });
      const lateTask = await p.client.taskStatus({
        agentId: "doomed",
        runId: plain.runId,
        token: tokens.get(plain.runId),
        taskId: "only",
        attempt: 1,
        status: "COMPLETED",
        time: now(),
      });
      assert.deepEqual(lateTask, { applied: false });
      assert.equal((await p.client.getRun(plain.runId)).run.status, "CRASHED");
      const hb = await p.client.heartbeat({ agentId: "doomed", runningRuns: [plain.runId] });
      assert.equal(hb.reregister, true);
      const reg = await p.client.registerAgent({
        agentId: "doomed",
        host: "h",
        capacity: 2,
        labels: [],
        version: "t",
        runningRuns: [plain.runId],
      });
      assert.deepEqual(reg.cancel, [plain.runId], "a crashed run the agent still runs must be stopped");
      const agents = await p.client.listAgents();
      assert.deepEqual(agents.agents.map((a) => [a.agentId, a.status]).sort(), [
        ["doomed", "ACTIVE"],
        ["healthy", "ACTIVE"],
      ]);
      // The requeued run is handed to the next fetch.
      const w = await p.client.fetchWork({ agentId: "healthy", waitMs: 0, freeSlots: 1 });
      assert.equal(w.assignment?.run.runId, fresh?.runId);
    } finally {
      clearInterval(beat);
    }
  });

  it("cancel: a QUEUED run is never handed out; a RUNNING one is told to its agent at once (pending fetchWork and heartbeat)", async () => {
    const p = await startPrincipal();
    const queued = await p.client.runWorkflow({ workflowId: "hello" });
    const cq = await p.client.cancelRun(queued.runId);
    assert.deepEqual(cq, { runId: queued.runId, status: "CANCELLED", cancelled: true });
    await registerAgent(p.client, "a");
    assert.equal((await p.client.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 })).assignment, null);

    const running = await p.client.runWorkflow({ workflowId: "hello" });
    const w = await p.client.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
    assert.equal(w.assignment?.run.runId, running.runId);
    const token = w.assignment?.token ?? "";
    await p.client.confirmAssignment({ agentId: "a", runId: running.runId, token });
    const parked = p.client.fetchWork({ agentId: "a", waitMs: 20_000, freeSlots: 1 }, { timeoutMs: 25_000 });
    await new Promise((r) => setTimeout(r, 100));
    const cr = await p.client.cancelRun(running.runId);
    assert.deepEqual(cr, { runId: running.runId, status: "RUNNING", cancelled: true });
    const answered = await parked;
    assert.deepEqual(answered, { assignment: null, cancel: [running.runId] });
    const hb = await p.client.heartbeat({ agentId: "a", runningRuns: [running.runId] });
    assert.deepEqual(hb, { cancel: [running.runId], reregister: false });
    await p.client.taskStatus({
      agentId: "a",
      runId: running.runId,
      token,
      taskId: "hello",
      attempt: 1,
      status: "RUNNING",
      time: now(),
    });
    await p.client.taskStatus({
      agentId: "a",
      runId: running.runId,
      token,
      taskId: "hello",
      attempt: 1,
      status: "CANCELLED",
      time: now(),
      signal: "SIGTERM",
    });
    const done = await p.client.runStatus({
      agentId: "a",
      runId: running.runId,
      token,
      status: "CANCELLED",
      time: now(),
      reason: "cancelled",
    });
    assert.deepEqual(done, { applied: true, status: "CANCELLED" });
    const final = await p.client.getRun(running.runId);
    assert.deepEqual(
      final.tasks.map((t) => [t.taskId, t.status]),
      [
        ["goodbye", "CANCELLED"],
        ["hello", "CANCELLED"],
      ],
    );
    assert.deepEqual((await p.client.heartbeat({ agentId: "a", runningRuns: [] })).cancel, []);
    const again = await p.client.cancelRun(running.runId);
    assert.equal(again.cancelled, false);
    await assert.rejects(p.client.cancelRun("nope"), (e: unknown) => isCdktrError(e, "RUN_NOT_FOUND"));
    await assert.rejects(
      p.client.runStatus({ agentId: "a", runId: running.runId, token, status: "COMPLETED", time: now() }),
      (e: unknown) => isCdktrError(e, "INVALID_TRANSITION"),
    );
  });

  it("overlap skip and queue, and a parked fetchWork answered the moment a run becomes eligible", async () => {
    const p = await startPrincipal({
      workflows: {
        "skip.yml": workflowYaml({ header: "max_active_runs: 1\noverlap: skip" }),
        "queue.yml": workflowYaml({ header: "max_active_runs: 1\noverlap: queue" }),
      },
    });
    const s1 = await p.client.runWorkflow({ workflowId: "skip" });
    const s2 = await p.client.runWorkflow({ workflowId: "skip" });
    assert.equal(s1.status, "QUEUED");
    assert.deepEqual({ skipped: s2.skipped, status: s2.status }, { skipped: true, status: "SKIPPED" });
    assert.equal((await p.client.getRun(s2.runId)).run.reason, "overlap_skip");
    assert.equal((await p.client.cancelRun(s1.runId)).status, "CANCELLED");
    const s3 = await p.client.runWorkflow({ workflowId: "skip" });
    assert.equal(s3.status, "QUEUED", "a slot freed: accepted again");
    await p.client.cancelRun(s3.runId);

    const q1 = await p.client.runWorkflow({ workflowId: "queue" });
    const q2 = await p.client.runWorkflow({ workflowId: "queue" });
    assert.equal(q2.status, "QUEUED");
    await registerAgent(p.client, "a", [], 2);
    const w1 = await p.client.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 2 });
    assert.equal(w1.assignment?.run.runId, q1.runId);
    await p.client.confirmAssignment({ agentId: "a", runId: q1.runId, token: w1.assignment?.token ?? "" });
    assert.equal(
      (await p.client.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 })).assignment,
      null,
      "q2 waits for the slot",
    );
    const parked = p.client.fetchWork({ agentId: "a", waitMs: 20_000, freeSlots: 1 }, { timeoutMs: 25_000 });
    await new Promise((r) => setTimeout(r, 100));
    await p.client.runStatus({
      agentId: "a",
      runId: q1.runId,
      token: w1.assignment?.token,
      status: "FAILED",
      time: now(),
      reason: "exit_code",
    });
    const w2 = await parked;
    assert.equal(w2.assignment?.run.runId, q2.runId);
  });

  it("an agent re-registering without its RUNNING run may still deliver its queued final report; one that keeps not reporting it crashes", async () => {
    const p = await startPrincipal({ env: { CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "1500" } });
    await registerAgent(p.client, "a", [], 2);
    const r1 = await p.client.runWorkflow({ workflowId: "hello" });
    const r2 = await p.client.runWorkflow({ workflowId: "hello" });
    const tokens = new Map<string, string>();
    for (const runId of [r1.runId, r2.runId]) {
      const w = await p.client.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
      assert.equal(w.assignment?.run.runId, runId);
      await p.client.confirmAssignment({ agentId: "a", runId, token: w.assignment?.token ?? "" });
      tokens.set(runId, w.assignment?.token ?? "");
    }
    // The agent finished r1 while the principal could not hear it, and re-registers first.
    const reg = await p.client.registerAgent({
      agentId: "a",
      host: "h",
      capacity: 2,
      labels: [],
      version: "t",
      runningRuns: [r2.runId],
    });
    assert.deepEqual(reg.cancel, []);
    const late = await p.client.runStatus({
      agentId: "a",
      runId: r1.runId,
      token: tokens.get(r1.runId),
      status: "COMPLETED",
      time: now(),
    });
    assert.deepEqual(late, { applied: true, status: "COMPLETED" }, "queued final report still applies");
    // r2 is then never listed again although the agent keeps heartbeating.
    const beat = setInterval(
      () => void p.client.heartbeat({ agentId: "a", runningRuns: [] }).catch(() => undefined),
      150,
    );
    try {
      await waitFor(async () => (await p.client.getRun(r2.runId)).run.status === "CRASHED", {
        timeoutMs: 5000,
        what: "unreported run CRASHED",
      });
      assert.match((await p.client.getRun(r2.runId)).run.message ?? "", /stopped reporting/);
      assert.equal((await p.client.listAgents()).agents[0]?.status, "ACTIVE", "the agent itself is fine");
    } finally {
      clearInterval(beat);
    }
  });

  it("agent labels: a run goes only to agents having all the workflow's labels", async () => {
    const p = await startPrincipal({
      workflows: { "gpu.yml": workflowYaml({ header: "agent_labels: [gpu, linux]" }), "any.yml": workflowYaml() },
    });
    const gpu = await p.client.runWorkflow({ workflowId: "gpu" });
    const any = await p.client.runWorkflow({ workflowId: "any" });
    await registerAgent(p.client, "cpu", ["linux"]);
    await registerAgent(p.client, "big", ["gpu", "linux", "x"]);
    const w1 = await p.client.fetchWork({ agentId: "cpu", waitMs: 0, freeSlots: 1 });
    assert.equal(w1.assignment?.run.runId, any.runId, "skips the older gpu run it cannot take");
    assert.equal((await p.client.fetchWork({ agentId: "cpu", waitMs: 0, freeSlots: 1 })).assignment, null);
    const w2 = await p.client.fetchWork({ agentId: "big", waitMs: 0, freeSlots: 1 });
    assert.equal(w2.assignment?.run.runId, gpu.runId);
    await assert.rejects(p.client.fetchWork({ agentId: "stranger", waitMs: 0, freeSlots: 1 }), (e: unknown) =>
      isCdktrError(e, "AGENT_NOT_REGISTERED"),
    );
  });
});

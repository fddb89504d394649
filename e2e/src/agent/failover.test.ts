/**
 * Failures of whole processes: the principal SIGKILLed and restarted mid-run, the agent
 * SIGKILLed mid-run (orphans reaped by the next agent), a shared data directory, graceful
 * shutdown, and an agent started before its principal.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { cleanup, groupAlive, taskStates, waitFor, workflowYaml } from "@cdktr/test-utils";
import { prepareCluster, readLines, startFastAgent } from "./helpers.js";

afterEach(cleanup);

test("principal SIGKILLed mid-run and restarted 5 s later: run COMPLETED, every log line stored once", async () => {
  const LINES = 150;
  // ~3 s of steady output, then a dependent task: both end while the principal is down
  const script = `let i=0;const t=setInterval(()=>{i++;console.log('tick '+i);if(i>=${LINES})clearInterval(t)},20)`;
  const c = await prepareCluster({
    "steady.yml": workflowYaml({
      tasks: {
        steady: { cmd: process.execPath, args: ["-e", script] },
        after: { cmd: "sh", args: ["-c", "echo done"], depends: ["steady"] },
      },
    }),
  });
  await c.start();
  await startFastAgent(c);
  const runId = await c.run("steady");
  await waitFor(async () => (await c.logs(runId, "steady")).some((l) => l.line === "tick 20"), {
    timeoutMs: 15_000,
    what: "output flowing",
  });
  await c.kill();
  await new Promise((r) => setTimeout(r, 5000));
  const restartedAt = Date.now();
  await c.start();
  const r = await c.waitForRun(runId, 60_000);
  assert.equal(r.run.status, "COMPLETED", JSON.stringify(r.run));
  assert.deepEqual(taskStates(r), { steady: "COMPLETED", after: "COMPLETED" });
  // Updates queued during the outage carry the agent-clock times of the real transitions.
  for (const t of r.tasks)
    assert.ok(Date.parse(t.finishedAt ?? "") < restartedAt, `${t.taskId} finished at ${t.finishedAt}`);
  const lines = await c.logs(runId, "steady");
  const seqs = lines.map((l) => l.seq).sort((a, b) => a - b);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => i + 1),
    "every seq once, no gaps",
  );
  const ticks = lines
    .filter((l) => l.stream === "stdout")
    .sort((a, b) => a.seq - b.seq)
    .map((l) => l.line);
  assert.deepEqual(
    ticks,
    Array.from({ length: LINES }, (_, i) => `tick ${i + 1}`),
  );
  assert.deepEqual(
    (await c.logs(runId, "after")).filter((l) => l.stream === "stdout").map((l) => l.line),
    ["done"],
  );
});

test("agent stopped while the principal is down: logs and statuses stay on disk; the next agent delivers them", async () => {
  const c = await prepareCluster();
  c.writeWorkflows({
    "offline.yml": workflowYaml({
      tasks: { work: { cmd: "sh", args: ["-c", `sleep 1; seq 1 300; touch '${c.home}/done'`] } },
    }),
  });
  await c.start();
  const dataDir = join(c.home, "agent-data");
  const env = { CDKTR_AGENT_ID: "agent-x", CDKTR_AGENT_SHUTDOWN_GRACE_MS: "2000" };
  const first = await startFastAgent(c, { dataDir, env });
  const runId = await c.run("offline");
  await waitFor(async () => (await c.client.getRun(runId)).run.status === "RUNNING", {
    timeoutMs: 10_000,
    what: "run RUNNING",
  });
  await c.kill();
  await waitFor(() => existsSync(join(c.home, "done")), { timeoutMs: 15_000, what: "task done" });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await first.stop("SIGTERM", 20_000)).code, 0);
  assert.ok(readdirSync(join(dataDir, "spool")).length > 0, "log lines spooled");
  assert.ok(existsSync(join(dataDir, "outbox.json")), "status updates persisted");
  await c.start();
  await startFastAgent(c, { dataDir, env });
  const r = await c.waitForRun(runId, 30_000);
  assert.equal(r.run.status, "COMPLETED", JSON.stringify(r.run));
  const out = (await c.logs(runId, "work")).filter((l) => l.stream === "stdout").sort((a, b) => a.seq - b.seq);
  assert.deepEqual(
    out.map((l) => l.line),
    Array.from({ length: 300 }, (_, i) => String(i + 1)),
  );
  await waitFor(() => readdirSync(join(dataDir, "spool")).length === 0 && !existsSync(join(dataDir, "outbox.json")), {
    timeoutMs: 5000,
    what: "spool and outbox drained",
  });
});

test("agent SIGKILLed mid-run: CRASHED within the heartbeat timeout plus one check interval; the next agent kills the orphan", async (t) => {
  const TIMEOUT_MS = 1500;
  // The principal checks every min(1000, timeout / 4, lease / 4) ms (lease: 10 s by default).
  const CHECK_MS = Math.min(1000, Math.floor(TIMEOUT_MS / 4), 2500);
  const c = await prepareCluster({}, { env: { CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: String(TIMEOUT_MS) } });
  c.writeWorkflows({
    "sleepy.yml": workflowYaml({
      tasks: { sleepy: { cmd: "sh", args: ["-c", `echo $$ > '${c.home}/sleepy.pid'; exec sleep 300`] } },
    }),
  });
  await c.start();
  const dataDir = join(c.home, "agent-data");
  // Forked by a spawner process, which records the task's group before the agent hears of it:
  // the agent and its spawner are SIGKILLed together below.
  const agent = await startFastAgent(c, { dataDir, env: { CDKTR_AGENT_SPAWNER: "process" } });
  assert.equal(agent.ready.spawner, "process");
  const runId = await c.run("sleepy");
  const pgid = Number(
    await waitFor(() => readLines(join(c.home, "sleepy.pid"))[0], { timeoutMs: 15_000, what: "task started" }),
  );
  await waitFor(async () => (await c.client.getRun(runId)).run.status === "RUNNING", {
    timeoutMs: 5000,
    what: "run RUNNING",
  });
  const agentId = agent.ready.agentId as string;
  await agent.kill();
  // The wait is only a cap; the timing is asserted on the principal's own records below.
  const crashed = await waitFor(
    async () => {
      const r = await c.client.getRun(runId);
      return r.run.status === "CRASHED" ? r : undefined;
    },
    { timeoutMs: 20_000, what: "run CRASHED" },
  );
  assert.equal(crashed.run.reason, "agent_lost");
  const lost = (await c.client.listAgents()).agents.find((a) => a.agentId === agentId);
  assert.equal(lost?.status, "LOST");
  // Principal-clock times: last message heard from the agent -> run marked CRASHED.
  const silentMs = Date.parse(crashed.run.finishedAt ?? "") - Date.parse(lost.lastHeartbeatAt);
  t.diagnostic(
    `CRASHED ${silentMs} ms after the agent's last message (timeout ${TIMEOUT_MS}, check interval ${CHECK_MS})`,
  );
  assert.ok(silentMs > TIMEOUT_MS, `CRASHED only after the timeout (silent ${silentMs} ms)`);
  // One check interval late at most, plus 200 ms for the principal's timer firing late on a busy
  // machine and the group commit (observed: 1500-1830 ms for 1500 + 375).
  assert.ok(
    silentMs <= TIMEOUT_MS + CHECK_MS + 200,
    `CRASHED ${silentMs} ms after the last heartbeat (timeout ${TIMEOUT_MS} + check ${CHECK_MS})`,
  );
  assert.equal(groupAlive(pgid), true, "the orphaned task survived its agent");
  const next = await startFastAgent(c, { dataDir });
  assert.deepEqual(next.ready.reapedProcessGroups, [pgid]);
  await waitFor(() => !groupAlive(pgid), { timeoutMs: 5000, what: "orphan killed" });
});

test("two agents never share a data directory: the second exits 2 with a clear message", async () => {
  const c = await prepareCluster();
  await c.start();
  const dataDir = join(c.home, "shared");
  const first = await startFastAgent(c, { dataDir });
  const second = await startFastAgent(c, { dataDir, waitReady: false });
  const exit = await second.exited;
  assert.equal(exit.code, 2);
  assert.ok(
    second.lines.some((l) => l.includes("is in use by another agent") && l.includes(String(first.pid))),
    second.lines.join("\n"),
  );
  // invalid configuration: exit 2 too, naming the variable
  const bad = await startFastAgent(c, {
    dataDir: join(c.home, "other"),
    env: { CDKTR_AGENT_MAX_CONCURRENCY: "lots" },
    waitReady: false,
  });
  assert.equal((await bad.exited).code, 2);
  assert.ok(
    bad.lines.some((l) => l.includes("CDKTR_AGENT_MAX_CONCURRENCY")),
    bad.lines.join("\n"),
  );
});

test("SIGTERM: running tasks get the grace period, the rest are CANCELLED (agent_shutdown), exit 0", async () => {
  const c = await prepareCluster();
  c.writeWorkflows({
    "mixed.yml": workflowYaml({
      tasks: {
        quick: { cmd: "sh", args: ["-c", "sleep 1; echo quick done"] },
        long: { cmd: "sh", args: ["-c", `echo $$ > '${c.home}/long.pid'; exec sleep 300`] },
        later: { cmd: "true", depends: ["long"] },
      },
    }),
  });
  await c.start();
  const agent = await startFastAgent(c, {
    dataDir: join(c.home, "agent-data"),
    env: { CDKTR_AGENT_SHUTDOWN_GRACE_MS: "2500" },
  });
  const runId = await c.run("mixed");
  const pgid = Number(
    await waitFor(() => readLines(join(c.home, "long.pid"))[0], { timeoutMs: 15_000, what: "task started" }),
  );
  const exit = await agent.stop("SIGTERM", 20_000);
  assert.equal(exit.code, 0);
  const r = await c.waitForRun(runId);
  assert.equal(r.run.status, "CANCELLED");
  assert.equal(r.run.reason, "agent_shutdown");
  assert.deepEqual(taskStates(r), { quick: "COMPLETED", long: "CANCELLED", later: "CANCELLED" });
  assert.equal(r.tasks.find((t) => t.taskId === "long")?.reason, "agent_shutdown");
  assert.equal(groupAlive(pgid), false);
  const quickOut = (await c.logs(runId, "quick")).filter((l) => l.stream === "stdout").map((l) => l.line);
  assert.deepEqual(quickOut, ["quick done"]);
});

test("a second signal forces: task process groups killed at once, exit 130", async () => {
  const c = await prepareCluster();
  c.writeWorkflows({
    "stuck.yml": workflowYaml({
      tasks: { stuck: { cmd: "sh", args: ["-c", `echo $$ > '${c.home}/stuck.pid'; exec sleep 300`] } },
    }),
  });
  await c.start();
  // A grace period far longer than the test: only the second signal can end the agent in time.
  const agent = await startFastAgent(c, {
    dataDir: join(c.home, "agent-data"),
    env: { CDKTR_AGENT_SHUTDOWN_GRACE_MS: "600000" },
  });
  await c.run("stuck");
  const pgid = Number(
    await waitFor(() => readLines(join(c.home, "stuck.pid"))[0], { timeoutMs: 15_000, what: "task started" }),
  );
  agent.child.kill("SIGTERM");
  await agent.waitForLine(
    (_l, j) => typeof j?.message === "string" && j.message.startsWith("stopping (send the signal again to force)"),
    10_000,
  );
  assert.equal(groupAlive(pgid), true, "the first signal lets the running task go on");
  const exit = await agent.stop("SIGTERM", 10_000);
  assert.equal(exit.code, 130);
  await waitFor(() => !groupAlive(pgid), { timeoutMs: 5000, what: "task group killed" });
});

test("an agent started before its principal waits for it and then runs work", async () => {
  // Ports picked up front: the agent is pointed at the principal before it runs.
  const c = await prepareCluster(
    { "one.yml": workflowYaml({ tasks: { one: { cmd: "sh", args: ["-c", "echo hello"] } } }) },
    { ports: "reserved" },
  );
  const agent = await startFastAgent(c);
  assert.equal(agent.ready.registered, false);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(agent.child.exitCode, null, "the agent does not exit while the principal is away");
  await c.start();
  const r = await c.waitForRun(await c.run("one"), 30_000);
  assert.equal(r.run.status, "COMPLETED");
  assert.equal(r.run.agentId, agent.ready.agentId);
});

/**
 * Dispatch without a confirmation round trip (docs/architecture.md, "Dispatch without a
 * confirmation"): an agent starts a run on the committed assignment alone, so the principal may
 * queue an assignment again only once the agent's own word shows it never started it. Each
 * failure between the assignment's commit and the start must neither lose the run nor start it
 * twice: the reply lost, the principal killed after the commit, the reply delayed far past the
 * lease, the agent killed after the reply reached it and before it acted on it.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { cleanup, waitFor, workflowYaml, type PrincipalFixture, type ServiceHandle } from "@cdktr/test-utils";
import { countingTask, prepareCluster, readLines, startFastAgent } from "./helpers.js";

afterEach(cleanup);

/**
 * A principal whose agents are not declared lost for 30 s and whose (legacy) leases last 500 ms,
 * with `counted` (appends to `file`) and `long` (appends its pid to `pidFile`, then sleeps).
 */
async function cluster(): Promise<{ c: PrincipalFixture; principal: ServiceHandle; file: string; pidFile: string }> {
  const c = await prepareCluster(
    {},
    { env: { CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "30000", CDKTR_ASSIGNMENT_LEASE_MS: "500" } },
  );
  const file = join(c.home, "counted.txt");
  const pidFile = join(c.home, "task.pid");
  c.writeWorkflows({
    "counted.yml": workflowYaml({ tasks: { count: countingTask(file) } }),
    "long.yml": workflowYaml({
      tasks: { long: { cmd: "sh", args: ["-c", `echo $$ >> '${pidFile}'; exec sleep 300`] } },
    }),
  });
  const principal = await c.start();
  return { c, principal, file, pidFile };
}

const status = async (c: PrincipalFixture, runId: string): Promise<string> => (await c.client.getRun(runId)).run.status;

/**
 * An agent whose `fetchWork` long-polls wait 60 s, so one is always parked at the principal,
 * then frozen (SIGSTOP) with that poll parked: the next run is assigned to it, and the reply
 * waits, unread, in the frozen process's socket.
 */
async function frozenAgent(c: PrincipalFixture, dataDir: string): Promise<ServiceHandle> {
  const agent = await startFastAgent(c, {
    dataDir,
    env: { CDKTR_AGENT_ID: "frozen", CDKTR_AGENT_FETCH_WAIT_MS: "60000", CDKTR_AGENT_MAX_CONCURRENCY: "1" },
  });
  await waitFor(async () => (await c.client.listAgents()).agents.some((a) => a.agentId === "frozen"), {
    timeoutMs: 10_000,
    what: "agent registered",
  });
  // Its first long-poll is parked well before this.
  await new Promise((r) => setTimeout(r, 500));
  process.kill(agent.pid, "SIGSTOP");
  return agent;
}

test("reply lost, then the principal SIGKILLed and restarted: the agent's word queues the run again; it runs once", async () => {
  const { c, file } = await cluster();
  const agentId = "lossy";
  const session = "lossy-session-1";
  const as = c.connect({ key: c.key("local-agent") });
  const register = (settledThrough: number) =>
    as.registerAgent({
      agentId,
      host: "test",
      capacity: 1,
      labels: [],
      version: "0",
      runningRuns: [],
      session,
      settledThrough,
    });
  await register(0);
  const runId = await c.run("counted");
  const { assignment } = await as.fetchWork({ agentId, waitMs: 5000, freeSlots: 1, session, seq: 1 });
  assert.equal(assignment?.run.runId, runId);
  // The reply is lost: this "agent" never acts on it. The assignment was committed before it.
  assert.equal(await status(c, runId), "ASSIGNED");
  await c.kill();
  await c.start();
  assert.equal(await status(c, runId), "ASSIGNED", "the committed assignment survives the restart");
  // Its lease (500 ms) is long past: no expiry takes it back, only the agent's word does.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await status(c, runId), "ASSIGNED");
  // The agent registers again with the restarted principal: fetch 1 settled, nothing started.
  await register(1);
  await waitFor(async () => (await status(c, runId)) === "QUEUED", { timeoutMs: 10_000, what: "run queued again" });
  await assert.rejects(
    as.confirmAssignment({ agentId, runId, token: assignment.token }),
    (e: unknown) => (e as { code?: string }).code === "STALE_ASSIGNMENT",
    "the lost reply's token is refused",
  );
  await startFastAgent(c);
  const done = await c.waitForRun(runId, 30_000);
  assert.equal(done.run.status, "COMPLETED", JSON.stringify(done.run));
  assert.deepEqual(readLines(file), ["count"], "the task ran exactly once");
});

test("reply delayed far past the lease (agent frozen): nothing requeues it, and it runs once when the agent wakes", async () => {
  const { c, file } = await cluster();
  const agent = await frozenAgent(c, join(c.home, "agent-data"));
  try {
    const runId = await c.run("counted");
    await waitFor(async () => (await status(c, runId)) === "ASSIGNED", { timeoutMs: 5000, what: "assigned" });
    // Six leases: an agent that starts on its assignment must not see the run handed out again.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(await status(c, runId), "ASSIGNED");
    assert.deepEqual(readLines(file), [], "nothing started while the agent is frozen");
    await startFastAgent(c); // a second agent, free, that must not get the run
    process.kill(agent.pid, "SIGCONT");
    const done = await c.waitForRun(runId, 30_000);
    assert.equal(done.run.status, "COMPLETED", JSON.stringify(done.run));
    assert.equal(done.run.agentId, "frozen");
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(readLines(file), ["count"], "the task ran exactly once");
  } finally {
    process.kill(agent.pid, "SIGCONT");
  }
});

test("agent SIGKILLed after the reply reached it, before it acted on it: the next agent process vouches that it never started; the same run completes once", async () => {
  const { c, file } = await cluster();
  const dataDir = join(c.home, "agent-data");
  const agent = await frozenAgent(c, dataDir);
  const runId = await c.run("counted");
  await waitFor(async () => (await status(c, runId)) === "ASSIGNED", { timeoutMs: 5000, what: "assigned" });
  await agent.kill();
  assert.deepEqual(readLines(file), []);
  // The same agent again, on the same data directory: its registration names its predecessor.
  await startFastAgent(c, { dataDir, env: { CDKTR_AGENT_ID: "frozen" } });
  const done = await c.waitForRun(runId, 30_000);
  assert.equal(done.run.status, "COMPLETED", `the same run, queued again, not CRASHED: ${JSON.stringify(done.run)}`);
  assert.deepEqual(readLines(file), ["count"], "the task ran exactly once");
});

test("agent SIGKILLed after it started the run, before the principal heard: the run is CRASHED (agent lost), never started again", async () => {
  const { c, principal, pidFile } = await cluster();
  const dataDir = join(c.home, "agent-data");
  const agent = await frozenAgent(c, dataDir);
  const runId = await c.run("long");
  await waitFor(async () => (await status(c, runId)) === "ASSIGNED", { timeoutMs: 5000, what: "assigned" });
  // The reply is on its way once the commit is visible; then the principal freezes, so the agent
  // starts the task and its confirmation waits in its outbox.
  await new Promise((r) => setTimeout(r, 200));
  process.kill(principal.pid, "SIGSTOP");
  process.kill(agent.pid, "SIGCONT");
  await waitFor(() => readLines(pidFile).length === 1, { timeoutMs: 10_000, what: "task started" });
  await agent.kill();
  await c.kill();
  await c.start();
  await startFastAgent(c, { dataDir, env: { CDKTR_AGENT_ID: "frozen" } });
  const crashed = await c.waitForRun(runId, 30_000);
  assert.equal(crashed.run.status, "CRASHED", JSON.stringify(crashed.run));
  assert.equal(crashed.run.reason, "agent_lost");
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(readLines(pidFile).length, 1, "never started a second time");
});

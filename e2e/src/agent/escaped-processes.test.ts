/**
 * Descendants that leave the task's process group (`setsid`) cannot outlive a timeout, a cancel
 * or the task itself: with a real principal and agent, under both of the agent's mechanisms (a
 * cgroup v2 subtree per task, and the `/proc/<pid>/environ` marker scan).
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { accessSync, constants, readFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, processGone, waitFor, workflowYaml, type PrincipalFixture, type TaskSpec } from "@cdktr/test-utils";
import { prepareCluster, startFastAgent } from "./helpers.js";

afterEach(cleanup);

/** The escaped process lives 97 s: a run that waited for it would blow every bound below. */
const ESCAPE = "setsid sleep 97 & echo escaped=$!";
/** Wide bound of a run that should end about 2.5 s after it started (timeout 2 s + grace 0.5 s). */
const BOUND_MS = 30_000;

/** A writable cgroup v2 hierarchy for the agent's own cgroup, or why not. */
function cgroupProblem(): string | null {
  try {
    const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
    const line = mounts.find((l) => l.split(" - ")[1]?.startsWith("cgroup2 "));
    if (line === undefined) return "no cgroup2 file system is mounted";
    const mount = line.split(" ")[4] ?? "";
    const own = readFileSync("/proc/self/cgroup", "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::"));
    if (own === undefined) return "this process has no cgroup v2 path";
    accessSync(`${mount}${own.slice(3)}`, constants.W_OK);
    return null;
  } catch (e: unknown) {
    return `cgroup v2 not writable here: ${String(e)}`;
  }
}

async function cluster(containment: "cgroup" | "proc", tasks: Record<string, TaskSpec>, dataDir?: string) {
  const c = await prepareCluster();
  c.writeWorkflows({ "escape.yml": workflowYaml({ tasks }) });
  await c.start();
  // Each mechanism with one way of forking (the other pairs: apps/agent/src/exec/containment.test.ts).
  const spawner = containment === "cgroup" ? "process" : "inline";
  const agent = await startFastAgent(c, {
    env: { CDKTR_AGENT_CONTAINMENT: containment, CDKTR_AGENT_SPAWNER: spawner },
    ...(dataDir === undefined ? {} : { dataDir: join(c.home, dataDir) }),
  });
  assert.equal(agent.ready.containment, containment);
  assert.equal(agent.ready.spawner, spawner);
  return Object.assign(c, { agent });
}

/** The pid the task printed as `escaped=<pid>`, and the task's `/proc/self/cgroup` line. */
async function escapedPid(c: PrincipalFixture, runId: string): Promise<{ pid: number; cgroup: string }> {
  return waitFor(
    async () => {
      const lines = (await c.logs(runId, "escape")).map((l) => l.line);
      const pid = lines.find((l) => l.startsWith("escaped="));
      const cgroup = lines.find((l) => l.startsWith("0::")) ?? "";
      return pid === undefined ? undefined : { pid: Number(pid.slice("escaped=".length)), cgroup };
    },
    { timeoutMs: 15_000, what: "the task to print the escaped pid" },
  );
}

function expectMechanism(containment: "cgroup" | "proc", cgroup: string): void {
  if (containment === "cgroup") assert.match(cgroup, /\/cdktr-agent-[0-9a-f]+\/task-[0-9a-f]+$/);
  else assert.doesNotMatch(cgroup, /cdktr-agent-/);
}

for (const containment of ["cgroup", "proc"] as const) {
  const skip = containment === "cgroup" ? (cgroupProblem() ?? false) : false;

  test(`${containment}: a timed-out task whose child escaped with setsid ends at its timeout, the run moves on, the child is killed`, {
    skip,
  }, async (t) => {
    const c = await cluster(containment, {
      escape: {
        cmd: "sh",
        args: ["-c", `grep '^0::' /proc/self/cgroup; ${ESCAPE}; sleep 1000`],
        extra: ["timeout: 2s"],
      },
      after: { cmd: "true", depends: ["escape"] },
    });
    const started = Date.now();
    const runId = await c.run("escape");
    const r = await c.waitForRun(runId);
    const elapsed = Date.now() - started;
    t.diagnostic(`run ended ${elapsed} ms after the trigger`);
    assert.ok(elapsed < BOUND_MS, `the run took ${elapsed} ms`);
    assert.equal(r.run.status, "FAILED");
    assert.equal(r.tasks.find((t) => t.taskId === "after")?.status, "SKIPPED");
    const task = r.tasks.find((t) => t.taskId === "escape");
    assert.equal(task?.status, "FAILED");
    assert.equal(task?.reason, "timeout");
    const { pid, cgroup } = await escapedPid(c, runId);
    expectMechanism(containment, cgroup);
    await waitFor(() => processGone(pid), { timeoutMs: 5000, what: `escaped pid ${pid} killed` });
  });

  test(`${containment}: a cancelled task whose child escaped with setsid ends CANCELLED at once, the child is killed`, {
    skip,
  }, async (t) => {
    const c = await cluster(containment, {
      escape: { cmd: "sh", args: ["-c", `grep '^0::' /proc/self/cgroup; ${ESCAPE}; sleep 1000`] },
    });
    const runId = await c.run("escape");
    const { pid, cgroup } = await escapedPid(c, runId);
    expectMechanism(containment, cgroup);
    assert.equal(processGone(pid), false);
    const cancelledAt = Date.now();
    assert.equal((await c.client.cancelRun(runId)).cancelled, true);
    const r = await c.waitForRun(runId);
    const elapsed = Date.now() - cancelledAt;
    t.diagnostic(`run ended ${elapsed} ms after the cancel`);
    assert.ok(elapsed < BOUND_MS, `the cancel took ${elapsed} ms`);
    assert.equal(r.run.status, "CANCELLED");
    assert.equal(r.tasks.find((t) => t.taskId === "escape")?.status, "CANCELLED");
    await waitFor(() => processGone(pid), { timeoutMs: 5000, what: `escaped pid ${pid} killed` });
  });

  test(`${containment}: a task that exits 0 leaving an escaped child completes at once, the child is killed`, {
    skip,
  }, async (t) => {
    const c = await cluster(containment, {
      escape: { cmd: "sh", args: ["-c", `grep '^0::' /proc/self/cgroup; ${ESCAPE}`] },
    });
    const started = Date.now();
    const runId = await c.run("escape");
    const r = await c.waitForRun(runId);
    const elapsed = Date.now() - started;
    t.diagnostic(`run ended ${elapsed} ms after the trigger`);
    assert.ok(elapsed < BOUND_MS, `the run took ${elapsed} ms`);
    assert.equal(r.run.status, "COMPLETED");
    const { pid, cgroup } = await escapedPid(c, runId);
    expectMechanism(containment, cgroup);
    await waitFor(() => processGone(pid), { timeoutMs: 5000, what: `escaped pid ${pid} killed` });
  });
}

for (const containment of ["cgroup", "proc"] as const) {
  const skip = containment === "cgroup" ? (cgroupProblem() ?? false) : false;

  test(`${containment}: an agent SIGKILLed while a task's escaped child runs; the next agent on its data directory kills that child`, {
    skip,
  }, async () => {
    const c = await cluster(
      containment,
      { escape: { cmd: "sh", args: ["-c", `grep '^0::' /proc/self/cgroup; ${ESCAPE}; sleep 1000`] } },
      "agent-data",
    );
    const runId = await c.run("escape");
    const { pid } = await escapedPid(c, runId);
    await c.agent.kill();
    assert.equal(processGone(pid), false, "the escaped child survived its agent");
    const next = await startFastAgent(c, {
      dataDir: join(c.home, "agent-data"),
      env: { CDKTR_AGENT_CONTAINMENT: containment },
    });
    assert.equal(next.ready.containment, containment);
    // The task's group leader and its `sleep 1000`, and the escaped child: at least the child.
    assert.ok(Number(next.ready.reapedProcesses) >= 1, JSON.stringify(next.ready));
    await waitFor(() => processGone(pid), { timeoutMs: 5000, what: `escaped pid ${pid} killed at start` });
  });
}

test("CDKTR_AGENT_CONTAINMENT=cgroup where no cgroup can be made: the agent exits 2 naming the setting", async () => {
  const c = await prepareCluster();
  await c.start();
  const bad = await startFastAgent(c, {
    env: { CDKTR_AGENT_CONTAINMENT: "cgroup", CDKTR_AGENT_CGROUP_BASE: join(c.home, "not-a-cgroup") },
    waitReady: false,
  });
  assert.equal((await bad.exited).code, 2);
  assert.ok(
    bad.lines.some((l) => l.includes("CDKTR_AGENT_CONTAINMENT=cgroup") && l.includes("not-a-cgroup")),
    bad.lines.join("\n"),
  );
});

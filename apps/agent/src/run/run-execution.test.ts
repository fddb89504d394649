import { after, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { noopLogger, type TaskDefinition } from "@cdktr/protocol";
import { fillDisk, makeTempDir, mountTmpfs, removeTempDirs, waitFor } from "@cdktr/test-utils";
import { ProcessGroupRegistry } from "../exec/process-group-registry.js";
import { LogShipper } from "../logs/log-shipper.js";
import { StatusOutbox } from "../status/status-outbox.js";
import type { StatusUpdate } from "../status/status-update.js";
import { RunExecution, type RunExecutionOptions } from "./run-execution.js";

after(removeTempDirs);

/** A task that touches `path`. */
function touchTask(id: string, path: string, depends: string[] = []): TaskDefinition {
  return {
    id,
    name: id,
    description: null,
    depends,
    config: { type: "subprocess", cmd: "touch", args: [path] },
    env: {},
    workingDirectory: null,
    timeoutMs: null,
    retries: { count: 0, backoffMs: 0, factor: 1 },
  };
}

/** The agent's status outbox and log shipper on `dataDir`, started; what the outbox delivers lands in `sent`. */
function agentParts(dataDir: string): {
  outbox: StatusOutbox;
  shipper: LogShipper;
  sent: StatusUpdate[];
  stop: () => Promise<void>;
} {
  const sent: StatusUpdate[] = [];
  const outbox = new StatusOutbox({
    dataDir,
    logger: noopLogger,
    rewriteMs: 20,
    sink: async (u) => {
      sent.push(u);
    },
  });
  const shipper = new LogShipper({
    sink: async () => undefined,
    spoolDir: join(dataDir, "spool"),
    spoolMaxBytes: 1024 * 1024,
    logger: noopLogger,
  });
  outbox.start();
  shipper.start();
  return {
    outbox,
    shipper,
    sent,
    stop: async () => {
      await shipper.stop();
      await outbox.stop();
    },
  };
}

/** Run `r1` of workflow `wf` with `tasks` on the agent's `parts` (`reusedTasks`: a retry's tasks taken as done). */
function execution(
  parts: ReturnType<typeof agentParts>,
  tasks: Record<string, TaskDefinition>,
  reusedTasks?: string[],
): RunExecution {
  return new RunExecution({
    agentId: "a",
    assignment: {
      token: "k",
      run: { runId: "r1", source: "test", params: {}, scheduledFor: null },
      workflow: { id: "wf", params: {}, tasks },
      ...(reusedTasks === undefined ? {} : { reusedTasks }),
    } as unknown as RunExecutionOptions["assignment"],
    taskEnv: { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
    outbox: parts.outbox,
    shipper: parts.shipper,
    groups: new ProcessGroupRegistry(makeTempDir("cdktr-pgids-"), noopLogger),
    killGraceMs: 500,
    logger: noopLogger,
  });
}

/** A run of one task that touches `marker` (outside the tmpfs), with the agent's parts on a full tmpfs. */
async function blockedRun(t: TestContext): Promise<{
  exec: RunExecution;
  sent: StatusUpdate[];
  marker: string;
  free: () => void;
  stop: () => Promise<void>;
} | null> {
  const mnt = mountTmpfs(t, 256 * 1024);
  if (mnt === null) return null;
  const dir = join(mnt, "agent");
  mkdirSync(dir);
  const marker = join(makeTempDir("cdktr-run-"), "ran");
  const parts = agentParts(dir);
  const filler = fillDisk(mnt);
  // A transition the journal cannot take: the outbox is not writable from now on.
  parts.outbox.push({
    verb: "runStatus",
    body: { agentId: "a", runId: "other", token: "k", status: "COMPLETED", time: new Date(0).toISOString() },
  });
  assert.equal(parts.outbox.writable, false);
  return {
    exec: execution(parts, { t: touchTask("t", marker) }),
    sent: parts.sent,
    marker,
    free: () => rmSync(filler),
    stop: parts.stop,
  };
}

const taskStatuses = (sent: StatusUpdate[]): string[] =>
  sent.flatMap((u) => (u.verb === "taskStatus" && u.body.runId === "r1" ? [u.body.status] : []));

test("no task attempt starts while the status outbox cannot be written; it starts once space returns", async (t) => {
  const b = await blockedRun(t);
  if (b === null) return;
  const done = b.exec.execute();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(existsSync(b.marker), false, "the task did not start");
  assert.deepEqual(taskStatuses(b.sent), [], "no RUNNING reported");
  b.free();
  // (The outbox's retry timer does not keep a process alive: waitFor does.)
  let status = "";
  void done.then((s) => (status = s));
  await waitFor(() => status !== "", { timeoutMs: 5000, what: "the run finished" });
  assert.equal(status, "COMPLETED");
  assert.ok(existsSync(b.marker), "the task ran");
  await waitFor(() => taskStatuses(b.sent).length === 2, { timeoutMs: 5000, what: "both statuses delivered" });
  assert.deepEqual(taskStatuses(b.sent), ["RUNNING", "COMPLETED"]);
  await b.stop();
});

test("a run cancelled while its task waits for the status outbox ends CANCELLED without starting it", async (t) => {
  const b = await blockedRun(t);
  if (b === null) return;
  const done = b.exec.execute();
  await new Promise((r) => setTimeout(r, 100));
  b.exec.cancel("cancelled");
  assert.equal(await done, "CANCELLED");
  assert.equal(existsSync(b.marker), false, "the task never started");
  b.free();
  await waitFor(() => taskStatuses(b.sent).length === 1, { timeoutMs: 5000, what: "the task's status delivered" });
  const u = b.sent.find((x) => x.verb === "taskStatus" && x.body.runId === "r1");
  assert.ok(u !== undefined && u.verb === "taskStatus");
  assert.equal(u.body.status, "CANCELLED");
  assert.equal(u.body.attempt, 0, "attempt 0: never started");
  await b.stop();
});

/** A run of workflow `wf` whose tasks each touch a file named after them in `dir`. */
function touchRun(taskDeps: Record<string, string[]>, reusedTasks: string[] | undefined) {
  const dir = makeTempDir("cdktr-reused-");
  const parts = agentParts(makeTempDir("cdktr-agent-"));
  const tasks = Object.fromEntries(
    Object.entries(taskDeps).map(([id, depends]): [string, TaskDefinition] => [
      id,
      touchTask(id, join(dir, id), depends),
    ]),
  );
  return {
    exec: execution(parts, tasks, reusedTasks),
    sent: parts.sent,
    ran: (id: string) => existsSync(join(dir, id)),
    stop: parts.stop,
  };
}

const reported = (sent: StatusUpdate[]): string[] =>
  sent.flatMap((u) => (u.verb === "taskStatus" ? [`${u.body.taskId}:${u.body.status}`] : []));
const runReports = (sent: StatusUpdate[]): string[] =>
  sent.flatMap((u) => (u.verb === "runStatus" ? [u.body.status] : []));

test("a retry's reused tasks are never run nor reported; their dependents start at once", async () => {
  const r = touchRun({ a: [], b: ["a"], c: ["b"], d: [] }, ["a", "d"]);
  assert.equal(await r.exec.execute(), "COMPLETED");
  await waitFor(() => runReports(r.sent).length === 1, { timeoutMs: 5000, what: "the run's status delivered" });
  assert.equal(r.ran("a"), false, "a is reused: not run");
  assert.equal(r.ran("d"), false, "d is reused: not run");
  assert.ok(r.ran("b") && r.ran("c"), "b and c ran");
  assert.deepEqual(reported(r.sent), ["b:RUNNING", "b:COMPLETED", "c:RUNNING", "c:COMPLETED"]);
  assert.deepEqual(runReports(r.sent), ["COMPLETED"]);
  await r.stop();
});

test("a retry whose every task is reused completes at once without running anything", async () => {
  const r = touchRun({ a: [], b: ["a"] }, ["b", "a"]);
  assert.equal(await r.exec.execute(), "COMPLETED");
  await waitFor(() => runReports(r.sent).length === 1, { timeoutMs: 5000, what: "the run's status delivered" });
  assert.equal(r.ran("a") || r.ran("b"), false);
  assert.deepEqual(reported(r.sent), []);
  await r.stop();
});

test("without reused tasks every task runs (the control of the two tests above)", async () => {
  const r = touchRun({ a: [], b: ["a"] }, undefined);
  assert.equal(await r.exec.execute(), "COMPLETED");
  assert.ok(r.ran("a") && r.ran("b"));
  await r.stop();
});

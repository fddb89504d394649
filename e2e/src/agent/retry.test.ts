/**
 * Re-run from the failed tasks, with a real principal and a real agent: the tasks that COMPLETED
 * in the source run are recorded as reused and never run again (each task appends its id to a
 * file), the others run; a retry of a retry points at the run where a task really ran; the API's
 * refusals; and `cdktr run --retry-from` end to end.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { isCdktrError, type TaskRunRecord } from "@cdktr/protocol";
import {
  cleanup,
  runCli,
  taskStates,
  waitFor,
  workflowYaml,
  type PrincipalFixture,
  type RunWithTasks,
} from "@cdktr/test-utils";
import { countingTask, prepareCluster, readLines, startFastAgent } from "./helpers.js";

afterEach(cleanup);

/** Executions per task id, from the lines the tasks appended. */
function counts(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of readLines(file)) out[id] = (out[id] ?? 0) + 1;
  return out;
}

/**
 * A principal and an agent with `pipe` (a; b after a, failing until `marker` exists; c after b;
 * d on its own) and `slow` (one task sleeping 30 s).
 */
async function setup(): Promise<{ c: PrincipalFixture; file: string; marker: string }> {
  const c = await prepareCluster();
  const file = join(c.home, "pipe.count");
  const marker = join(c.home, "b.ok");
  c.writeWorkflows({
    "pipe.yml": workflowYaml({
      tasks: {
        a: countingTask(file),
        b: { cmd: "sh", args: ["-c", `echo b >> '${file}'; test -e '${marker}'`], depends: ["a"] },
        c: countingTask(file, ["b"]),
        d: countingTask(file),
      },
    }),
    "slow.yml": workflowYaml({ tasks: { nap: { cmd: "sleep", args: ["30"] } } }),
  });
  await c.start();
  await startFastAgent(c);
  return { c, file, marker };
}

const task = (r: RunWithTasks, id: string): TaskRunRecord => {
  const t = r.tasks.find((x) => x.taskId === id);
  assert.ok(t !== undefined, `task ${id} of run ${r.run.runId}: ${JSON.stringify(r.tasks)}`);
  return t;
};

async function refused(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isCdktrError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

test("a retry takes the completed tasks as done without running them, runs the others; a retry of a retry points at the original run", async () => {
  const { c, file, marker } = await setup();
  const source = await c.waitForRun(await c.run("pipe"));
  assert.equal(source.run.status, "FAILED");
  assert.deepEqual(taskStates(source), { a: "COMPLETED", b: "FAILED", c: "SKIPPED", d: "COMPLETED" });
  assert.deepEqual(counts(file), { a: 1, b: 1, d: 1 });
  const sourceId = source.run.runId;

  // First retry: b still fails (no marker), a and d are taken as done from the source run.
  const first = await c.client.runWorkflow({ workflowId: "pipe", retryFrom: sourceId });
  assert.equal(first.status, "QUEUED");
  const retry1 = await c.waitForRun(first.runId);
  assert.equal(retry1.run.status, "FAILED");
  assert.equal(retry1.run.retryOf, sourceId);
  assert.deepEqual(taskStates(retry1), { a: "COMPLETED", b: "FAILED", c: "SKIPPED", d: "COMPLETED" });
  for (const id of ["a", "d"]) {
    const [was, now] = [task(source, id), task(retry1, id)];
    assert.equal(now.reusedFrom, sourceId);
    // The record is the source run's: same attempt, exit code and times.
    assert.deepEqual(
      [now.attempt, now.exitCode, now.startedAt, now.finishedAt],
      [was.attempt, was.exitCode, was.startedAt, was.finishedAt],
    );
  }
  assert.equal(task(retry1, "b").reusedFrom, null);
  assert.deepEqual(counts(file), { a: 1, b: 2, d: 1 }, "only b ran again");
  assert.deepEqual(retry1.run.params, source.run.params);

  // Second retry, of the first: b can succeed now; a and d still point at the source run.
  writeFileSync(marker, "");
  const second = await c.client.runWorkflow({ workflowId: "pipe", retryFrom: retry1.run.runId });
  const retry2 = await c.waitForRun(second.runId);
  assert.equal(retry2.run.status, "COMPLETED");
  assert.equal(retry2.run.retryOf, retry1.run.runId);
  assert.deepEqual(taskStates(retry2), { a: "COMPLETED", b: "COMPLETED", c: "COMPLETED", d: "COMPLETED" });
  assert.equal(task(retry2, "a").reusedFrom, sourceId, "reusedFrom names the run where a really ran");
  assert.equal(task(retry2, "d").reusedFrom, sourceId);
  assert.equal(task(retry2, "b").reusedFrom, null);
  assert.equal(task(retry2, "c").reusedFrom, null);
  assert.deepEqual(counts(file), { a: 1, b: 3, c: 1, d: 1 }, "a and d never ran again; b and c ran");
  const order = readLines(file);
  assert.ok(order.indexOf("c") > order.lastIndexOf("b"), "c ran after b");

  // listRuns carries retryOf too.
  const listed = await c.client.listRuns({ workflowId: "pipe", order: "asc" });
  assert.deepEqual(
    listed.runs.map((r) => r.retryOf),
    [null, sourceId, retry1.run.runId],
  );

  // A COMPLETED run has nothing to retry.
  await refused(
    c.client.runWorkflow({ workflowId: "pipe", retryFrom: retry2.run.runId }),
    "BAD_REQUEST",
    new RegExp(`run ${retry2.run.runId} COMPLETED: nothing to retry`),
  );

  // Idempotency keys work as for any trigger: the same key is the same run.
  const keyed = await c.client.runWorkflow({ workflowId: "pipe", retryFrom: sourceId, idempotencyKey: "retry-1" });
  const again = await c.client.runWorkflow({ workflowId: "pipe", retryFrom: sourceId, idempotencyKey: "retry-1" });
  assert.deepEqual([again.runId, again.duplicate], [keyed.runId, true]);
  assert.equal((await c.waitForRun(keyed.runId)).run.status, "COMPLETED");
  assert.deepEqual(counts(file), { a: 1, b: 4, c: 2, d: 1 }, "the keyed retry ran once");
});

test("runWorkflow retryFrom refuses a running run, another workflow's run, params, an unknown run and another key's run", async () => {
  const { c } = await setup();
  const slowId = await c.run("slow");
  await waitFor(async () => (await c.client.getRun(slowId)).run.status === "RUNNING", { what: "slow running" });
  await refused(
    c.client.runWorkflow({ workflowId: "slow", retryFrom: slowId }),
    "BAD_REQUEST",
    new RegExp(`run ${slowId} is RUNNING: wait for it to end or cancel it`),
  );
  await c.client.cancelRun(slowId);
  assert.equal((await c.waitForRun(slowId)).run.status, "CANCELLED");

  await refused(
    c.client.runWorkflow({ workflowId: "pipe", retryFrom: slowId }),
    "BAD_REQUEST",
    new RegExp(`run ${slowId} is a run of \`slow\`, not of \`pipe\``),
  );
  await refused(
    c.client.runWorkflow({ workflowId: "slow", retryFrom: slowId, params: {} }),
    "BAD_REQUEST",
    /a retry runs with the params of its source run/,
  );
  await refused(
    c.client.runWorkflow({ workflowId: "slow", retryFrom: "01NOSUCHRUN0000000000000000" }),
    "RUN_NOT_FOUND",
    /no run `01NOSUCHRUN0000000000000000`/,
  );
  // A trigger key reads only its own runs: another key's run is not found, as getRun says.
  const hook = c.connect({ key: (await c.createKey("hook", "trigger")).key });
  await refused(hook.getRun(slowId), "RUN_NOT_FOUND", /among the runs key `hook` triggered/);
  await refused(
    hook.runWorkflow({ workflowId: "slow", retryFrom: slowId }),
    "RUN_NOT_FOUND",
    /among the runs key `hook` triggered/,
  );
  // In a batch, each item is answered on its own.
  const batch = await c.client.runWorkflows([
    { workflowId: "pipe", retryFrom: slowId },
    { workflowId: "slow", retryFrom: slowId },
  ]);
  assert.equal(batch.results[0]?.ok, false);
  const ok = batch.results[1];
  assert.ok(ok?.ok === true, JSON.stringify(batch.results));
  // The CANCELLED run's retry runs the whole workflow again (nothing had completed).
  const retried = await c.client.getRun(ok.runId);
  assert.equal(retried.run.retryOf, slowId);
  await c.client.cancelRun(ok.runId);
  assert.equal((await c.waitForRun(ok.runId)).run.status, "CANCELLED");
  const counted = (await c.client.listRuns({ workflowId: "slow" })).runs.length;
  assert.equal(counted, 2, "nothing else was created");
});

test("cdktr run --retry-from: retries the run's workflow, shows reused tasks, refuses a workflow id or params", async () => {
  const { c, file, marker } = await setup();
  const env = c.clientEnv;
  const source = await c.waitForRun(await c.run("pipe"));
  assert.equal(source.run.status, "FAILED");
  const sourceId = source.run.runId;

  const withId = await runCli(["run", "pipe", "--retry-from", sourceId], { env });
  assert.equal(withId.code, 2, withId.stderr);
  assert.match(withId.stderr, /--retry-from takes no workflow id/);
  const withParams = await runCli(["run", "--retry-from", sourceId, "-p", "x=1"], { env });
  assert.equal(withParams.code, 2, withParams.stderr);
  assert.match(withParams.stderr, /--retry-from takes no --param/);
  const none = await runCli(["run"], { env });
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /missing workflow id/);
  const unknown = await runCli(["run", "--retry-from", "01NOSUCHRUN0000000000000000"], { env });
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /no run `01NOSUCHRUN0000000000000000`/);
  assert.equal((await c.client.listRuns({ workflowId: "pipe" })).runs.length, 1, "no run was created");

  writeFileSync(marker, "");
  const run = await runCli(["run", "--retry-from", sourceId, "--wait"], { env });
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  const retryId = run.stdout.split("\n")[0]?.trim() ?? "";
  assert.match(run.stdout, /COMPLETED in /);
  assert.deepEqual(counts(file), { a: 1, b: 2, c: 1, d: 1 }, "a and d did not run again");

  const show = await runCli(["runs", "show", retryId], { env: { ...env, NO_COLOR: "1" } });
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, new RegExp(`${retryId}  pipe  COMPLETED  retry of ${sourceId}`));
  for (const id of ["a", "d"]) {
    assert.match(show.stdout, new RegExp(`^${id}\\s+COMPLETED reused \\(run ${sourceId}\\)`, "m"), show.stdout);
  }
  assert.doesNotMatch(show.stdout, /^b\s+COMPLETED reused/m);

  const json = await runCli(["runs", "show", retryId, "--json"], { env });
  const parsed = JSON.parse(json.stdout) as RunWithTasks;
  assert.equal(parsed.run.retryOf, sourceId);
  assert.deepEqual(Object.fromEntries(parsed.tasks.map((t) => [t.taskId, t.reusedFrom])), {
    a: sourceId,
    b: null,
    c: null,
    d: sourceId,
  });
});

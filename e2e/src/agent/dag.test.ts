/**
 * A real principal and a real agent run workflows of every DAG shape; each task's executions
 * are counted with a side-effect file.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { cleanup, taskStates, workflowYaml, type PrincipalFixture } from "@cdktr/test-utils";
import { countingTask, prepareCluster, readLines, startFastAgent } from "./helpers.js";

afterEach(cleanup);

function counts(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of readLines(file)) out[id] = (out[id] ?? 0) + 1;
  return out;
}

/** Start a principal and an agent with one workflow per shape (files are in the home dir). */
async function setup(
  build: (file: (name: string) => string) => Record<string, string>,
): Promise<{ c: PrincipalFixture; file: (name: string) => string }> {
  // The YAML needs the home path: create first, then write the workflows.
  const c = await prepareCluster();
  const file = (name: string): string => join(c.home, `${name}.count`);
  c.writeWorkflows(build(file));
  await c.start();
  await startFastAgent(c);
  return { c, file };
}

test("linear, fan-out, fan-in: every task runs exactly once, in dependency order; runs COMPLETED, times in order", async () => {
  const { c, file } = await setup((f) => ({
    "linear.yml": workflowYaml({
      tasks: {
        a: countingTask(f("linear")),
        b: countingTask(f("linear"), ["a"]),
        c: countingTask(f("linear"), ["b"]),
      },
    }),
    "fanout.yml": workflowYaml({
      tasks: {
        root: countingTask(f("fanout")),
        x: countingTask(f("fanout"), ["root"]),
        y: countingTask(f("fanout"), ["root"]),
        z: countingTask(f("fanout"), ["root"]),
      },
    }),
    "fanin.yml": workflowYaml({
      tasks: {
        // p2 is slow: the join must wait for it (the original started it after p1 alone).
        p1: countingTask(f("fanin")),
        p2: { cmd: "sh", args: ["-c", `sleep 1; echo "$CDKTR_TASK_ID" >> '${f("fanin")}'`] },
        p3: countingTask(f("fanin")),
        join: countingTask(f("fanin"), ["p1", "p2", "p3"]),
      },
    }),
  }));
  const runs = await Promise.all([c.run("linear"), c.run("fanout"), c.run("fanin")]);
  const [linear, fanout, fanin] = await Promise.all(runs.map((r) => c.waitForRun(r)));
  assert.equal(linear?.run.status, "COMPLETED");
  assert.equal(fanout?.run.status, "COMPLETED");
  assert.equal(fanin?.run.status, "COMPLETED");
  assert.deepEqual(readLines(file("linear")), ["a", "b", "c"]);
  assert.deepEqual(counts(file("fanout")), { root: 1, x: 1, y: 1, z: 1 });
  assert.equal(readLines(file("fanout"))[0], "root");
  assert.deepEqual(counts(file("fanin")), { p1: 1, p2: 1, p3: 1, join: 1 });
  assert.equal(readLines(file("fanin")).at(-1), "join");
  for (const r of [linear, fanout, fanin]) {
    assert.ok(r !== undefined);
    assert.ok(
      r.tasks.every((t) => t.status === "COMPLETED" && t.attempt === 1 && t.exitCode === 0),
      JSON.stringify(r.tasks),
    );
    // The run's start is the agent's (its confirmation carries it and reaches the principal after
    // the tasks may have finished): no task starts before its run, none ends after it.
    const at = (t: string | null): number => Date.parse(t ?? "");
    for (const t of r.tasks) {
      const times = [r.run.startedAt, t.startedAt, t.finishedAt, r.run.finishedAt].map(at);
      assert.deepEqual(
        times,
        [...times].sort((x, y) => x - y),
        `${t.taskId}: ${JSON.stringify([r.run.startedAt, t.startedAt, t.finishedAt, r.run.finishedAt])}`,
      );
    }
  }
});

test("diamond with a failure: dependents SKIPPED, the independent branch finishes, run FAILED", async () => {
  const { c, file } = await setup((f) => ({
    "diamond.yml": workflowYaml({
      tasks: {
        top: countingTask(f("d")),
        left: countingTask(f("d"), ["top"], 7),
        right: countingTask(f("d"), ["top"]),
        bottom: countingTask(f("d"), ["left", "right"]),
        after: countingTask(f("d"), ["bottom"]),
        // an independent branch, slower than the failure
        side: { cmd: "sh", args: ["-c", `sleep 1; echo side >> '${f("d")}'`] },
        side2: countingTask(f("d"), ["side"]),
      },
    }),
  }));
  const r = await c.waitForRun(await c.run("diamond"));
  assert.equal(r.run.status, "FAILED");
  assert.match(r.run.message ?? "", /left/);
  assert.deepEqual(taskStates(r), {
    top: "COMPLETED",
    left: "FAILED",
    right: "COMPLETED",
    bottom: "SKIPPED",
    after: "SKIPPED",
    side: "COMPLETED",
    side2: "COMPLETED",
  });
  const left = r.tasks.find((t) => t.taskId === "left");
  assert.equal(left?.exitCode, 7);
  assert.equal(left?.reason, "exit_code");
  assert.equal(r.tasks.find((t) => t.taskId === "bottom")?.reason, "dependency_failed");
  assert.deepEqual(counts(file("d")), { top: 1, left: 1, right: 1, side: 1, side2: 1 });
});

test("task environment: run context, params and task env reach the process; output is stored per stream", async () => {
  const { c } = await setup(() => ({
    "env.yml": workflowYaml({
      tasks: {
        show: {
          cmd: "sh",
          args: [
            "-c",
            'echo "$CDKTR_RUN_ID $CDKTR_WORKFLOW_ID $CDKTR_TASK_ID $CDKTR_TRIGGER_SOURCE $CDKTR_PARAM_BATCHSIZE $GREETING"; echo oops >&2',
          ],
          extra: ["env: {GREETING: hi}"],
        },
      },
      header: ["params:", "  batchSize: {type: number, default: 3}"],
    }),
  }));
  const runId = await c.run("env", { batchSize: 42 });
  const r = await c.waitForRun(runId);
  assert.equal(r.run.status, "COMPLETED");
  const lines = await c.logs(runId, "show");
  const out = lines.filter((l) => l.stream === "stdout");
  const err = lines.filter((l) => l.stream === "stderr");
  assert.deepEqual(
    out.map((l) => l.line),
    [`${runId} env show test 42 hi`],
  );
  assert.equal(out[0]?.level, "info");
  assert.deepEqual(
    err.map((l) => [l.line, l.level]),
    [["oops", "error"]],
  );
  assert.ok(lines.some((l) => l.stream === "system" && l.line.includes("starting")));
  // seq is per task, from 1, without gaps
  assert.deepEqual(
    lines.map((l) => l.seq).sort((a, b) => a - b),
    lines.map((_, i) => i + 1),
  );
});

test("retries: each attempt is reported; the run completes when a later attempt succeeds", async () => {
  const { c, file } = await setup((f) => ({
    // fails twice, then succeeds (counts attempts in the file)
    "flaky.yml": workflowYaml({
      tasks: {
        flaky: {
          cmd: "sh",
          args: ["-c", `echo x >> '${f("flaky")}'; [ $(wc -l < '${f("flaky")}') -ge 3 ]`],
          extra: ["retries: {count: 3, backoff: 100ms, factor: 2}"],
        },
      },
    }),
  }));
  const runId = await c.run("flaky");
  const r = await c.waitForRun(runId);
  assert.equal(r.run.status, "COMPLETED");
  assert.equal(readLines(file("flaky")).length, 3);
  const t = r.tasks[0];
  assert.equal(t?.status, "COMPLETED");
  assert.equal(t?.attempt, 3);
  const system = (await c.logs(runId, "flaky")).filter((l) => l.stream === "system").map((l) => l.line);
  assert.equal(system.filter((l) => /^attempt \d\/4: starting/.test(l)).length, 3);
  assert.equal(system.filter((l) => l.startsWith("retrying in")).length, 2);
});

test("CDKTR_AGENT_MAX_CONCURRENCY: never more runs at once than slots; failed and completed runs both free their slot", async () => {
  const c = await prepareCluster();
  const trace = join(c.home, "trace");
  c.writeWorkflows({
    // odd runs exit 1; the `missing` workflow fails at spawn: every kind of end frees the slot
    "slot.yml": workflowYaml({
      tasks: {
        work: {
          cmd: "sh",
          args: [
            "-c",
            `echo "start $CDKTR_RUN_ID" >> '${trace}'; sleep 0.6; echo "end $CDKTR_RUN_ID" >> '${trace}'; exit $CDKTR_PARAM_CODE`,
          ],
        },
      },
      header: ["params:", "  code: {type: number, default: 0}"],
    }),
    "missing.yml": workflowYaml({ tasks: { nope: { cmd: "/no/such/cdktr-binary" } } }),
  });
  await c.start();
  await startFastAgent(c, { env: { CDKTR_AGENT_MAX_CONCURRENCY: "2" } });
  const runIds: string[] = [];
  for (const code of [0, 1, 0, 1, 0, 1]) runIds.push(await c.run("slot", { code }));
  const missing = [await c.run("missing"), await c.run("missing")];
  const results = await Promise.all([...runIds, ...missing].map((id) => c.waitForRun(id, 60_000)));
  assert.deepEqual(
    results.map((r) => r.run.status),
    ["COMPLETED", "FAILED", "COMPLETED", "FAILED", "COMPLETED", "FAILED", "FAILED", "FAILED"],
  );
  // At most two runs between their start and end lines at any point of the trace.
  let running = 0;
  let most = 0;
  const lines = readLines(trace);
  for (const l of lines) {
    running += l.startsWith("start ") ? 1 : -1;
    most = Math.max(most, running);
  }
  assert.equal(lines.length, 12, lines.join("\n"));
  assert.ok(most <= 2, `${most} runs at once with 2 slots:\n${lines.join("\n")}`);
});

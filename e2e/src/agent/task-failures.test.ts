/**
 * Timeout, missing executable, cancel and `!UvPython`, through a real principal and agent.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cleanup,
  groupAlive,
  taskStates,
  waitFor,
  workflowYaml,
  type PrincipalFixture,
  type TaskSpec,
} from "@cdktr/test-utils";
import { prepareCluster, readLines, startFastAgent } from "./helpers.js";

afterEach(cleanup);

async function setup(build: (home: string) => Record<string, string>): Promise<PrincipalFixture> {
  const c = await prepareCluster();
  c.writeWorkflows(build(c.home));
  await c.start();
  await startFastAgent(c);
  return c;
}

/** A stand-in `uv` in `home` that records its argv and working directory; returns its path. */
function fakeUv(home: string): string {
  const path = join(home, "fake-uv");
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$@" > '${home}/uv-argv'\npwd > '${home}/uv-cwd'\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A `!UvPython` task running `script` with `packages` (YAML list) through the `uv` at `uv`, in `home`. */
function uvJob(home: string, uv: string, script: string, packages: string): TaskSpec {
  return {
    config: [
      "!UvPython",
      `script_path: ${script}`,
      `packages: ${packages}`,
      `uv_path: ${JSON.stringify(uv)}`,
      `working_directory: ${JSON.stringify(home)}`,
    ],
  };
}

test("timeout: the task's whole process group is killed and the task FAILED with reason timeout", async () => {
  const c = await setup((home) => ({
    "slow.yml": workflowYaml({
      tasks: {
        slow: { cmd: "sh", args: ["-c", `sleep 300 & echo $! > '${home}/bg.pid'; sleep 300`], extra: ["timeout: 1s"] },
        next: { cmd: "true", depends: ["slow"] },
      },
    }),
  }));
  const r = await c.waitForRun(await c.run("slow"));
  assert.equal(r.run.status, "FAILED");
  const slow = r.tasks.find((t) => t.taskId === "slow");
  assert.equal(slow?.status, "FAILED");
  assert.equal(slow?.reason, "timeout");
  assert.match(slow?.message ?? "", /timed out after 1000 ms/);
  assert.equal(taskStates(r).next, "SKIPPED");
  const bg = Number(readFileSync(join(c.home, "bg.pid"), "utf8").trim());
  await waitFor(
    () => {
      try {
        process.kill(bg, 0);
        return false;
      } catch {
        return true;
      }
    },
    { timeoutMs: 5000, what: "background sleep killed" },
  );
});

test("missing executable: FAILED with a message naming the command", async () => {
  const c = await setup(() => ({
    "missing.yml": workflowYaml({ tasks: { nope: { cmd: "no-such-command-cdktr", args: ["x"] } } }),
  }));
  const r = await c.waitForRun(await c.run("missing"));
  assert.equal(r.run.status, "FAILED");
  const t = r.tasks[0];
  assert.equal(t?.status, "FAILED");
  assert.equal(t?.reason, "spawn_error");
  assert.match(t?.message ?? "", /command not found: `no-such-command-cdktr`/);
});

test("cancel: running processes are killed, pending tasks and the run end CANCELLED", async () => {
  const c = await setup((home) => ({
    "long.yml": workflowYaml({
      tasks: {
        long: { cmd: "sh", args: ["-c", `echo $$ > '${home}/long.pid'; sleep 300 & sleep 300`] },
        after: { cmd: "sh", args: ["-c", `echo ran >> '${home}/after.count'`], depends: ["long"] },
      },
    }),
  }));
  const runId = await c.run("long");
  const pid = await waitFor(() => readLines(join(c.home, "long.pid"))[0], { timeoutMs: 15_000, what: "task started" });
  const pgid = Number(pid);
  assert.equal(groupAlive(pgid), true);
  const reply = await c.client.cancelRun(runId);
  assert.equal(reply.cancelled, true);
  const r = await c.waitForRun(runId);
  assert.equal(r.run.status, "CANCELLED");
  assert.deepEqual(taskStates(r), { long: "CANCELLED", after: "CANCELLED" });
  assert.equal(r.tasks.find((t) => t.taskId === "long")?.reason, "cancelled");
  await waitFor(() => !groupAlive(pgid), { timeoutMs: 5000, what: "process group killed" });
  assert.deepEqual(readLines(join(c.home, "after.count")), []);
});

test("cancel at once after the trigger (the run ASSIGNED, maybe started by its agent already): CANCELLED, and a task that started is recorded CANCELLED with its logs, never missing", async (t) => {
  const c = await setup((home) => ({
    "quick.yml": workflowYaml({
      tasks: {
        long: { cmd: "sh", args: ["-c", `echo "$CDKTR_RUN_ID $$" >> '${home}/pids'; echo started; exec sleep 300`] },
      },
    }),
  }));
  const pids = (): string[][] => readLines(join(c.home, "pids")).map((l) => l.split(" "));
  let started = 0;
  const seen: string[] = [];
  for (let i = 0; i < 24; i++) {
    const runId = await c.run("quick");
    // Stagger the cancel across the dispatch window: before, during and after the agent's start.
    if (i % 8 > 0) await new Promise((r) => setTimeout(r, i % 8));
    const reply = await c.client.cancelRun(runId);
    assert.equal(reply.cancelled, true);
    seen.push(reply.status);
    const r = await c.waitForRun(runId);
    assert.equal(r.run.status, "CANCELLED", JSON.stringify(r.run));
    const task = r.tasks.find((t) => t.taskId === "long");
    if (pids().some(([id]) => id === runId)) {
      started++;
      assert.equal(task?.status, "CANCELLED", `a task that started is recorded: ${JSON.stringify(r.tasks)}`);
      const lines = await waitFor(
        async () => {
          const l = (await c.logs(runId, "long")).map((x) => x.line);
          return l.includes("started") ? l : undefined;
        },
        { timeoutMs: 5000, what: "the started task's output stored" },
      );
      assert.ok(lines.includes("started"));
    } else {
      assert.ok(task === undefined || task.status !== "RUNNING", JSON.stringify(task));
    }
  }
  for (const [, pid] of pids()) {
    await waitFor(() => !groupAlive(Number(pid)), { timeoutMs: 5000, what: `task group ${pid} killed` });
  }
  t.diagnostic(`statuses at the cancel: ${seen.join(" ")}; ${started} of 24 started`);
  assert.ok(started > 0, "at least one cancel came after the agent started the task");
});

test("!UvPython: the uv binary gets exactly `run --with <pkg>... <script>` in the working directory", async () => {
  const c = await setup((home) => {
    const uv = fakeUv(home);
    return {
      "py.yml": workflowYaml({
        name: "Py",
        tasks: {
          job: uvJob(home, uv, "scripts/job.py", "[pandas, 'requests>=2']"),
          proj: {
            depends: ["job"],
            config: [
              "!UvPython",
              "script_path: main.py",
              "packages: [ignored]",
              "is_uv_project: true",
              `uv_path: ${JSON.stringify(uv)}`,
            ],
          },
        },
      }),
    };
  });
  const runId = await c.run("py");
  const r = await c.waitForRun(runId);
  assert.equal(r.run.status, "COMPLETED", JSON.stringify(r));
  // the second (uv project) task ran last and overwrote the record; the first is in its system log
  assert.deepEqual(readLines(join(c.home, "uv-argv")), ["run", "main.py"]);
  const logs = (await c.logs(runId, "job")).filter((l) => l.stream === "system").map((l) => l.line);
  assert.ok(
    logs.some((l) =>
      l.endsWith(
        `${JSON.stringify(join(c.home, "fake-uv"))} "run" "--with" "pandas" "--with" "requests>=2" "scripts/job.py"`,
      ),
    ),
    logs.join("\n"),
  );
});

test("!UvPython with the plain argv recorded, and with uv absent the failure names it", async () => {
  const c = await setup((home) => {
    const uv = fakeUv(home);
    return {
      "py.yml": workflowYaml({
        name: "Py",
        tasks: {
          job: uvJob(home, uv, "job.py", "[pandas, numpy]"),
        },
      }),
      "nouv.yml": workflowYaml({
        name: "NoUv",
        tasks: { job: { config: ["!UvPython", "script_path: job.py", "uv_path: uv-not-installed-here"] } },
      }),
    };
  });
  const ok = await c.waitForRun(await c.run("py"));
  assert.equal(ok.run.status, "COMPLETED");
  assert.deepEqual(readLines(join(c.home, "uv-argv")), ["run", "--with", "pandas", "--with", "numpy", "job.py"]);
  assert.deepEqual(readLines(join(c.home, "uv-cwd")), [c.home]);
  const bad = await c.waitForRun(await c.run("nouv"));
  assert.equal(bad.run.status, "FAILED");
  assert.equal(bad.tasks[0]?.reason, "spawn_error");
  assert.match(
    bad.tasks[0]?.message ?? "",
    /uv not found: `uv-not-installed-here` is not on PATH; install uv or set uv_path/,
  );
});

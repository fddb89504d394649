import { after, test } from "node:test";
import assert from "node:assert/strict";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TaskDefinition } from "@cdktr/protocol";
import { TaskCommandError } from "../errors.js";
import { buildTaskCommand, buildTaskEnv, paramEnvName } from "./task-command.js";

after(removeTempDirs);

const run = { runId: "r1", workflowId: "wf.a", source: "cli", params: { "batch-size": 10, dry: true, région: "eu" } };

function task(config: TaskDefinition["config"], extra: Partial<TaskDefinition> = {}): TaskDefinition {
  return {
    id: "t1",
    name: "t1",
    description: null,
    depends: [],
    config,
    env: {},
    workingDirectory: null,
    timeoutMs: null,
    retries: { count: 0, backoffMs: 0, factor: 1 },
    ...extra,
  };
}

test("parameter env names are upper-cased with non-alphanumerics replaced", () => {
  assert.equal(paramEnvName("batch-size"), "CDKTR_PARAM_BATCH_SIZE");
  assert.equal(paramEnvName("a.b c"), "CDKTR_PARAM_A_B_C");
});

test("task env = agent env + task env + run context, later entries win", () => {
  const env = buildTaskEnv(
    { PATH: "/bin", KEEP: "1", CDKTR_RUN_ID: "spoofed" },
    { id: "t1", env: { KEEP: "2", X: "y" } },
    run,
  );
  assert.equal(env.PATH, "/bin");
  assert.equal(env.KEEP, "2");
  assert.equal(env.X, "y");
  assert.equal(env.CDKTR_RUN_ID, "r1");
  assert.equal(env.CDKTR_WORKFLOW_ID, "wf.a");
  assert.equal(env.CDKTR_TASK_ID, "t1");
  assert.equal(env.CDKTR_TRIGGER_SOURCE, "cli");
  assert.equal(env.CDKTR_PARAM_BATCH_SIZE, "10");
  assert.equal(env.CDKTR_PARAM_DRY, "true");
  assert.equal(env.CDKTR_PARAM_R_GION, "eu");
});

test("subprocess argv is passed through untouched (no shell)", () => {
  const cmd = buildTaskCommand(
    task({ type: "subprocess", cmd: "echo", args: ["$HOME", "a b", ";rm"] }, { workingDirectory: "/tmp" }),
    run,
    {},
  );
  assert.equal(cmd.cmd, "echo");
  assert.deepEqual(cmd.args, ["$HOME", "a b", ";rm"]);
  assert.equal(cmd.cwd, "/tmp");
});

test("uv command: --with per package, none for a uv project, cwd = working_directory", () => {
  const dir = makeTempDir("cdktr-uv-");
  const uv = join(dir, "uv");
  writeFileSync(uv, "#!/bin/sh\n");
  chmodSync(uv, 0o755);
  const base = {
    type: "uvPython" as const,
    scriptPath: "main.py",
    packages: ["pandas", "requests==2.0"],
    workingDirectory: dir,
  };
  const c1 = buildTaskCommand(task({ ...base, isUvProject: false, uvPath: uv }), run, { PATH: "/nonexistent" });
  assert.equal(c1.cmd, uv);
  assert.deepEqual(c1.args, ["run", "--with", "pandas", "--with", "requests==2.0", "main.py"]);
  assert.equal(c1.cwd, dir);
  const c2 = buildTaskCommand(task({ ...base, isUvProject: true, uvPath: "uv" }), run, { PATH: `/nonexistent:${dir}` });
  assert.equal(c2.cmd, uv);
  assert.deepEqual(c2.args, ["run", "main.py"]);
});

test("missing uv fails with a message naming it", () => {
  const base = {
    type: "uvPython" as const,
    scriptPath: "main.py",
    packages: [],
    workingDirectory: null,
    isUvProject: false,
  };
  assert.throws(
    () => buildTaskCommand(task({ ...base, uvPath: "uv" }), run, { PATH: "/nonexistent" }),
    (e: unknown) =>
      e instanceof TaskCommandError && /uv not found: `uv` is not on PATH; install uv or set uv_path/.test(e.message),
  );
  assert.throws(
    () => buildTaskCommand(task({ ...base, uvPath: "/nope/bin/uv" }), run, {}),
    (e: unknown) => e instanceof TaskCommandError && e.message.includes("/nope/bin/uv"),
  );
});

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TaskDefinition } from "@cdktr/protocol";
import { TaskCommandError } from "../errors.js";
import {
  TASK_BASE_ENV,
  buildTaskCommand,
  buildTaskEnv,
  matchesEnvPattern,
  paramEnvName,
  type TaskRunContext,
} from "./task-command.js";

after(removeTempDirs);

const run: TaskRunContext = {
  runId: "r1",
  workflowId: "wf.a",
  source: "cli",
  params: { "batch-size": 10, dry: true, région: "eu" },
  paramDefs: {},
  scheduledFor: null,
};

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

test("task env = clean agent env + task env + run context, later entries win", () => {
  const env = buildTaskEnv(
    { env: { PATH: "/bin", KEEP: "1", CDKTR_RUN_ID: "spoofed" } },
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

/** An agent environment with every base variable, secrets, and the agent's own settings. */
const AGENT_ENV = {
  PATH: "/usr/bin:/bin",
  HOME: "/home/agent",
  USER: "agent",
  LOGNAME: "agent",
  SHELL: "/bin/bash",
  LANG: "en_GB.UTF-8",
  LC_ALL: "C.UTF-8",
  LC_TIME: "de_DE.UTF-8",
  TZ: "Europe/London",
  TMPDIR: "/var/tmp",
  HTTP_PROXY: "http://proxy:3128",
  http_proxy: "http://proxy:3128",
  HTTPS_PROXY: "http://proxy:3129",
  https_proxy: "http://proxy:3129",
  NO_PROXY: "localhost",
  no_proxy: "localhost,127.0.0.1",
  SSL_CERT_FILE: "/etc/ssl/ca.pem",
  SSL_CERT_DIR: "/etc/ssl/certs",
  NODE_EXTRA_CA_CERTS: "/etc/ssl/extra.pem",
  SECRET: "x",
  AWS_REGION: "eu-west-2",
  AWS_SECRET_ACCESS_KEY: "aws-secret",
  AWSOME: "no",
  NODE_OPTIONS: "--inspect",
  LD_PRELOAD: "/tmp/evil.so",
  path: "/lower/case",
  Http_Proxy: "http://mixed",
  LCX: "not a locale",
  CDKTR_KEY_FILE: "/home/agent/.cdktr/keys/agent.json",
  CDKTR_KEYS_DIR: "/home/agent/.cdktr/keys",
  CDKTR_AGENT_ID: "agent-1",
  CDKTR_PRINCIPAL_PORT: "5561",
  CDKTR_PRINCIPAL_HOST: "10.0.0.1",
  CDKTR_LOG_LEVEL: "debug",
  UNSET: undefined,
};

const RUN_VARS = {
  CDKTR_PARAM_BATCH_SIZE: "10",
  CDKTR_PARAM_DRY: "true",
  CDKTR_PARAM_R_GION: "eu",
  CDKTR_RUN_ID: "r1",
  CDKTR_WORKFLOW_ID: "wf.a",
  CDKTR_TASK_ID: "t1",
  CDKTR_TRIGGER_SOURCE: "cli",
};

/** What every task gets of {@link AGENT_ENV}: its base variables. */
const BASE: Record<string, string> = {};
for (const [k, v] of Object.entries(AGENT_ENV)) {
  if (v !== undefined && (TASK_BASE_ENV.includes(k) || k.startsWith("LC_"))) BASE[k] = v;
}

test("by default a task gets PATH, HOME, user, shell, locale, TZ, TMPDIR, proxies (both cases) and CA variables, nothing else of the agent", () => {
  const env = buildTaskEnv({ env: AGENT_ENV }, { id: "t1", env: {} }, run);
  for (const leak of ["SECRET", "AWS_REGION", "NODE_OPTIONS", "LD_PRELOAD", "path", "Http_Proxy", "LCX"]) {
    assert.equal(env[leak], undefined, leak);
  }
  assert.equal(Object.keys(BASE).length, 19, "every base variable of the fixture is set");
  assert.deepEqual(env, { ...BASE, ...RUN_VARS });
});

test("no CDKTR_* setting of the agent reaches a task, only the run variables", () => {
  const env = buildTaskEnv(
    { env: AGENT_ENV, inheritEnv: ["C*", "CD*"] },
    { id: "t1", env: {}, inheritEnv: ["CDK*"] },
    run,
  );
  assert.deepEqual(
    Object.keys(env)
      .filter((k) => k.startsWith("CDKTR_"))
      .sort(),
    Object.keys(RUN_VARS).sort(),
  );
});

test("the agent's allow-list and the task's inherit_env add names and prefixes (case-sensitive)", () => {
  const agentOnly = buildTaskEnv({ env: AGENT_ENV, inheritEnv: ["SECRET"] }, { id: "t1", env: {} }, run);
  assert.equal(agentOnly.SECRET, "x");
  assert.equal(agentOnly.AWS_REGION, undefined);
  const both = buildTaskEnv(
    { env: AGENT_ENV, inheritEnv: ["SECRET"] },
    { id: "t1", env: {}, inheritEnv: ["AWS_*", "secret", "NOT_SET"] },
    run,
  );
  assert.deepEqual(both, {
    ...BASE,
    SECRET: "x",
    AWS_REGION: "eu-west-2",
    AWS_SECRET_ACCESS_KEY: "aws-secret",
    ...RUN_VARS,
  });
  const taskOnly = buildTaskEnv({ env: AGENT_ENV }, { id: "t1", env: {}, inheritEnv: ["SECRET"] }, run);
  assert.equal(taskOnly.SECRET, "x");
});

test("variables from the agent's .env reach a task only through an allow-list, even base ones", () => {
  const source = {
    env: { ...AGENT_ENV, DB_URL: "postgres://u:p@db/x" },
    fromDotEnv: new Set(["HTTPS_PROXY", "https_proxy", "DB_URL"]),
  };
  const plain = buildTaskEnv(source, { id: "t1", env: {} }, run);
  assert.equal(plain.HTTPS_PROXY, undefined);
  assert.equal(plain.https_proxy, undefined);
  assert.equal(plain.DB_URL, undefined);
  assert.equal(plain.HTTP_PROXY, "http://proxy:3128", "a base variable set outside .env still passes");
  const allowed = buildTaskEnv(
    { ...source, inheritEnv: ["HTTPS_PROXY"] },
    { id: "t1", env: {}, inheritEnv: ["DB_*"] },
    run,
  );
  assert.equal(allowed.HTTPS_PROXY, "http://proxy:3129");
  assert.equal(allowed.https_proxy, undefined);
  assert.equal(allowed.DB_URL, "postgres://u:p@db/x");
});

test("the task's env overrides inherited variables; the run variables override the task's env", () => {
  const env = buildTaskEnv(
    { env: AGENT_ENV },
    {
      id: "t1",
      env: {
        PATH: "/opt/bin",
        TZ: "UTC",
        CDKTR_RUN_ID: "forged",
        CDKTR_TASK_ID: "other",
        CDKTR_PARAM_DRY: "false",
        CDKTR_PARAM_EXTRA: "kept",
        CDKTR_PRINCIPAL_HOST: "set by the workflow",
      },
    },
    run,
  );
  assert.equal(env.PATH, "/opt/bin");
  assert.equal(env.TZ, "UTC");
  assert.equal(env.CDKTR_RUN_ID, "r1");
  assert.equal(env.CDKTR_TASK_ID, "t1");
  assert.equal(env.CDKTR_PARAM_DRY, "true");
  assert.equal(env.CDKTR_PARAM_EXTRA, "kept");
  assert.equal(env.CDKTR_PRINCIPAL_HOST, "set by the workflow");
});

test("env patterns: exact names, or prefixes ending in *", () => {
  assert.equal(matchesEnvPattern("LC_ALL", ["LC_*"]), true);
  assert.equal(matchesEnvPattern("LC_", ["LC_*"]), true);
  assert.equal(matchesEnvPattern("LCX", ["LC_*"]), false);
  assert.equal(matchesEnvPattern("AWS_REGION", ["AWS_REGION"]), true);
  assert.equal(matchesEnvPattern("AWS_REGION_2", ["AWS_REGION"]), false);
  assert.equal(matchesEnvPattern("aws_region", ["AWS_*"]), false);
  assert.equal(matchesEnvPattern("X", []), false);
});

test("uv is looked up on the task's PATH, not on the agent's own variables", () => {
  const dir = makeTempDir("cdktr-uv-");
  const uv = join(dir, "uv");
  writeFileSync(uv, "#!/bin/sh\n");
  chmodSync(uv, 0o755);
  const uvTask = task({
    type: "uvPython",
    scriptPath: "main.py",
    packages: [],
    workingDirectory: null,
    isUvProject: true,
    uvPath: "uv",
  });
  const cmd = buildTaskCommand({ ...uvTask, env: { PATH: dir } }, run, { env: { PATH: "/nonexistent" } });
  assert.equal(cmd.cmd, uv);
  assert.equal(cmd.env.PATH, dir);
});

test("subprocess argv is passed through untouched (no shell)", () => {
  const cmd = buildTaskCommand(
    task({ type: "subprocess", cmd: "echo", args: ["$HOME", "a b", ";rm"] }, { workingDirectory: "/tmp" }),
    run,
    { env: {} },
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
  const c1 = buildTaskCommand(task({ ...base, isUvProject: false, uvPath: uv }), run, {
    env: { PATH: "/nonexistent" },
  });
  assert.equal(c1.cmd, uv);
  assert.deepEqual(c1.args, ["run", "--with", "pandas", "--with", "requests==2.0", "main.py"]);
  assert.equal(c1.cwd, dir);
  const c2 = buildTaskCommand(task({ ...base, isUvProject: true, uvPath: "uv" }), run, {
    env: { PATH: `/nonexistent:${dir}` },
  });
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
    () => buildTaskCommand(task({ ...base, uvPath: "uv" }), run, { env: { PATH: "/nonexistent" } }),
    (e: unknown) =>
      e instanceof TaskCommandError && /uv not found: `uv` is not on PATH; install uv or set uv_path/.test(e.message),
  );
  assert.throws(
    () => buildTaskCommand(task({ ...base, uvPath: "/nope/bin/uv" }), run, { env: {} }),
    (e: unknown) => e instanceof TaskCommandError && e.message.includes("/nope/bin/uv"),
  );
});

/** A run of a workflow declaring `who`, `n`, `dry`, `limit` (default 500) and an optional `note`. */
const tplRun: TaskRunContext = {
  runId: "r-42",
  workflowId: "etl.daily",
  source: "webhook",
  params: { who: "world", n: 3, dry: true },
  paramDefs: {
    who: { type: "string", required: true, description: null },
    n: { type: "number", required: true, description: null },
    dry: { type: "boolean", required: false, default: false, description: null },
    limit: { type: "number", required: false, default: 500, description: null },
    note: { type: "string", required: false, description: null },
  },
  scheduledFor: "2026-11-28T06:30:00.000Z",
};

function argv(args: string[], ctx: TaskRunContext = tplRun): string[] {
  return buildTaskCommand(task({ type: "subprocess", cmd: "tool", args }), ctx, { env: {} }).args;
}

test("templates in args expand to the run's params and values, each inside its own argument", () => {
  assert.deepEqual(
    argv([
      "--who={{ params.who }}",
      "{{params.who}}",
      "{{ run.id }}:{{ run.workflow_id }}:{{ run.source }}:{{ run.scheduled_for }}",
      "{{ task.id }}",
    ]),
    ["--who=world", "world", "r-42:etl.daily:webhook:2026-11-28T06:30:00.000Z", "t1"],
  );
  assert.deepEqual(argv(["[{{ run.scheduled_for }}]"], { ...tplRun, scheduledFor: null }), ["[]"]);
});

test("a param with spaces, quotes, `;` or `$(...)` stays one literal argument", () => {
  const who = `x; rm -rf /tmp/should-not-exist "quoted" $(id) 'single' \`id\``;
  assert.deepEqual(argv(["--name", "{{ params.who }}", "end"], { ...tplRun, params: { ...tplRun.params, who } }), [
    "--name",
    who,
    "end",
  ]);
});

test("numbers and booleans render as JSON text; defaults fill what the run lacks; an optional param without a value is empty", () => {
  assert.deepEqual(argv(["{{ params.n }}", "{{ params.dry }}", "{{ params.limit }}", "[{{ params.note }}]"]), [
    "3",
    "true",
    "500",
    "[]",
  ]);
  const env = buildTaskCommand(task({ type: "subprocess", cmd: "tool", args: [] }), tplRun, { env: {} }).env;
  assert.equal(env.CDKTR_PARAM_LIMIT, "500", "the default reaches the environment too");
  assert.equal(env.CDKTR_PARAM_NOTE, undefined);
});

test("a substituted value is never expanded again", () => {
  const params = { ...tplRun.params, who: '{{ run.id }} {{ "{{" }}' };
  assert.deepEqual(argv(["{{ params.who }}"], { ...tplRun, params }), ['{{ run.id }} {{ "{{" }}']);
});

test('{{ "{{" }} writes a literal `{{` (Go and Jinja templates in arguments); a lone `}}` stays', () => {
  assert.deepEqual(argv(['--set=x={{ "{{" }} .Values.y }}', "--set=y={{'{{'}}.Values.z}}", "a }} b"]), [
    "--set=x={{ .Values.y }}",
    "--set=y={{.Values.z}}",
    "a }} b",
  ]);
});

test("upstream.* is empty when the run was not started by another run's outcome", () => {
  assert.deepEqual(argv(["[{{ upstream.run_id }}|{{ upstream.workflow_id }}|{{ upstream.status }}]"]), ["[||]"]);
  const upstream = { runId: "r-7", workflowId: "etl.extract", status: "COMPLETED" as const };
  assert.deepEqual(
    argv(["{{ upstream.run_id }} {{ upstream.workflow_id }} {{ upstream.status }}"], { ...tplRun, upstream }),
    ["r-7 etl.extract COMPLETED"],
  );
});

test("env values and working directories are templated; cmd and env names are not", () => {
  const cmd = buildTaskCommand(
    task(
      { type: "subprocess", cmd: "{{ params.who }}", args: [] },
      {
        workingDirectory: "/srv/{{ run.workflow_id }}/{{ params.who }}",
        env: { DAY: "{{ params.who }}-{{ params.n }}", "K_{{ params.who }}": "v", CDKTR_RUN_ID: "{{ params.who }}" },
      },
    ),
    tplRun,
    { env: {} },
  );
  assert.equal(cmd.cmd, "{{ params.who }}");
  assert.equal(cmd.cwd, "/srv/etl.daily/world");
  assert.equal(cmd.env.DAY, "world-3");
  assert.equal(cmd.env["K_{{ params.who }}"], "v");
  assert.equal(cmd.env.CDKTR_RUN_ID, "r-42", "the run variables still win");

  const dir = makeTempDir("cdktr-uv-");
  const uv = join(dir, "uv");
  writeFileSync(uv, "#!/bin/sh\n");
  chmodSync(uv, 0o755);
  const uvCmd = (workingDirectory: string | null) =>
    buildTaskCommand(
      task(
        { type: "uvPython", scriptPath: "main.py", packages: [], isUvProject: true, workingDirectory, uvPath: uv },
        { workingDirectory: "/task/{{ task.id }}" },
      ),
      tplRun,
      { env: {} },
    ).cwd;
  assert.equal(uvCmd("/data/{{ params.who }}"), "/data/world");
  assert.equal(uvCmd(null), "/task/t1");
});

test("a template the loader would refuse (from a principal that does not check them) fails the command, naming the task and field", () => {
  const bad =
    (args: string[], env: Record<string, string> = {}) =>
    () =>
      buildTaskCommand(task({ type: "subprocess", cmd: "tool", args }, { env }), tplRun, { env: {} });
  assert.throws(
    bad(["ok", "{{ params.nope }}"]),
    (e: unknown) =>
      e instanceof TaskCommandError &&
      e.code === "TEMPLATE_INVALID" &&
      e.message.startsWith(
        "task `t1`: config.args[1]: unknown name `params.nope` in `{{ params.nope }}`; valid names: params.who,",
      ),
  );
  assert.throws(
    bad([], { X: "{{ run.id" }),
    (e: unknown) => e instanceof TaskCommandError && e.message.startsWith("task `t1`: env.X: `{{` is not closed"),
  );
  assert.throws(
    bad(["--set={{ .Values.y }}"]),
    (e: unknown) => e instanceof TaskCommandError && e.message.includes('write `{{ "{{" }}`'),
  );
});

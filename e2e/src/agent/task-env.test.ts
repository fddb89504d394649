/**
 * Task environment hygiene with a real principal and a real agent: a task runs `env` (the
 * program, not a shell, so nothing is added) and the run's stored log lines are its whole
 * environment. The agent is started with a secret, a key file and a `.env`; only the clean base,
 * the run variables and what an allow-list names reach the task.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, workflowYaml, type PrincipalFixture } from "@cdktr/test-utils";
import { prepareCluster, startFastAgent } from "./helpers.js";

afterEach(cleanup);

/** What the agent is started with on top of the fixture's settings (and a real key file of its own). */
const AGENT_EXTRA_ENV = {
  SECRET: "x",
  TZ: "Europe/London",
  LC_ALL: "C.UTF-8",
  https_proxy: "http://proxy.test:3128",
  NODE_EXTRA_CA_CERTS: "/some/ca.pem",
  NODE_OPTIONS: "--max-old-space-size=256",
};

/** The agent's `.env`: a secret, and a base variable that is not set in its environment. */
const DOT_ENV = "DOTENV_SECRET=y\nHTTP_PROXY=http://from-dotenv.test:1\n";

/** A principal serving `workflows` and an agent started in a directory holding {@link DOT_ENV}. */
async function cluster(
  workflows: Record<string, string>,
  agentEnv: Record<string, string> = {},
): Promise<PrincipalFixture> {
  const c = await prepareCluster(workflows);
  await c.start();
  // The agent's own key, given the way a remote agent gets it: a file named by CDKTR_KEY_FILE.
  const { path: keyFile } = await c.createKey("env-agent", "agent");
  const cwd = join(c.home, "agent-cwd");
  mkdirSync(cwd);
  writeFileSync(join(cwd, ".env"), DOT_ENV);
  await startFastAgent(c, {
    cwd,
    env: { ...AGENT_EXTRA_ENV, CDKTR_KEY_FILE: keyFile, CDKTR_KEYS_DIR: c.keysDir, ...agentEnv },
  });
  return c;
}

/** Run `workflowId` to completion and return each task's environment, read from its stored log lines. */
async function taskEnvs(c: PrincipalFixture, workflowId: string): Promise<Record<string, Record<string, string>>> {
  const runId = await c.run(workflowId);
  const r = await c.waitForRun(runId);
  assert.equal(r.run.status, "COMPLETED", JSON.stringify(r));
  const out: Record<string, Record<string, string>> = {};
  for (const l of await c.logs(runId)) {
    if (l.stream !== "stdout") continue;
    const eq = l.line.indexOf("=");
    assert.ok(eq > 0, `an env line: ${l.line}`);
    out[l.taskId] ??= {};
    (out[l.taskId] as Record<string, string>)[l.line.slice(0, eq)] = l.line.slice(eq + 1);
  }
  for (const env of Object.values(out)) assert.equal(env.CDKTR_RUN_ID, runId);
  return out;
}

const PRINT_ENV = { cmd: "env" } as const;

test("a task of an agent started with SECRET=x, a key file and a .env sees only PATH, HOME, locale, TZ, proxies, CA files and the run variables", async () => {
  const c = await cluster({ "printenv.yml": workflowYaml({ tasks: { show: PRINT_ENV } }) });
  const env = (await taskEnvs(c, "printenv")).show ?? {};
  assert.equal(env.SECRET, undefined, "SECRET of the agent's environment");
  assert.equal(env.CDKTR_KEY_FILE, undefined, "the agent's key file");
  assert.equal(env.DOTENV_SECRET, undefined, "a secret of the agent's .env");
  assert.equal(env.HTTP_PROXY, undefined, "a base variable that came from the agent's .env");
  assert.deepEqual(Object.keys(env).sort(), [
    "CDKTR_RUN_ID",
    "CDKTR_TASK_ID",
    "CDKTR_TASK_MARKER",
    "CDKTR_TRIGGER_SOURCE",
    "CDKTR_WORKFLOW_ID",
    "HOME",
    "LC_ALL",
    "NODE_EXTRA_CA_CERTS",
    "PATH",
    "TZ",
    "https_proxy",
  ]);
  assert.equal(env.PATH, process.env.PATH ?? "/usr/bin:/bin");
  assert.equal(env.HOME, c.home);
  assert.equal(env.TZ, "Europe/London");
  assert.equal(env.LC_ALL, "C.UTF-8");
  assert.equal(env.https_proxy, "http://proxy.test:3128");
  assert.equal(env.NODE_EXTRA_CA_CERTS, "/some/ca.pem");
  assert.equal(env.CDKTR_WORKFLOW_ID, "printenv");
  assert.equal(env.CDKTR_TASK_ID, "show");
  // The agent's tag for finding the task's escaped processes (docs/operations.md): random per attempt.
  assert.match(env.CDKTR_TASK_MARKER ?? "", /^[0-9a-f]{16}\.[0-9a-f]{32}$/);
});

test("CDKTR_AGENT_INHERIT_ENV passes the variables it names, from the environment and the .env, and never a CDKTR_* setting", async () => {
  const c = await cluster(
    { "printenv.yml": workflowYaml({ tasks: { show: PRINT_ENV } }) },
    { CDKTR_AGENT_INHERIT_ENV: "SECRET,DOTENV_*,NODE_*,C*" },
  );
  const env = (await taskEnvs(c, "printenv")).show ?? {};
  assert.equal(env.SECRET, "x");
  assert.equal(env.DOTENV_SECRET, "y");
  assert.equal(env.NODE_OPTIONS, "--max-old-space-size=256");
  assert.equal(env.HTTP_PROXY, undefined, "not allowed, and from the .env");
  assert.deepEqual(
    Object.keys(env)
      .filter((k) => k.startsWith("CDKTR_"))
      .sort(),
    ["CDKTR_RUN_ID", "CDKTR_TASK_ID", "CDKTR_TASK_MARKER", "CDKTR_TRIGGER_SOURCE", "CDKTR_WORKFLOW_ID"],
  );
});

test("inherit_env of the workflow reaches every task, a task's own only that task; env values win over inherited ones", async () => {
  const c = await cluster({
    "inherit.yml": workflowYaml({
      header: ["inherit_env: [SECRET]", "env: {TZ: UTC, STAGE: test}"],
      tasks: {
        a: { ...PRINT_ENV, extra: ["inherit_env: [HTTP_*, DOTENV_SECRET]"] },
        b: { ...PRINT_ENV, extra: ["env: {STAGE: b, CDKTR_RUN_ID: forged}"] },
      },
    }),
  });
  const { a = {}, b = {} } = await taskEnvs(c, "inherit");
  assert.equal(a.SECRET, "x");
  assert.equal(b.SECRET, "x");
  assert.equal(a.DOTENV_SECRET, "y");
  assert.equal(a.HTTP_PROXY, "http://from-dotenv.test:1", "an allow-list passes a variable of the .env");
  assert.equal(b.DOTENV_SECRET, undefined);
  assert.equal(b.HTTP_PROXY, undefined);
  assert.equal(a.TZ, "UTC", "the workflow's env wins over the agent's TZ");
  assert.equal(a.STAGE, "test");
  assert.equal(b.STAGE, "b", "the task's env wins over the workflow's");
  assert.equal(a.CDKTR_KEY_FILE, undefined);
  assert.equal(b.CDKTR_KEY_FILE, undefined);
  // (taskEnvs checked that CDKTR_RUN_ID is the run's id in both: the task's env cannot forge it)
});

test("an allow-list naming the agent's CDKTR_* settings is refused: the agent exits 2, the workflow does not load", async () => {
  const c = await prepareCluster({
    "leaky.yml": workflowYaml({ header: ["inherit_env: [CDKTR_KEY_FILE]"], tasks: { show: PRINT_ENV } }),
  });
  await c.start();
  const errors = (await c.client.listWorkflows()).errors;
  assert.deepEqual(
    errors.map((e) => [e.file, e.path]),
    [["leaky.yml", "inherit_env[0]"]],
  );
  assert.match(errors[0]?.message ?? "", /`CDKTR_KEY_FILE`: the agent's own CDKTR_\* settings never reach a task/);

  const agent = await startFastAgent(c, {
    env: { CDKTR_AGENT_INHERIT_ENV: "PATH,CDKTR_KEY_FILE" },
    waitReady: false,
  });
  assert.equal((await agent.exited).code, 2);
  assert.ok(
    agent.lines.some((l) => l.includes("CDKTR_AGENT_INHERIT_ENV: `CDKTR_KEY_FILE`")),
    agent.lines.join("\n"),
  );
  const bad = await startFastAgent(c, { env: { CDKTR_AGENT_INHERIT_ENV: "AWS-REGION" }, waitReady: false });
  assert.equal((await bad.exited).code, 2);
  assert.ok(
    bad.lines.some((l) => l.includes("`AWS-REGION` is not a variable name")),
    bad.lines.join("\n"),
  );
});

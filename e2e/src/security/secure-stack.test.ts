/**
 * The secure wire across processes: a whole stack works with authentication on and no key
 * setting at all (every process finds its local key through the principal's HOME), an agent on
 * "another machine" works with a key file made for it, and processes without an enrolled key get
 * nothing done.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cleanup,
  makeTempDir,
  runCli,
  startAgent,
  startPrincipal,
  startScheduler,
  startStack,
  waitFor,
  workflowYaml,
} from "@cdktr/test-utils";

afterEach(cleanup);

const ECHO = workflowYaml({
  name: "Echo",
  tasks: { first: { cmd: "echo", args: ["one"] }, second: { cmd: "echo", args: ["two"], depends: ["first"] } },
});

describe("zero set-up", () => {
  it("startStack with no key settings runs a workflow end to end: each process finds its local key, every report checks", async () => {
    const { principal: p, agents } = await startStack({
      workflows: { "echo.yml": ECHO },
      agent: { env: { CDKTR_AGENT_FETCH_WAIT_MS: "1000" } },
    });
    assert.equal(agents[0]?.ready.key, "local-agent", "the agent found its key with no setting");
    const runId = await p.run("echo");
    const { run, tasks } = await p.waitForRun(runId);
    assert.equal(run.status, "COMPLETED");
    assert.equal(run.triggeredBy, "local-operator");
    assert.deepEqual(
      tasks.map((t) => [t.taskId, t.status]),
      [
        ["first", "COMPLETED"],
        ["second", "COMPLETED"],
      ],
    );
    const lines = await p.logs(runId);
    assert.ok(
      lines.some((l) => l.taskId === "first" && l.line === "one"),
      "the agent's log lines were accepted",
    );
    assert.ok(lines.some((l) => l.taskId === "second" && l.line === "two"));

    // The CLI on the same machine (same HOME) uses local-operator: `cdktr run --wait` works unchanged.
    const cli = await runCli(["run", "echo", "--wait"], { env: p.clientEnv });
    assert.equal(cli.code, 0, `${cli.stdout}${cli.stderr}`);
    assert.match(cli.stdout, /COMPLETED/);
  });

  it("the scheduler triggers with local-scheduler: its runs carry cron: keys in its scope and name it", async () => {
    const p = await startPrincipal({
      workflows: { "tick.yml": workflowYaml({ name: "Tick", cron: "* * * * * *" }) },
    });
    await startScheduler(p);
    const runs = await waitFor(
      async () => {
        const r = await p.runs("tick", { scheduledOnly: true });
        return r.length >= 2 ? r : undefined;
      },
      { timeoutMs: 20_000, what: "two scheduled runs" },
    );
    for (const r of runs) {
      assert.equal(r.triggeredBy, "local-scheduler");
      assert.match(r.idempotencyKey ?? "", /^cron:tick:/);
    }
  });

  it("with auth: 'off' every process and client is plaintext, and runs name no key", async () => {
    const { principal: p } = await startStack({
      auth: "off",
      workflows: { "echo.yml": ECHO },
      agent: { env: { CDKTR_AGENT_FETCH_WAIT_MS: "1000" } },
    });
    assert.equal(p.service?.ready.auth, "off");
    const { run } = await p.waitForRun(await p.run("echo"));
    assert.deepEqual([run.status, run.triggeredBy], ["COMPLETED", null]);
  });
});

describe("keys for other machines", () => {
  it("an agent in another HOME works with CDKTR_KEY_FILE of a key made for it; without an enrolled key nothing runs", async () => {
    const p = await startPrincipal({ workflows: { "echo.yml": ECHO } });
    const elsewhere = makeTempDir("cdktr-other-machine-");
    const remote = { ...p.clientEnv, HOME: elsewhere, CDKTR_AGENT_FETCH_WAIT_MS: "1000" };

    // No key in that HOME: plaintext, which an authenticated principal does not answer.
    const keyless = await startAgent(p, { name: "keyless", cwd: elsewhere, env: remote });
    assert.equal(keyless.ready.key, null);
    assert.equal(keyless.ready.registered, false);
    const unenrolled = await p.createKey("not-yet", "agent", { enroll: false });
    const stranger = await startAgent(p, {
      name: "stranger",
      cwd: elsewhere,
      env: { ...remote, CDKTR_KEY_FILE: unenrolled.path },
    });
    assert.equal(stranger.ready.registered, false);
    const waiting = await p.run("echo");
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await p.client.getRun(waiting)).run.status, "QUEUED", "no agent without an enrolled key takes work");
    assert.deepEqual((await p.client.listAgents()).agents, []);

    const made = await p.createKey("build-host", "agent");
    const agent = await startAgent(p, {
      name: "remote",
      cwd: elsewhere,
      env: { ...remote, CDKTR_KEY_FILE: made.path },
    });
    assert.equal(agent.ready.key, "build-host");
    const { run } = await p.waitForRun(waiting);
    assert.equal(run.status, "COMPLETED");
    assert.equal(run.agentId, agent.ready.agentId);
    assert.ok((await p.logs(waiting)).some((l) => l.line === "two"));
  });

  it("a trigger key in a file drives `cdktr run --wait` from another HOME, and cannot cancel", async () => {
    const p = await startPrincipal({ workflows: { "echo.yml": ECHO } });
    await startAgent(p, { env: { CDKTR_AGENT_FETCH_WAIT_MS: "1000" } });
    const ci = await p.createKey("ci", "trigger", { workflows: ["echo"] });
    const env = { ...p.clientEnv, HOME: makeTempDir("cdktr-ci-"), CDKTR_KEY_FILE: ci.path };
    const r = await runCli(["run", "echo", "--wait"], { env, cwd: join(p.home) });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /COMPLETED/);
    const runs = await p.runs("echo");
    assert.deepEqual(
      runs.map((x) => x.triggeredBy),
      ["ci"],
    );
    const cancel = await runCli(["cancel", runs[0]?.runId ?? ""], { env });
    assert.notEqual(cancel.code, 0);
    assert.match(`${cancel.stdout}${cancel.stderr}`, /PERMISSION_DENIED|may not call cancelRun/);
  });
});

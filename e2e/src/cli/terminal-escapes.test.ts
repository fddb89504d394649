/**
 * A task must not be able to drive the operator's terminal: what a task prints (and what an
 * agent reports as a task's or run's message) is shown by `cdktr logs`, `cdktr run --follow`
 * and `cdktr runs show` with its control characters escaped, while `--json` keeps the exact text
 * (JSON escapes it). The real `cdktr` bin, a real principal, a real agent running `printf`.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { GetRunReplySchema, LogLineSchema } from "@cdktr/protocol";
import { cleanup, runCli, startAgent, startPrincipal, workflowYaml } from "@cdktr/test-utils";
import { setupFakeAgent } from "./fake-agent.js";

afterEach(cleanup);

/** Any character a terminal acts on, but the newlines that end the CLI's own lines. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters is the point
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
/** What the task prints: set the window title, then clear the screen. */
const ATTACK = "\u001b]0;pwned\u0007\u001b[2J";
const SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J";

test("a task printing a title-setting OSC and a clear-screen shows up escaped in `cdktr logs` and `cdktr run --follow`", async () => {
  const p = await startPrincipal({
    workflows: {
      "evil.yml": workflowYaml({
        name: "Evil",
        // printf turns the octal escapes into the raw bytes ESC and BEL.
        tasks: { evil: { cmd: "printf", args: ["title\\033]0;pwned\\007\\033[2J done\\n"] } },
      }),
    },
  });
  await startAgent(p);

  const follow = await runCli(["run", "evil", "--follow"], { env: p.env });
  assert.equal(follow.code, 0, follow.stderr);
  assert.ok(!RAW_CONTROL.test(follow.stdout), `run --follow: ${JSON.stringify(follow.stdout)}`);
  assert.ok(follow.stdout.includes(`evil  title${SHOWN} done`), follow.stdout);
  const runId = follow.stdout.split("\n")[0] ?? "";

  const logs = await runCli(["logs", "--run", runId], { env: p.env });
  assert.equal(logs.code, 0, logs.stderr);
  assert.ok(!RAW_CONTROL.test(logs.stdout), `logs: ${JSON.stringify(logs.stdout)}`);
  assert.ok(logs.stdout.includes(`evil  title${SHOWN} done`), logs.stdout);

  const all = await runCli(["logs", "--workflow", "evil"], { env: p.env });
  assert.ok(!RAW_CONTROL.test(all.stdout), `logs --workflow: ${JSON.stringify(all.stdout)}`);
  assert.ok(all.stdout.includes(SHOWN), all.stdout);

  // --json keeps the exact bytes (JSON escapes them, so the terminal is safe too).
  const json = await runCli(["logs", "--run", runId, "--json"], { env: p.env });
  assert.ok(!RAW_CONTROL.test(json.stdout));
  const stored = (JSON.parse(json.stdout) as unknown[]).map((l) => LogLineSchema.parse(l));
  assert.deepEqual(
    stored.filter((l) => l.stream === "stdout").map((l) => l.line),
    [`title${ATTACK} done`],
  );
});

test("task and run messages reported by an agent are shown escaped by `cdktr runs show` and `cdktr runs`", async () => {
  const h = await setupFakeAgent();
  try {
    const runId = await h.trigger();
    await h.startRun(runId);
    const time = new Date().toISOString();
    await h.client.taskStatus({
      agentId: "test-agent",
      runId,
      token: h.tokenOf(runId),
      taskId: "hello",
      attempt: 1,
      status: "FAILED",
      time,
      signal: `SIG${ATTACK}`,
      message: `boom\r${ATTACK}\u009b2J`,
    });
    await h.client.runStatus({
      agentId: "test-agent",
      runId,
      token: h.tokenOf(runId),
      status: "FAILED",
      time,
      message: `run ${ATTACK}`,
    });
    const env = h.p.env;

    const show = await runCli(["runs", "show", runId], { env });
    assert.equal(show.code, 0, show.stderr);
    assert.ok(!RAW_CONTROL.test(show.stdout), `runs show: ${JSON.stringify(show.stdout)}`);
    assert.ok(show.stdout.includes(`run ${SHOWN}`), show.stdout);
    assert.ok(show.stdout.includes(`boom\\r${SHOWN}\\u009b2J`), show.stdout);
    assert.ok(show.stdout.includes(`SIG${SHOWN}`), show.stdout);

    const list = await runCli(["runs", "--workflow", "hello"], { env });
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!RAW_CONTROL.test(list.stdout), `runs: ${JSON.stringify(list.stdout)}`);

    const json = await runCli(["runs", "show", runId, "--json"], { env });
    const { run, tasks } = GetRunReplySchema.parse(JSON.parse(json.stdout));
    assert.equal(run.message, `run ${ATTACK}`, "--json keeps the exact text");
    assert.equal(tasks.find((t) => t.taskId === "hello")?.message, `boom\r${ATTACK}\u009b2J`);
  } finally {
    h.close();
  }
});

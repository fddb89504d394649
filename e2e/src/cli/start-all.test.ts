/**
 * End to end with the real `cdktr` bin: `cdktr start all` (principal, agent, scheduler as
 * processes) in a temp directory with the examples plus a workflow firing every second.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { RunRecordSchema, type RunRecord } from "@cdktr/protocol";
import {
  cleanup,
  cliBin,
  killGroups,
  preparePrincipal,
  processAlive,
  runCli,
  spawnService,
  waitFor,
  workflowYaml,
  type PrincipalFixture,
  type ServiceHandle,
} from "@cdktr/test-utils";
import { announcedPids, assertRunOutput, EXAMPLES, lines, REPO } from "./helpers.js";

const TICK = workflowYaml({
  name: "Tick",
  description: "fires every second",
  cron: "* * * * * *",
  tasks: { tick: { cmd: "echo", args: ["tick"] } },
});

/** A local installation for `cdktr start all`: the examples plus `extra`, reserved ports, nothing started. */
async function makeSandbox(
  extra: Record<string, string> = {},
): Promise<{ p: PrincipalFixture; dir: string; env: Record<string, string> }> {
  const p = await preparePrincipal({ copyWorkflowsFrom: EXAMPLES, workflows: extra, ports: "reserved" });
  return {
    p,
    dir: p.home,
    // The dashboard on any free port (5564 may be taken by another test or a real one).
    env: { ...p.env, CDKTR_AGENT_DATA_DIR: join(p.home, "agent"), CDKTR_DASHBOARD_PORT: "0" },
  };
}

/** `cdktr start all` as a process (own group); resolves once it announced `[cdktr] ready`. */
async function startAll(env: Record<string, string>, cwd: string): Promise<ServiceHandle> {
  const handle = await spawnService({
    script: cliBin(),
    args: ["start", "all"],
    env,
    cwd,
    name: "cdktr start all",
    waitReady: false,
  });
  await handle.waitForLine((l) => /^\[cdktr\]\s+ready/.test(l), 60_000);
  return handle;
}

let stack: ServiceHandle | undefined;
afterEach(async () => {
  if (stack !== undefined) killGroups(announcedPids(stack.lines));
  await cleanup();
});

test("start all; run --wait; runs --json; logs; scheduled runs; clean stop", async () => {
  const sb = await makeSandbox({ "tick.yml": TICK });
  // Relative workflow dir, as a user would write it in .env.
  // Metrics on any free ports: each app serves its own, and the URLs are printed.
  const env = { ...sb.env, CDKTR_WORKFLOW_DIR: "workflows", CDKTR_METRICS_PORT: "0" };
  stack = await startAll(env, sb.dir);
  await stack.waitForLine((l) => /^\[cdktr\]\s+ready: principal at 127\.0\.0\.1:\d+/.test(l), 60_000);
  await stack.waitForLine((l) => /^\[cdktr\]\s+metrics: /.test(l), 10_000);
  const metricsLine = stack.lines.find((l) => /^\[cdktr\]\s+metrics: /.test(l)) ?? "";
  const urls = [...metricsLine.matchAll(/(principal|agent|scheduler|dashboard) (http:\/\/127\.0\.0\.1:\d+)\/metrics/g)];
  assert.deepEqual(
    urls.map((m) => m[1]),
    ["principal", "agent", "scheduler", "dashboard"],
    `the metrics URLs are printed: ${metricsLine}`,
  );
  assert.equal(new Set(urls.map((m) => m[2])).size, 4, "four ports");
  for (const m of urls) assert.equal((await fetch(`${m[2]}/healthz`)).status, 200, `${m[1]} answers /healthz`);
  const pids = announcedPids(stack.lines);
  assert.equal(pids.length, 4, "principal, agent, scheduler and dashboard announced");
  // The dashboard's URL is printed, and it answers (anonymous reads on loopback).
  const dashLine = await stack.waitForLine(
    (l) => /^\[cdktr\]\s+dashboard at http:\/\/127\.0\.0\.1:\d+ /.test(l),
    10_000,
  );
  const dashUrl = /(http:\/\/127\.0\.0\.1:\d+)/.exec(dashLine)?.[1] ?? "";
  const session = await fetch(`${dashUrl}/api/session`);
  assert.equal(session.status, 200);
  assert.equal(((await session.json()) as { signInRequired: boolean }).signInRequired, false);
  assert.match(dashLine, /cdktr dashboard token create/);
  assert.ok(
    stack.lines.some((l) => l.startsWith("[principal] ")),
    "principal output is prefixed",
  );
  assert.ok(
    stack.lines.some((l) => l.startsWith("[agent]     ")),
    "agent output is prefixed",
  );

  const hello = await runCli(["run", "hello", "--wait"], { env, cwd: sb.dir });
  assert.equal(hello.code, 0, `run hello --wait: ${hello.stdout}\n${hello.stderr}`);
  const helloId = lines(hello.stdout)[0] ?? "";
  assert.match(helloId, /^[0-9A-Z]{26}$/);
  assert.match(hello.stdout, new RegExp(`run ${helloId} COMPLETED`));

  // --follow streams every task's output lines, each once, tagged with its task.
  const fan = await runCli(["run", "fan-in", "--wait", "--follow"], { env, cwd: sb.dir });
  assert.equal(fan.code, 0, `run fan-in --wait --follow: ${fan.stdout}\n${fan.stderr}`);
  for (const task of ["extract", "left", "right", "join"]) {
    const shown = lines(fan.stdout).filter((l) => new RegExp(`  ${task}  ${task}$`).test(l));
    assert.equal(shown.length, 1, `the output line of ${task} is shown once:\n${fan.stdout}`);
  }

  const fail = await runCli(["run", "fail", "--wait"], { env, cwd: sb.dir });
  assert.notEqual(fail.code, 0, `run fail --wait must not exit 0: ${fail.stdout}`);
  const failId = lines(fail.stdout)[0] ?? "";
  assert.match(fail.stdout, /task \S+ FAILED/);
  assert.match(fail.stdout, new RegExp(`run ${failId} FAILED`));

  const list = await runCli(["runs", "--json", "--limit", "1000"], { env, cwd: sb.dir });
  assert.equal(list.code, 0, list.stderr);
  const runs = (JSON.parse(list.stdout) as unknown[]).map((r) => RunRecordSchema.parse(r));
  const byId = new Map(runs.map((r) => [r.runId, r]));
  assert.equal(byId.get(helloId)?.status, "COMPLETED");
  assert.equal(byId.get(helloId)?.source, "cli");
  assert.equal(byId.get(failId)?.status, "FAILED");

  // `logs --run` shows every task's output; --wait printed each task's transitions.
  for (const taskId of await assertRunOutput(helloId, env, sb.dir)) {
    assert.match(hello.stdout, new RegExp(`task ${taskId} COMPLETED`));
  }

  // The per-second workflow is triggered by the scheduler, one run per second.
  const scheduled = await waitFor(
    async () => {
      const r = await runCli(["runs", "--workflow", "tick", "--json", "--limit", "100"], { env, cwd: sb.dir });
      const tickRuns = (JSON.parse(r.stdout) as RunRecord[]).filter((x) => x.source === "scheduler");
      return tickRuns.length >= 3 ? tickRuns : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 500, what: "3 scheduled runs of tick" },
  );
  const instants = scheduled.map((r) => r.scheduledFor);
  assert.ok(
    instants.every((t) => t?.endsWith(".000Z")),
    "scheduledFor on whole seconds",
  );
  assert.equal(new Set(instants).size, instants.length, "each occurrence once");

  // SIGTERM: every app stops cleanly, exit 0, nothing left behind.
  const result = await stack.stop("SIGTERM", 45_000);
  assert.equal(result.code, 0, stack.lines.slice(-20).join("\n"));
  for (const pid of pids) assert.equal(processAlive(pid), false, `pid ${pid} is gone`);
});

test("start all exits non-zero and stops the others when an app dies", async () => {
  const sb = await makeSandbox();
  // Readable lines asked for (the output is a pipe here): each app's JSON shown as one line.
  stack = await startAll({ ...sb.env, CDKTR_LOG_FORMAT: "pretty" }, sb.dir);
  const readyLine = stack.lines.find((l) => l.startsWith("[principal] ") && / info ready\b/.test(l)) ?? "";
  assert.match(readyLine, /^\[principal\] +\d\d:\d\d:\d\d\.\d{3} info ready /, stack.lines.join("\n"));
  assert.ok(!stack.lines.some((l) => l.startsWith("[principal] {")), "no JSON shown");
  const pids = announcedPids(stack.lines);
  const agentPid = pids[1];
  assert.ok(agentPid !== undefined);
  process.kill(agentPid, "SIGKILL");
  const result = await stack.exited;
  assert.equal(result.code, 1);
  assert.ok(
    stack.lines.some((l) => /agent exited \(SIGKILL\): stopping the others/.test(l)),
    stack.lines.join("\n"),
  );
  for (const pid of pids) assert.equal(processAlive(pid), false, `pid ${pid} is gone`);
});

test("start all: when the supervisor is SIGKILLed, its apps stop on their own", async () => {
  const sb = await makeSandbox();
  stack = await startAll(sb.env, sb.dir);
  const pids = announcedPids(stack.lines);
  assert.equal(pids.length, 4);
  // Only the supervisor: its apps live in their own process groups, so nobody else signals them.
  const supervisorPid = stack.pid;
  assert.ok(supervisorPid !== undefined);
  process.kill(supervisorPid, "SIGKILL");
  await stack.exited;
  for (const pid of pids) {
    await waitFor(() => !processAlive(pid), {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: `app pid ${pid} to exit after its supervisor died`,
    });
  }
  // The principal stopped gracefully, so its port is free again: a new principal can bind it.
  const again = await sb.p.start();
  await again.stop("SIGTERM", 15_000);
});

test("npm start (scripts/start.mjs) builds, then runs start all on examples/workflows", async () => {
  const sb = await makeSandbox();
  const env: Record<string, string> = { ...sb.env, TURBO_TELEMETRY_DISABLED: "1" };
  delete env.CDKTR_WORKFLOW_DIR; // the script's default applies
  delete env.CDKTR_DB_PATH; // the principal's default: ~/.cdktr/ (HOME is the sandbox)
  stack = await spawnService({
    script: join(REPO, "scripts", "start.mjs"),
    env,
    cwd: sb.dir,
    name: "npm start",
    waitReady: false,
  });
  const ready = await stack.waitForLine((l) => /^\[cdktr\]\s+ready: /.test(l), 120_000);
  assert.ok(ready.includes(`workflows from ${join(REPO, "examples", "workflows")}`), ready);
  assert.ok(ready.includes(`data in ${join(sb.dir, ".cdktr", "cdktr.db")}`), ready);
  await stack.waitForLine((l) => l.includes("npx cdktr run hello --wait"), 5000); // how to trigger a run
  await stack.waitForLine((l) => /^\[cdktr\]\s+dashboard at http:\/\/127\.0\.0\.1:\d+/.test(l), 5000); // its URL
  const run = await runCli(["run", "hello", "--wait"], { env: sb.env });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const result = await stack.stop("SIGTERM", 45_000);
  assert.equal(result.code, 0);
});

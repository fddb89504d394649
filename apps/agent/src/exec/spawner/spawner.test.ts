import { after, test } from "node:test";
import assert from "node:assert/strict";
import { noopLogger } from "@cdktr/protocol";
import { processGone, waitFor } from "@cdktr/test-utils";
import { runTaskProcess } from "../task-process.js";
import { Spawner } from "./spawner.js";

const spawner = await Spawner.start({ cgroupDir: null, logger: noopLogger });
after(() => spawner.close());
const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

test("50 tasks at once: each gets its own output and exit code", async () => {
  const results = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const lines: string[] = [];
      const r = await runTaskProcess({
        command: { cmd: "sh", args: ["-c", `echo task-${i}; echo err-${i} >&2; exit ${i % 3}`], cwd: null, env },
        timeoutMs: null,
        killGraceMs: 100,
        onLine: (_s, line) => lines.push(line),
        spawner,
      });
      return { i, r, lines };
    }),
  );
  for (const { i, r, lines } of results) {
    assert.deepEqual(lines.sort(), [`err-${i}`, `task-${i}`]);
    if (i % 3 === 0) assert.deepEqual(r, { ok: true, exitCode: 0 });
    else assert.equal(r.ok ? null : r.exitCode, i % 3);
  }
});

test("a task's pipes hold what it wrote before the agent got them: nothing is lost at a fast exit", async () => {
  const lines: string[] = [];
  const r = await runTaskProcess({
    command: { cmd: process.execPath, args: ["-e", "for (let i=0;i<2000;i++) console.log('l'+i)"], cwd: null, env },
    timeoutMs: null,
    killGraceMs: 100,
    onLine: (_s, line) => lines.push(line),
    spawner,
  });
  assert.equal(r.ok, true);
  assert.deepEqual(
    lines,
    Array.from({ length: 2000 }, (_, i) => `l${i}`),
  );
});

test("the spawner ignores SIGINT and SIGTERM (a Ctrl-C reaches the agent's whole group): its tasks go on", async () => {
  const pid = spawner.pid ?? 0;
  process.kill(pid, "SIGINT");
  process.kill(pid, "SIGTERM");
  const r = await runTaskProcess({
    command: { cmd: "true", args: [], cwd: null, env },
    timeoutMs: null,
    killGraceMs: 100,
    onLine: () => {},
    spawner,
  });
  assert.deepEqual(r, { ok: true, exitCode: 0 });
  assert.equal(spawner.pid, pid);
});

test("a spawner killed while a task runs: the attempt ends naming the cause, the task's group is killed, the next spawn starts a new spawner", async () => {
  const own = await Spawner.start({ cgroupDir: null, logger: noopLogger });
  try {
    const first = own.pid ?? 0;
    let taskPid = 0;
    const attempt = runTaskProcess({
      command: { cmd: "sh", args: ["-c", "echo pid=$$; sleep 300"], cwd: null, env },
      timeoutMs: null,
      killGraceMs: 100,
      onLine: (_s, line) => {
        if (line.startsWith("pid=")) taskPid = Number(line.slice(4));
      },
      spawner: own,
    });
    await waitFor(() => taskPid > 0, { timeoutMs: 5000, what: "the task to start" });
    process.kill(first, "SIGKILL");
    const r = await attempt;
    assert.equal(r.ok ? null : r.reason, "signal");
    assert.match(r.ok ? "" : r.message, /spawner process exited .* exit status is unknown/);
    await waitFor(() => processGone(taskPid), { timeoutMs: 5000, what: "the task's group killed" });
    const again = await runTaskProcess({
      command: { cmd: "sh", args: ["-c", "echo again"], cwd: null, env },
      timeoutMs: null,
      killGraceMs: 100,
      onLine: () => {},
      spawner: own,
    });
    assert.deepEqual(again, { ok: true, exitCode: 0 });
    assert.notEqual(own.pid, first, "a new spawner process");
  } finally {
    await own.close();
  }
});

test("after close, a spawn fails with spawn_error saying the agent is stopping; the spawner process is gone", async () => {
  const own = await Spawner.start({ cgroupDir: null, logger: noopLogger });
  const pid = own.pid ?? 0;
  await own.close();
  assert.equal(processGone(pid), true);
  const r = await runTaskProcess({
    command: { cmd: "true", args: [], cwd: null, env },
    timeoutMs: null,
    killGraceMs: 100,
    onLine: () => {},
    spawner: own,
  });
  assert.equal(r.ok ? null : r.reason, "spawn_error");
  assert.match(r.ok ? "" : r.message, /stopping/);
});

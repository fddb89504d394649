import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor, makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { noopLogger } from "@cdktr/protocol";
import { runTaskProcess, type OutputStream } from "./task-process.js";
import type { TaskCommand } from "./task-command.js";
import { Spawner } from "./spawner/spawner.js";

after(removeTempDirs);

// Every test runs twice: spawned by the agent's own thread, and by a real spawner process.
const spawner = await Spawner.start({ cgroupDir: null, logger: noopLogger });
after(() => spawner.close());
const MODES = ["inline", "spawner"] as const;
const via = (mode: (typeof MODES)[number]): { spawner?: Spawner } => (mode === "spawner" ? { spawner } : {});

function cmd(c: string, args: string[], extra: Partial<TaskCommand> = {}): TaskCommand {
  return { cmd: c, args, cwd: null, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, ...extra };
}

function collect(): { lines: { stream: OutputStream; line: string }[]; onLine: (s: OutputStream, l: string) => void } {
  const lines: { stream: OutputStream; line: string }[] = [];
  return { lines, onLine: (stream, line) => lines.push({ stream, line }) };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const mode of MODES) {
  test(`${mode}: exit 0 succeeds; stdout and stderr are read concurrently, order kept per stream`, async () => {
    const c = collect();
    // 5000 lines to each stream, interleaved: a reader that drains one stream first would deadlock.
    const script = "for (let i=1;i<=5000;i++){process.stdout.write('o'+i+'\\n');process.stderr.write('e'+i+'\\n');}";
    const r = await runTaskProcess({
      ...via(mode),
      command: cmd(process.execPath, ["-e", script]),
      timeoutMs: null,
      killGraceMs: 1000,
      onLine: c.onLine,
    });
    assert.deepEqual(r, { ok: true, exitCode: 0 });
    const out = c.lines.filter((l) => l.stream === "stdout").map((l) => l.line);
    const err = c.lines.filter((l) => l.stream === "stderr").map((l) => l.line);
    assert.deepEqual(
      out,
      Array.from({ length: 5000 }, (_, i) => `o${i + 1}`),
    );
    assert.deepEqual(
      err,
      Array.from({ length: 5000 }, (_, i) => `e${i + 1}`),
    );
  });

  test(`${mode}: non-zero exit fails with reason exit_code; a final line without newline is kept`, async () => {
    const c = collect();
    const r = await runTaskProcess({
      ...via(mode),
      command: cmd("sh", ["-c", "printf 'a\\nb'; exit 3"]),
      timeoutMs: null,
      killGraceMs: 1000,
      onLine: c.onLine,
    });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, "exit_code");
    assert.equal(!r.ok && r.exitCode, 3);
    assert.deepEqual(
      c.lines.map((l) => l.line),
      ["a", "b"],
    );
  });

  test(`${mode}: a missing executable fails with spawn_error naming the command`, async () => {
    const r = await runTaskProcess({
      ...via(mode),
      command: cmd("definitely-not-a-command-xyz", []),
      timeoutMs: null,
      killGraceMs: 1000,
      onLine: () => {},
    });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, "spawn_error");
    assert.match(!r.ok ? r.message : "", /definitely-not-a-command-xyz/);
  });

  test(`${mode}: a missing working directory fails with spawn_error naming it`, async () => {
    const r = await runTaskProcess({
      ...via(mode),
      command: cmd("true", [], { cwd: "/nonexistent/dir" }),
      timeoutMs: null,
      killGraceMs: 1000,
      onLine: () => {},
    });
    assert.equal(!r.ok && r.reason, "spawn_error");
    assert.match(!r.ok ? r.message : "", /\/nonexistent\/dir/);
  });

  test(`${mode}: env and working directory reach the process`, async () => {
    const dir = makeTempDir("cdktr-cwd-");
    const c = collect();
    const r = await runTaskProcess({
      ...via(mode),
      command: cmd("sh", ["-c", "echo $FOO; pwd"], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? "/bin", FOO: "bar baz" },
      }),
      timeoutMs: null,
      killGraceMs: 1000,
      onLine: c.onLine,
    });
    assert.equal(r.ok, true);
    assert.deepEqual(
      c.lines.map((l) => l.line),
      ["bar baz", dir],
    );
  });

  test(`${mode}: timeout kills the whole process group, escalating to SIGKILL after the grace period`, async () => {
    const dir = makeTempDir("cdktr-to-");
    const pidFile = join(dir, "bg");
    // The leader ignores SIGTERM; a background child would outlive a leader-only kill.
    const script = `trap '' TERM; sleep 300 & echo $! > ${pidFile}; while true; do sleep 1; done`;
    const recorded: number[] = [];
    const r = await runTaskProcess({
      ...via(mode),
      command: cmd("sh", ["-c", script]),
      timeoutMs: 500,
      killGraceMs: 300,
      onLine: () => {},
      groups: { record: (p) => recorded.push(p), release: (p) => recorded.push(-p) },
    });
    assert.equal(!r.ok && r.reason, "timeout");
    assert.equal(!r.ok && r.signal, "SIGKILL");
    const pgid = recorded[0] as number;
    assert.deepEqual(recorded, [pgid, -pgid]);
    const bg = Number(readFileSync(pidFile, "utf8").trim());
    await waitFor(() => !groupAlive(pgid), { timeoutMs: 5000, what: "process group gone" });
    assert.throws(() => process.kill(bg, 0));
  });

  test(`${mode}: abort cancels: group killed, reason taken from the abort reason`, async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = runTaskProcess({
      ...via(mode),
      command: cmd("sleep", ["300"]),
      timeoutMs: null,
      killGraceMs: 1000,
      onLine: () => {},
      signal: ac.signal,
    });
    setTimeout(() => ac.abort("agent_shutdown"), 200);
    const r = await p;
    assert.equal(!r.ok && r.reason, "agent_shutdown");
    assert.equal(!r.ok && r.signal, "SIGTERM");
    assert.ok(Date.now() - started < 100_000);
    const c2 = new AbortController();
    c2.abort("whatever");
    const r2 = await runTaskProcess({
      ...via(mode),
      command: cmd("sleep", ["300"]),
      timeoutMs: null,
      killGraceMs: 1000,
      onLine: () => {},
      signal: c2.signal,
    });
    assert.equal(!r2.ok && r2.reason, "cancelled");
  });

  test(`${mode}: backpressure: reading pauses while the flow control says so, and nothing is lost`, async () => {
    let paused = true;
    let release: () => void = () => {};
    const writable = new Promise<void>((r) => (release = r));
    let pausedCalls = 0;
    const c = collect();
    const p = runTaskProcess({
      ...via(mode),
      command: cmd(process.execPath, ["-e", "for (let i=1;i<=200000;i++) process.stdout.write('line '+i+'\\n')"]),
      timeoutMs: null,
      killGraceMs: 1000,
      onLine: c.onLine,
      flow: {
        shouldPause: () => paused,
        whenWritable: () => {
          pausedCalls++;
          return writable;
        },
      },
    });
    // While paused the task blocks on a full pipe: far fewer lines than written arrive.
    await new Promise((r) => setTimeout(r, 500));
    const whilePaused = c.lines.length;
    assert.ok(whilePaused < 200_000, `read ${whilePaused} lines while paused`);
    paused = false;
    release();
    const r = await p;
    assert.equal(r.ok, true);
    assert.ok(pausedCalls >= 1);
    assert.equal(c.lines.length, 200_000);
    assert.equal(c.lines.at(-1)?.line, "line 200000");
  });
}

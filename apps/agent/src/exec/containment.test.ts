import { after, afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { basename, join } from "node:path";
import { noopLogger } from "@cdktr/protocol";
import { makeTempDir, processGone, removeTempDirs, waitFor } from "@cdktr/test-utils";
import { Containment, type ContainmentMode } from "./containment.js";
import { runTaskProcess, type OutputStream } from "./task-process.js";
import { Spawner } from "./spawner/spawner.js";

after(removeTempDirs);

/** Pids the tests saw escape: killed at the end whatever happened (pids found, never a pattern). */
const escaped: number[] = [];
afterEach(() => {
  for (const pid of escaped.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
});

const cgroupProbe = Containment.create({
  mode: "auto",
  cgroupBase: null,
  dataDir: `/nonexistent/probe-${process.pid}`,
  logger: noopLogger,
});
cgroupProbe.close();
const noCgroup = cgroupProbe.mechanism === "cgroup" ? false : `no usable cgroup v2 here (${cgroupProbe.why})`;

/** Every containment made here, closed at the end (the test process waits in their fresh cgroups). */
const made: Containment[] = [];
after(() => {
  for (const c of made.splice(0).reverse()) c.close();
});

/** Spawners made here, closed at the end before the containments (they wait in fresh cgroups of them). */
const spawners: Spawner[] = [];
after(async () => {
  for (const s of spawners.splice(0)) await s.close();
});
async function spawnerFor(c: Containment): Promise<Spawner> {
  const s = await Spawner.start({ cgroupDir: c.cgroupDir, logger: noopLogger });
  spawners.push(s);
  return s;
}

/** The test process's own cgroup v2 path. */
const ownPath = (): string =>
  (
    readFileSync("/proc/self/cgroup", "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::")) ?? ""
  ).slice(3);

/** The task cgroups in the subtree `dir`, except the one this process waits in for its next spawn. */
const taskCgroups = (dir: string): string[] =>
  readdirSync(dir).filter((n) => n.startsWith("task-") && !ownPath().endsWith(`/${n}`));

/** Run `cat /proc/self/cgroup` as a task under `c` (forked by `spawner` when given); its cgroup v2 path. */
async function taskCgroupPath(c: Containment, spawner?: Spawner): Promise<string> {
  const lines: string[] = [];
  const r = await runTaskProcess({
    command: { cmd: "cat", args: ["/proc/self/cgroup"], cwd: null, env: {} },
    timeoutMs: null,
    killGraceMs: 100,
    onLine: (_s, line) => lines.push(line),
    containment: c.forTask(),
    ...(spawner === undefined ? {} : { spawner }),
  });
  assert.equal(r.ok, true);
  return (lines.find((l) => l.startsWith("0::")) ?? "").slice(3);
}

function containment(mode: ContainmentMode, dataDir = makeTempDir("cdktr-containment-")): Containment {
  const c = Containment.create({ mode, cgroupBase: null, dataDir, logger: noopLogger });
  assert.equal(c.mechanism, mode);
  made.push(c);
  return c;
}

/** Run `script` with `sh -c` under `c`; collects the escaped pid the script prints as `escaped=<pid>`. */
async function run(
  c: Containment,
  script: string,
  options: { timeoutMs?: number; signal?: AbortSignal; pipeDrainMs?: number; spawner?: Spawner } = {},
) {
  const lines: { stream: OutputStream; line: string }[] = [];
  const started = Date.now();
  const result = await runTaskProcess({
    command: { cmd: "sh", args: ["-c", script], cwd: null, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
    timeoutMs: options.timeoutMs ?? null,
    killGraceMs: 300,
    onLine: (stream, line) => {
      lines.push({ stream, line });
      if (line.startsWith("escaped=")) escaped.push(Number(line.slice("escaped=".length)));
    },
    containment: c.forTask(),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.pipeDrainMs === undefined ? {} : { pipeDrainMs: options.pipeDrainMs }),
    ...(options.spawner === undefined ? {} : { spawner: options.spawner }),
  });
  const pid = escaped.at(-1);
  assert.ok(pid !== undefined, `the script printed no pid: ${JSON.stringify(lines)}`);
  return { result, lines, pid, elapsed: Date.now() - started };
}

for (const [mode, spawned] of [
  ["cgroup", false],
  ["proc", false],
  ["cgroup", true],
  ["proc", true],
] as const) {
  const skip = mode === "cgroup" ? noCgroup : false;
  const name = spawned ? `${mode} (spawner process)` : mode;
  /** The spawner for `c` in this variant. */
  const via = async (c: Containment): Promise<{ spawner?: Spawner }> =>
    spawned ? { spawner: await spawnerFor(c) } : {};

  test(`${name}: on timeout, a setsid child is killed and the attempt ends at the timeout`, { skip }, async () => {
    const c = containment(mode);
    const r = await run(c, "setsid sleep 97 & echo escaped=$!; sleep 1000", { timeoutMs: 300, ...(await via(c)) });
    assert.equal(r.result.ok, false);
    assert.equal(r.result.ok ? null : r.result.reason, "timeout");
    assert.ok(r.elapsed < 10_000, `took ${r.elapsed} ms`);
    await waitFor(() => processGone(r.pid), { timeoutMs: 5000, what: "escaped child killed" });
  });

  test(`${name}: on cancel, a double-forked child that ignores SIGTERM is killed after the grace`, {
    skip,
  }, async () => {
    const c = containment(mode);
    const extra = await via(c);
    const abort = new AbortController();
    setTimeout(() => abort.abort("cancelled"), 500).unref();
    const r = await run(c, "(trap '' TERM; setsid sh -c 'trap \"\" TERM; sleep 97' & echo escaped=$!) ; sleep 1000", {
      signal: abort.signal,
      ...extra,
    });
    assert.equal(r.result.ok ? null : r.result.reason, "cancelled");
    assert.ok(r.elapsed < 10_000, `took ${r.elapsed} ms`);
    await waitFor(() => processGone(r.pid), { timeoutMs: 5000, what: "escaped child killed" });
  });

  test(`${name}: a task that exits 0 leaving a setsid child completes at once and the child is killed`, {
    skip,
  }, async () => {
    const c = containment(mode);
    const extra = await via(c);
    const r = await run(c, "setsid sleep 97 & echo escaped=$!", extra);
    assert.deepEqual(r.result, { ok: true, exitCode: 0 });
    assert.ok(r.elapsed < 10_000, `took ${r.elapsed} ms`);
    await waitFor(() => processGone(r.pid), { timeoutMs: 5000, what: "escaped child killed" });
    if (c.cgroupDir !== null) {
      const dir = c.cgroupDir;
      // The spawner leaves the fresh cgroup it waits in (the only one left then is the task's).
      await extra.spawner?.close();
      await waitFor(() => taskCgroups(dir).length === 0, {
        timeoutMs: 5000,
        what: "the task's cgroup removed",
      });
      c.close();
      assert.equal(existsSync(dir), false);
    }
  });

  // The reaping at start-up does not involve the spawner.
  if (!spawned) {
    test(`${mode}: at start-up, the escaped processes an agent with the same data directory left are killed`, {
      skip,
    }, async () => {
      const dataDir = makeTempDir("cdktr-containment-");
      const first = containment(mode, dataDir);
      const task = first.forTask();
      // A task process of an agent that then died: spawned inside, never released.
      const child = task.spawnInside(() =>
        spawn("sh", ["-c", "setsid sleep 97 & echo escaped=$!"], {
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...task.env },
          stdio: ["ignore", "pipe", "ignore"],
          detached: true,
        }),
      );
      const line = await new Promise<string>((resolve) =>
        child.stdout.once("data", (b: Buffer) => resolve(b.toString())),
      );
      const pid = Number(line.trim().slice("escaped=".length));
      escaped.push(pid);
      await new Promise((resolve) => child.once("exit", resolve));
      assert.equal(processGone(pid), false);
      // The first agent "dies": its process (this one) leaves the fresh cgroup it waited in, as a
      // dead agent's leaves it empty; the task's cgroup and its escaped process stay.
      first.close();
      // Another agent's processes are left alone: a different data directory, a different key.
      const other = containment(mode);
      assert.equal(other.reapOrphans(), 0);
      assert.equal(processGone(pid), false);
      const second = containment(mode, dataDir);
      assert.ok(second.reapOrphans() >= 1);
      await waitFor(() => processGone(pid), { timeoutMs: 5000, what: "orphan killed" });
      if (second.cgroupDir !== null)
        assert.deepEqual(
          readdirSync(second.cgroupDir).filter((n) => n.startsWith("task-")),
          [],
        );
      second.close();
      other.close();
    });
  }
}

test("cgroup: a child that clears its environment and escapes is still killed", { skip: noCgroup }, async () => {
  const c = containment("cgroup");
  const r = await run(c, "setsid env -i sleep 97 & echo escaped=$!; sleep 1000", { timeoutMs: 300 });
  assert.equal(r.result.ok ? null : r.result.reason, "timeout");
  await waitFor(() => processGone(r.pid), { timeoutMs: 5000, what: "escaped child killed" });
});

test("proc (residual risk): a child that clears its environment survives, but the attempt still ends after the drain time", async () => {
  const c = containment("proc");
  const r = await run(c, "setsid env -i sleep 97 & echo escaped=$!; sleep 1000", { timeoutMs: 300, pipeDrainMs: 500 });
  assert.equal(r.result.ok ? null : r.result.reason, "timeout");
  assert.ok(r.elapsed < 10_000, `took ${r.elapsed} ms`);
  assert.ok(
    r.lines.some((l) => l.stream === "stderr" && /output pipes still open 500 ms after/.test(l.line)),
    JSON.stringify(r.lines),
  );
  assert.equal(processGone(r.pid), false, "out of reach of the marker: documented residual risk");
});

test("CDKTR_AGENT_CONTAINMENT=cgroup without a usable cgroup v2 refuses to start, naming the setting; auto falls back to proc", () => {
  const base = join(makeTempDir("cdktr-containment-"), "not-a-cgroup");
  assert.throws(
    () => Containment.create({ mode: "cgroup", cgroupBase: base, dataDir: "/x", logger: noopLogger }),
    (e: unknown) =>
      (e as { code?: string }).code === "CONTAINMENT_UNAVAILABLE" &&
      /CDKTR_AGENT_CGROUP_BASE/.test((e as Error).message) &&
      (e as Error).message.includes(base),
  );
  const auto = Containment.create({ mode: "auto", cgroupBase: base, dataDir: "/x", logger: noopLogger });
  assert.equal(auto.mechanism, "proc");
  assert.match(auto.why, /no usable cgroup v2/);
});

test("cgroup: an attempt that never starts (missing working directory, command not found) leaves no cgroup behind", {
  skip: noCgroup,
}, async () => {
  const c = containment("cgroup");
  const dir = c.cgroupDir ?? "";
  const base = { timeoutMs: null, killGraceMs: 100, onLine: () => {} };
  const missingCwd = await runTaskProcess({
    ...base,
    command: { cmd: "true", args: [], cwd: "/nonexistent/cdktr", env: {} },
    containment: c.forTask(),
  });
  assert.equal(missingCwd.ok ? null : missingCwd.reason, "spawn_error");
  const notFound = await runTaskProcess({
    ...base,
    command: { cmd: "no-such-command-cdktr", args: [], cwd: null, env: { PATH: "/nonexistent" } },
    containment: c.forTask(),
  });
  assert.equal(notFound.ok ? null : notFound.reason, "spawn_error");
  await waitFor(() => taskCgroups(dir).length === 0, {
    timeoutMs: 5000,
    what: "no task cgroup left",
  });
  c.close();
});

test("cgroup: an agent starting removes the empty subtrees of agents gone for good; a live agent whose subtree went makes it again", {
  skip: noCgroup,
}, async () => {
  const goneDir = containment("cgroup").cgroupDir ?? "";
  assert.equal(existsSync(goneDir), true);
  const live = containment("cgroup"); // starting, it prunes the (empty) subtree of the first
  const liveDir = live.cgroupDir ?? "";
  assert.equal(existsSync(goneDir), false);
  assert.equal(existsSync(liveDir), true);
  containment("cgroup").close(); // a third agent starting prunes the live one's while it is empty
  assert.equal(existsSync(liveDir), false);
  const r = await run(live, "setsid sleep 97 & echo escaped=$!; sleep 1000", { timeoutMs: 300 });
  assert.equal(r.result.ok ? null : r.result.reason, "timeout");
  assert.equal(existsSync(liveDir), true, "made again for the task");
  await waitFor(() => processGone(r.pid), { timeoutMs: 5000, what: "escaped child killed" });
  await waitFor(() => taskCgroups(liveDir).length === 0, {
    timeoutMs: 5000,
    what: "the task's cgroup removed",
  });
  live.close();
});

test("cgroup: the agent waits for each spawn in a fresh cgroup that becomes the task's; killAll spares it; close goes home", {
  skip: noCgroup,
}, async () => {
  const ownPath = (): string =>
    (
      readFileSync("/proc/self/cgroup", "utf8")
        .split("\n")
        .find((l) => l.startsWith("0::")) ?? ""
    ).slice(3);
  const home = ownPath();
  const c = containment("cgroup");
  const sub = c.cgroupDir ?? "";
  const mount = sub.slice(0, sub.length - home.replace(/\/$/, "").length - `/${basename(sub)}`.length);
  const first = await taskCgroupPath(c);
  assert.match(first, /\/task-[0-9a-f]{16}$/, "the first task in a cgroup of its own");
  const waiting = ownPath();
  assert.match(waiting, /\/task-[0-9a-f]{16}$/, "after a spawn the agent waits in a fresh task cgroup");
  assert.notEqual(waiting, first);
  assert.equal(join(mount, waiting).startsWith(sub), true);
  const second = await taskCgroupPath(c);
  assert.equal(
    second,
    waiting.replace(/\/next-([0-9a-f]{16})$/, "/task-$1"),
    "the next task starts where the agent waited",
  );
  assert.notEqual(ownPath(), waiting, "and the agent moved on");
  assert.equal(c.killAll(), 0, "killAll finds no task process (and never the agent)");
  assert.equal(existsSync(join(mount, ownPath())), true, "the agent's fresh cgroup is kept");
  c.close();
  assert.equal(ownPath(), home, "close moves the agent back to its own cgroup");
  assert.equal(existsSync(sub), false, "and removes the subtree");
});

test("cgroup (spawner process): each task starts in a fresh cgroup of its own, the agent never moves, the spawner never stays in a task's; close leaves nothing", {
  skip: noCgroup,
}, async () => {
  const home = ownPath();
  const c = containment("cgroup");
  const sub = c.cgroupDir ?? "";
  const spawner = await spawnerFor(c);
  const spawnerPid = spawner.pid ?? 0;
  const cgroupOf = (pid: number): string =>
    (
      readFileSync(`/proc/${pid}/cgroup`, "utf8")
        .split("\n")
        .find((l) => l.startsWith("0::")) ?? ""
    ).slice(3);
  const seen = new Set<string>();
  for (let i = 0; i < 5; i++) {
    const task = await taskCgroupPath(c, spawner);
    assert.match(task, /\/task-[0-9a-f]{16}$/, "the task in a cgroup of its own");
    assert.equal(seen.has(task), false, "a fresh one for every task");
    seen.add(task);
    const waiting = cgroupOf(spawnerPid);
    assert.notEqual(waiting, task, "the spawner left the task's cgroup before the task was reported");
    assert.match(waiting, /\/task-[0-9a-f]{16}$/, "and waits in the next fresh one");
    assert.equal(ownPath(), home, "the agent itself never moves");
  }
  await waitFor(() => taskCgroups(sub).filter((n) => !cgroupOf(spawnerPid).endsWith(`/${n}`)).length === 0, {
    timeoutMs: 5000,
    what: "the tasks' cgroups removed",
  });
  await spawner.close();
  c.close();
  assert.equal(existsSync(sub), false, "the spawner went home and the subtree is removed");
});

test("cgroup (spawner process): a subtree another agent pruned while it was empty (before the spawner waited in it) is made again", {
  skip: noCgroup,
}, async () => {
  const c = containment("cgroup");
  const sub = c.cgroupDir ?? "";
  // What another agent starting does to an empty subtree (pruneEmptySiblings).
  rmdirSync(sub);
  const spawner = await spawnerFor(c);
  assert.match(await taskCgroupPath(c, spawner), /\/cdktr-agent-[0-9a-f]+\/task-[0-9a-f]{16}$/);
  await spawner.close();
  c.close();
});

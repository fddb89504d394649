import { after, test } from "node:test";
import assert from "node:assert/strict";
import { makeTempDir, removeTempDirs, waitFor } from "@cdktr/test-utils";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { acquireDataDirLock } from "./data-dir-lock.js";
import { AgentStartError } from "../errors.js";

after(removeTempDirs);

test("the lock records the pid and is released", () => {
  const dir = join(makeTempDir("cdktr-lock-"), "nested", "data");
  const lock = acquireDataDirLock(dir, "a1");
  assert.equal((JSON.parse(readFileSync(lock.path, "utf8")) as { pid: number }).pid, process.pid);
  lock.release();
  lock.release();
  assert.equal(existsSync(lock.path), false);
});

test("a live holder refuses a second agent with a clear error", async () => {
  const dir = makeTempDir("cdktr-lock-");
  const holder = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    const pid = holder.pid as number;
    writeFileSync(join(dir, "agent.lock"), JSON.stringify({ pid, startTicks: null, agentId: "other" }));
    assert.throws(
      () => acquireDataDirLock(dir, "a2"),
      (e: unknown) =>
        e instanceof AgentStartError &&
        e.code === "DATA_DIR_LOCKED" &&
        e.message.includes(String(pid)) &&
        e.message.includes("CDKTR_AGENT_DATA_DIR"),
    );
  } finally {
    holder.kill("SIGKILL");
  }
});

test("a dead holder's lock is taken over", async () => {
  const dir = makeTempDir("cdktr-lock-");
  const child = spawn("true", [], { stdio: "ignore" });
  const pid = child.pid as number;
  await new Promise((r) => child.on("exit", r));
  writeFileSync(join(dir, "agent.lock"), JSON.stringify({ pid, startTicks: null, agentId: "old" }));
  const lock = acquireDataDirLock(dir, "a3");
  assert.equal((JSON.parse(readFileSync(lock.path, "utf8")) as { agentId: string }).agentId, "a3");
  lock.release();
});

test("a reused pid (same pid, different start time) does not hold the lock", () => {
  const dir = makeTempDir("cdktr-lock-");
  writeFileSync(join(dir, "agent.lock"), JSON.stringify({ pid: process.ppid, startTicks: "1", agentId: "ghost" }));
  const lock = acquireDataDirLock(dir, "a4");
  lock.release();
});

test("takeover race: an agent that judged the holder dead never removes the lock another agent took meanwhile", async () => {
  const dir = makeTempDir("cdktr-lock-");
  const child = spawn("true", [], { stdio: "ignore" });
  const deadPid = child.pid as number;
  await new Promise((r) => child.on("exit", r));
  writeFileSync(join(dir, "agent.lock"), JSON.stringify({ pid: deadPid, startTicks: null, agentId: "dead" }));
  let winner: ReturnType<typeof acquireDataDirLock> | null = null;
  // Agent B (recorded as our parent's pid) saw the dead holder; before it replaces it, agent A
  // (this process) takes the lock over. B must then see A as the live holder.
  assert.throws(
    () =>
      acquireDataDirLock(dir, "B", process.ppid, {
        beforeTakeover: () => {
          winner = acquireDataDirLock(dir, "A", process.pid);
        },
      }),
    (e: unknown) =>
      e instanceof AgentStartError && e.code === "DATA_DIR_LOCKED" && e.message.includes(String(process.pid)),
  );
  assert.notEqual(winner, null);
  assert.equal((JSON.parse(readFileSync(join(dir, "agent.lock"), "utf8")) as { agentId: string }).agentId, "A");
  (winner as unknown as { release(): void }).release();
  assert.equal(existsSync(join(dir, "agent.lock")), false);
});

test("six agent processes racing for a directory with a dead holder: exactly one gets it", async () => {
  const dir = makeTempDir("cdktr-lock-");
  writeFileSync(join(dir, "agent.lock"), JSON.stringify({ pid: 2_000_000_000, startTicks: null, agentId: "dead" }));
  const moduleUrl = new URL("./data-dir-lock.js", import.meta.url).href;
  // Each contender waits for a shared start file, tries once, and holds a won lock for a while.
  const go = join(dir, "go");
  const script = `
    const { existsSync } = await import("node:fs");
    const { acquireDataDirLock } = await import(${JSON.stringify(moduleUrl)});
    console.log("ready");
    while (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 2));
    try { const l = acquireDataDirLock(${JSON.stringify(dir)}, "c" + process.pid); console.log("won"); await new Promise((r) => setTimeout(r, 1500)); l.release(); }
    catch (e) { console.log(e.code); }`;
  const outputs: string[] = [];
  const outs = Array.from({ length: 6 }, (_, i) => {
    const p = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    outputs[i] = "";
    p.stdout.on("data", (d: Buffer) => (outputs[i] += d.toString()));
    return new Promise<void>((resolve) => p.on("close", () => resolve()));
  });
  await waitFor(() => outputs.every((o) => o.startsWith("ready")), {
    timeoutMs: 20_000,
    what: "all contenders loaded",
  });
  writeFileSync(go, "");
  await Promise.all(outs);
  const results = outputs.map((o) => o.replace(/^ready\s*/, "").trim());
  assert.equal(results.filter((r) => r === "won").length, 1, results.join(","));
  assert.equal(results.filter((r) => r === "DATA_DIR_LOCKED").length, 5, results.join(","));
});

test("a takeover mutex left by an agent that died inside it does not block the next start", () => {
  const dir = makeTempDir("cdktr-lock-");
  writeFileSync(join(dir, "agent.lock"), JSON.stringify({ pid: 2_000_000_000, startTicks: null, agentId: "dead" }));
  const mutex = join(dir, "agent.lock.takeover");
  mkdirSync(mutex);
  const old = new Date(Date.now() - 60_000);
  utimesSync(mutex, old, old);
  const lock = acquireDataDirLock(dir, "a5");
  assert.equal((JSON.parse(readFileSync(lock.path, "utf8")) as { agentId: string }).agentId, "a5");
  assert.equal(existsSync(mutex), false);
  lock.release();
});

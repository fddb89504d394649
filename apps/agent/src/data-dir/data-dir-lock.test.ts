import { after, test } from "node:test";
import assert from "node:assert/strict";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { acquireDataDirLock } from "./data-dir-lock.js";
import { AgentStartError } from "../errors.js";

after(removeTempDirs);

test("the lock records the pid and is released", () => {
  const dir = join(makeTempDir("cdktr-lock-"), "nested", "data");
  const lock = acquireDataDirLock(dir, "a1");
  assert.equal(JSON.parse(readFileSync(lock.path, "utf8")).pid, process.pid);
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
        e instanceof AgentStartError && e.code === "DATA_DIR_LOCKED" && e.message.includes(String(pid)) && e.message.includes("CDKTR_AGENT_DATA_DIR"),
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
  assert.equal(JSON.parse(readFileSync(lock.path, "utf8")).agentId, "a3");
  lock.release();
});

test("a reused pid (same pid, different start time) does not hold the lock", () => {
  const dir = makeTempDir("cdktr-lock-");
  writeFileSync(join(dir, "agent.lock"), JSON.stringify({ pid: process.ppid, startTicks: "1", agentId: "ghost" }));
  const lock = acquireDataDirLock(dir, "a4");
  lock.release();
});

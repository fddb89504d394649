import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { noopLogger } from "@cdktr/protocol";
import { waitFor, makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { SyncBatch } from "../data-dir/sync-batch.js";
import { ProcessGroupRegistry } from "./process-group-registry.js";

after(removeTempDirs);

function alive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

test("groups recorded by a previous agent process are killed; records are removed", async () => {
  const dir = makeTempDir("cdktr-pg-");
  const reg = new ProcessGroupRegistry(dir, noopLogger);
  const child = spawn("sh", ["-c", "sleep 300 & sleep 300"], {
    detached: true,
    stdio: "ignore",
    env: { PATH: process.env.PATH ?? "/bin", CDKTR_RUN_ID: "r1", CDKTR_TASK_ID: "t1" },
  });
  const pgid = child.pid as number;
  reg.recorderFor("r1", "t1").record(pgid);
  assert.deepEqual(readdirSync(join(dir, "pgids")), [String(pgid)]);
  // A new registry on the same data dir (the next agent process) reaps it.
  const killed = new ProcessGroupRegistry(dir, noopLogger).reapOrphans();
  assert.deepEqual(killed, [pgid]);
  await waitFor(() => !alive(pgid), { timeoutMs: 5000, what: "orphan group gone" });
  assert.deepEqual(readdirSync(join(dir, "pgids")), []);
});

test("a recorded pgid now used by an unrelated process group is left alone", async () => {
  const dir = makeTempDir("cdktr-pg-");
  const other = spawn("sleep", ["300"], { detached: true, stdio: "ignore", env: { PATH: process.env.PATH ?? "/bin" } });
  const pgid = other.pid as number;
  try {
    new ProcessGroupRegistry(dir, noopLogger);
    writeFileSync(
      join(dir, "pgids", String(pgid)),
      JSON.stringify({ pgid, runId: "r9", taskId: "t9", startTicks: "1" }),
    );
    const killed = new ProcessGroupRegistry(dir, noopLogger).reapOrphans();
    assert.deepEqual(killed, []);
    assert.equal(alive(pgid), true);
    assert.deepEqual(readdirSync(join(dir, "pgids")), []);
  } finally {
    process.kill(-pgid, "SIGKILL");
  }
});

test("killAll SIGKILLs every recorded group at once and leaves the records for the next start", async () => {
  const dir = makeTempDir("cdktr-pg-");
  const reg = new ProcessGroupRegistry(dir, noopLogger);
  const pgids: number[] = [];
  for (const taskId of ["t1", "t2"]) {
    const child = spawn("sh", ["-c", "sleep 300 & sleep 300"], {
      detached: true,
      stdio: "ignore",
      env: { PATH: process.env.PATH ?? "/bin", CDKTR_RUN_ID: "r1", CDKTR_TASK_ID: taskId },
    });
    const pgid = child.pid as number;
    reg.recorderFor("r1", taskId).record(pgid);
    pgids.push(pgid);
  }
  const killed = reg.killAll("SIGKILL");
  assert.deepEqual([...killed].sort(), [...pgids].sort());
  for (const pgid of pgids) await waitFor(() => !alive(pgid), { timeoutMs: 5000, what: `group ${pgid} gone` });
  assert.deepEqual(readdirSync(join(dir, "pgids")).sort(), pgids.map(String).sort());
  // The groups are gone: the next agent process only removes the records.
  assert.deepEqual(new ProcessGroupRegistry(dir, noopLogger).reapOrphans(), []);
  assert.deepEqual(readdirSync(join(dir, "pgids")), []);
});

test("records are fsynced with their directory, batched per turn; a record that cannot be written is a problem, not a throw", async () => {
  const calls: string[] = [];
  const sync = new SyncBatch({
    ops: { syncFile: (p) => calls.push(`file ${p}`), syncDir: (p) => calls.push(`dir ${p}`) },
    logger: noopLogger,
  });
  const dir = makeTempDir("cdktr-pg-");
  const reg = new ProcessGroupRegistry(dir, noopLogger, sync);
  const rec = reg.recorderFor("r1", "t1");
  // Pids that are no process here: only the records matter.
  rec.record(999_991);
  rec.record(999_992);
  await sync.synced();
  const pgids = join(dir, "pgids");
  assert.deepEqual(calls, [`file ${join(pgids, "999991")}`, `file ${join(pgids, "999992")}`, `dir ${pgids}`]);
  rec.release(999_991);
  rec.release(999_992);
  await sync.synced();
  assert.deepEqual(calls.slice(3), [`dir ${pgids}`], "removals: one directory fsync for both");

  // The records' directory replaced by a file: recording fails, the task is not stopped by it.
  rmSync(pgids, { recursive: true });
  writeFileSync(pgids, "");
  assert.doesNotThrow(() => rec.record(999_993));
  assert.match(reg.problem ?? "", /process-group records/);
  rmSync(pgids);
  rec.record(999_994);
  assert.equal(reg.problem, null);
  assert.deepEqual(readdirSync(pgids), ["999994"]);
});

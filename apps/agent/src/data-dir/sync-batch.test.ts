import { after, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { noopLogger } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { SyncBatch, type SyncOps } from "./sync-batch.js";

after(removeTempDirs);

/** Ops that record every call (in order) instead of syncing. */
function recording(): SyncOps & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    syncFile: (p) => {
      calls.push(`file ${p}`);
    },
    syncDir: (p) => {
      calls.push(`dir ${p}`);
    },
  };
}

test("one fsync per file and per directory per batch (a turn of the event loop), files before directories", async () => {
  const ops = recording();
  const b = new SyncBatch({ ops, logger: noopLogger });
  for (let i = 0; i < 1000; i++) {
    b.dir("/d");
    b.file("/d/a");
    b.file("/d/b");
  }
  assert.deepEqual(ops.calls, [], "nothing synced before the end of the turn");
  await b.synced();
  assert.deepEqual(ops.calls, ["file /d/a", "file /d/b", "dir /d"]);
  // The next turn is a new batch.
  b.file("/d/a");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(ops.calls.slice(3), ["file /d/a"]);
  assert.deepEqual(b.counts, { files: 3, dirs: 1, batches: 2, failures: 0 });
});

test("now() syncs at once; synced() resolves at once when nothing is pending", async () => {
  const ops = recording();
  const b = new SyncBatch({ ops, logger: noopLogger });
  await b.synced();
  b.file("/x");
  b.now();
  assert.deepEqual(ops.calls, ["file /x"]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(ops.calls, ["file /x"], "the scheduled batch was taken by now()");
});

test("the real path is the default: files and directories are fsynced, a removed file is skipped, errors counted", async () => {
  const dir = makeTempDir("cdktr-sync-");
  const f = join(dir, "rec");
  writeFileSync(f, "x");
  const b = new SyncBatch({ logger: noopLogger });
  b.file(f);
  b.dir(dir);
  b.file(join(dir, "gone"));
  await b.synced();
  assert.deepEqual(b.counts, { files: 1, dirs: 1, batches: 1, failures: 0 });
  b.file(join(dir, "rec", "not-a-dir"));
  b.now();
  assert.equal(b.counts.failures, 1, "ENOTDIR is a failure (logged), not a throw");
});

test("group commit: what is marked while a batch syncs waits for the next batch, once per file", async () => {
  const calls: string[] = [];
  let release: () => void = () => undefined;
  const blocked = new Promise<void>((r) => {
    release = r;
  });
  const ops: SyncOps = {
    syncFile: () => assert.fail("the batches run off the event loop"),
    syncDir: () => assert.fail("the batches run off the event loop"),
    syncFileAsync: async (p) => {
      calls.push(p);
      if (calls.length === 1) await blocked;
    },
    syncDirAsync: async (p) => {
      calls.push(`dir ${p}`);
    },
  };
  const b = new SyncBatch({ ops, logger: noopLogger });
  b.file("/a");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, ["/a"], "the first batch is syncing (blocked)");
  for (let turn = 0; turn < 5; turn++) {
    for (let i = 0; i < 100; i++) {
      b.file("/a");
      b.file("/b");
    }
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(calls, ["/a"], "nothing more while it syncs");
  const done = b.synced();
  release();
  await done;
  assert.deepEqual(calls, ["/a", "/a", "/b"], "5 turns of 200 marks: one more batch, one fsync per file");
  assert.equal(b.counts.batches, 2);
});

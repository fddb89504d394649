import { after, test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { noopLogger, type LogLine } from "@cdktr/protocol";
import { fillDisk, makeTempDir, mountTmpfs, removeTempDirs } from "@cdktr/test-utils";
import { SyncBatch } from "../data-dir/sync-batch.js";
import { entryBytes, LogSpool, type SpoolEntry } from "./log-spool.js";

after(removeTempDirs);

function entry(seq: number): SpoolEntry {
  const line: LogLine = {
    time: new Date().toISOString(),
    runId: "r1",
    workflowId: "wf",
    taskId: "t",
    stream: "stdout",
    level: "info",
    seq,
    line: `line ${seq}`,
  };
  return { ord: seq, bytes: entryBytes(line), line };
}

const range = (n: number, from = 1): number[] => Array.from({ length: n }, (_, i) => i + from);

function spool(dir: string, fileBytes = 1e9): LogSpool {
  return new LogSpool({ dir, maxBytes: 1e9, fileBytes, logger: noopLogger });
}

/** Read everything back, acknowledging each batch; returns the sequence numbers and ordinals. */
function drain(s: LogSpool, maxLines = 7): { seqs: number[]; ords: number[] } {
  const seqs: number[] = [];
  const ords: number[] = [];
  for (let b = s.nextBatch(maxLines, 1e9); b !== null; b = s.nextBatch(maxLines, 1e9)) {
    assert.ok(b.entries.length <= maxLines);
    seqs.push(...b.entries.map((e) => e.line.seq));
    ords.push(...b.entries.map((e) => e.ord));
    s.acked(b);
  }
  return { seqs, ords };
}

test("lines spooled by one process are read back in order by the next; acked files are removed", () => {
  const dir = makeTempDir("cdktr-spool-");
  const a = spool(dir, 1000);
  a.open();
  a.write(range(30).map(entry), "back");
  assert.ok(readdirSync(dir).length > 1, "small files: the lines span several files");
  assert.ok(a.bytes > 0);

  const b = spool(dir);
  b.open();
  assert.equal(b.hasPrevious, true);
  const { seqs, ords } = drain(b);
  assert.deepEqual(seqs, range(30));
  assert.ok(
    ords.every((o) => o === 0),
    "ordinals of a previous process mean nothing here",
  );
  assert.equal(b.empty, true);
  assert.equal(b.hasPrevious, false);
  assert.equal(b.bytes, 0);
  assert.deepEqual(readdirSync(dir), []);
});

test("a write at the front goes before every file; this process's ordinals are kept", () => {
  const dir = makeTempDir("cdktr-spool-");
  const s = spool(dir);
  s.open();
  s.write(range(5, 6).map(entry), "back");
  s.write(range(5).map(entry), "front");
  const { seqs, ords } = drain(s, 3);
  assert.deepEqual(seqs, range(10));
  assert.deepEqual(ords, range(10));
});

test("a file being read back is never appended to: later lines go to a new file, after it", () => {
  const dir = makeTempDir("cdktr-spool-");
  const s = spool(dir);
  s.open();
  s.write(range(10).map(entry), "back");
  const first = s.nextBatch(4, 1e9);
  assert.ok(first !== null);
  s.write(range(5, 11).map(entry), "back");
  assert.equal(readdirSync(dir).length, 2);
  s.acked(first);
  const { seqs } = drain(s);
  assert.deepEqual([...first.entries.map((e) => e.line.seq), ...seqs], range(15));
  assert.deepEqual(readdirSync(dir), []);
});

test("lines put back after a refused batch are read again before the rest of their file", () => {
  const dir = makeTempDir("cdktr-spool-");
  const s = spool(dir);
  s.open();
  s.write(range(10).map(entry), "back");
  const batch = s.nextBatch(10, 1e9);
  assert.ok(batch !== null);
  s.putBack(batch, batch.entries.slice(5));
  const { seqs } = drain(s);
  assert.deepEqual(seqs, range(5, 6));
});

test("a torn last line (an agent killed mid-write) is skipped; the rest of the file is read", () => {
  const dir = makeTempDir("cdktr-spool-");
  const a = spool(dir);
  a.open();
  a.write(range(3).map(entry), "back");
  const [name] = readdirSync(dir);
  appendFileSync(join(dir, name as string), '{"o":4,"l":{"ti');
  const b = spool(dir);
  b.open();
  assert.deepEqual(drain(b).seqs, range(3));
  assert.deepEqual(readdirSync(dir), []);
});

test("a line's run token is written with it and read back by the next process; older lines without one still read", () => {
  const dir = makeTempDir("cdktr-spool-");
  const a = spool(dir);
  a.open();
  a.write([{ ...entry(1), token: "tok" }, entry(2)], "back");
  const b = spool(dir);
  b.open();
  const batch = b.nextBatch(10, 1e9);
  assert.deepEqual(
    batch?.entries.map((e) => [e.line.seq, e.token]),
    [
      [1, "tok"],
      [2, undefined],
    ],
  );
});

test("a spool directory that cannot be created: write holds nothing and says why; it works once the path is fixed", () => {
  const base = makeTempDir("cdktr-spool-");
  writeFileSync(join(base, "data"), "a file where the data directory should be");
  const dir = join(base, "data", "spool");
  const s = spool(dir);
  s.open(); // never throws
  assert.match(s.problem ?? "", /cannot write log spool .*data\/spool/);
  assert.equal(s.write(range(10).map(entry), "back"), 0, "nothing is held: the caller keeps the lines");
  assert.equal(s.empty, true);
  assert.equal(s.bytes, 0);
  rmSync(join(base, "data"));
  assert.equal(s.write(range(10).map(entry), "back"), 10);
  assert.equal(s.problem, null);
  assert.deepEqual(drain(s).seqs, range(10));
});

test("writes are fsynced once per file per turn, the directory once when a file is created", async () => {
  const calls: string[] = [];
  const sync = new SyncBatch({
    ops: { syncFile: (p) => calls.push(`file ${p}`), syncDir: (p) => calls.push(`dir ${p}`) },
    logger: noopLogger,
  });
  const dir = makeTempDir("cdktr-spool-");
  const s = new LogSpool({ dir, maxBytes: 1e9, fileBytes: 1e9, logger: noopLogger, sync });
  s.open();
  await sync.synced();
  calls.length = 0;
  // 5,000 lines in 50 writes during one turn: one fsync of the file, one of the directory.
  for (let w = 0; w < 50; w++) s.write(range(100, w * 100 + 1).map(entry), "back");
  assert.equal(calls.length, 0);
  await sync.synced();
  assert.equal(calls.filter((c) => c.startsWith("file ")).length, 1, calls.join(", "));
  assert.deepEqual(
    calls.filter((c) => c.startsWith("dir ")),
    [`dir ${dir}`],
  );
  assert.equal(drain(s, 5000).seqs.length, 5000);
});

test("full disk (tmpfs): write holds an exact prefix, leaves no torn line, and takes the rest once space returns", async (t) => {
  const mnt = mountTmpfs(t, 256 * 1024);
  if (mnt === null) return;
  const dir = join(mnt, "spool");
  const s = spool(dir, 64 * 1024);
  s.open();
  const all = range(5000).map((i) => {
    const e = entry(i);
    e.line.line = `line ${i} ${"x".repeat(100)}`;
    return e;
  });
  const held = s.write(all, "back");
  assert.ok(held > 0 && held < all.length, `a prefix is held (${held} of ${all.length})`);
  assert.match(s.problem ?? "", /^disk full: log spool/);
  // What the spool counts is exactly what is on disk, whole lines only.
  const again = spool(dir);
  again.open();
  assert.deepEqual(drain(again, 1e6).seqs, range(held), "the files hold exactly the prefix, no torn line");
  // The first spool's files were read and acked by the second: start over with what is left.
  const filler = fillDisk(mnt);
  const s2 = spool(dir, 64 * 1024);
  s2.open();
  assert.equal(s2.write(all.slice(held), "back"), 0, "the disk is full");
  rmSync(filler);
  s2.recheck();
  assert.equal(s2.problem, null, "room again");
  const rest = all.slice(held).slice(0, 500);
  assert.equal(s2.write(rest, "back"), rest.length);
  assert.deepEqual(drain(s2, 1e6).seqs, range(500, held + 1));
});

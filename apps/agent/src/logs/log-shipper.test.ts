import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CdktrError, noopLogger, type LogLine } from "@cdktr/protocol";
import { fillDisk, makeTempDir, mountTmpfs, removeTempDirs, waitFor } from "@cdktr/test-utils";
import type { LogSink } from "./log-shipper-options.js";
import { LogShipper } from "./log-shipper.js";

after(removeTempDirs);

function line(taskId: string, seq: number): LogLine {
  return {
    time: new Date().toISOString(),
    runId: "r1",
    workflowId: "wf",
    taskId,
    stream: "stdout",
    level: "info",
    seq,
    line: `line ${seq}`,
  };
}

/** A principal stand-in that stores batches, and can be made unreachable. */
function fakePrincipal(): { sink: LogSink; stored: LogLine[]; batches: number[]; down: boolean } {
  const p = {
    stored: [] as LogLine[],
    batches: [] as number[],
    down: false,
    sink: async (lines: LogLine[]) => {
      await new Promise((r) => setTimeout(r, 1));
      if (p.down) throw new CdktrError("UNAVAILABLE", "principal down");
      p.batches.push(lines.length);
      p.stored.push(...lines);
    },
  };
  return p;
}

const seqs = (lines: LogLine[]): number[] => lines.map((l) => l.seq);
const range = (n: number, from = 1): number[] => Array.from({ length: n }, (_, i) => i + from);

test("lines are delivered in order, in batches of at most maxBatchLines; whenAcked follows", async () => {
  const p = fakePrincipal();
  const s = new LogShipper({
    sink: p.sink,
    spoolDir: makeTempDir("cdktr-spool-"),
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    maxBatchLines: 100,
  });
  s.start();
  for (let i = 1; i <= 1000; i++) s.append(line("t", i));
  await s.whenAcked(s.mark());
  assert.deepEqual(seqs(p.stored), range(1000));
  assert.ok(p.batches.every((b) => b <= 100));
  await s.stop();
});

test("an outage spills to the spool; after reconnecting everything arrives once, in order", async () => {
  const p = fakePrincipal();
  p.down = true;
  const dir = makeTempDir("cdktr-spool-");
  const s = new LogShipper({
    sink: p.sink,
    spoolDir: dir,
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    retryBaseMs: 10,
    retryMaxMs: 50,
  });
  s.start();
  for (let i = 1; i <= 3000; i++) s.append(line("t", i));
  await waitFor(() => s.spoolBytes > 0, { timeoutMs: 5000, what: "spill" });
  assert.ok(readdirSync(dir).length > 0);
  for (let i = 3001; i <= 4000; i++) s.append(line("t", i));
  p.down = false;
  await s.whenAcked(s.mark());
  await waitFor(() => s.spoolBytes === 0, { timeoutMs: 5000, what: "spool drained" });
  assert.deepEqual(seqs(p.stored), range(4000));
  assert.deepEqual(readdirSync(dir), []);
  await s.stop();
});

test("at the spool cap producers are told to pause, and no line is dropped", async () => {
  const p = fakePrincipal();
  p.down = true;
  const s = new LogShipper({
    sink: p.sink,
    spoolDir: makeTempDir("cdktr-spool-"),
    spoolMaxBytes: 20_000,
    memoryHighBytes: 10_000,
    logger: noopLogger,
    retryBaseMs: 10,
    retryMaxMs: 20,
  });
  s.start();
  let n = 0;
  while (!s.shouldPause() && n < 100_000) s.append(line("t", ++n));
  // memory alone would pause at ~40 lines; keep appending while the loop spills
  await new Promise((r) => setTimeout(r, 200));
  while (!s.shouldPause() && n < 100_000) s.append(line("t", ++n));
  assert.ok(s.shouldPause(), "paused at the cap");
  assert.ok(s.spoolBytes <= 20_000);
  let resumed = false;
  void s.whenWritable().then(() => (resumed = true));
  p.down = false;
  await s.whenAcked(s.mark());
  assert.equal(resumed, true);
  assert.deepEqual(seqs(p.stored), range(n));
  await s.stop();
});

test("stop during an outage leaves the lines in the spool; the next shipper resends them first", async () => {
  const p = fakePrincipal();
  p.down = true;
  const dir = makeTempDir("cdktr-spool-");
  const a = new LogShipper({ sink: p.sink, spoolDir: dir, spoolMaxBytes: 1e9, logger: noopLogger, retryBaseMs: 10 });
  a.start();
  for (let i = 1; i <= 500; i++) a.append(line("t", i));
  await new Promise((r) => setTimeout(r, 100));
  await a.stop();
  assert.ok(readdirSync(dir).length > 0);
  p.down = false;
  const b = new LogShipper({ sink: p.sink, spoolDir: dir, spoolMaxBytes: 1e9, logger: noopLogger });
  b.start();
  for (let i = 501; i <= 600; i++) b.append(line("t", i));
  await b.whenAcked(b.mark());
  assert.ok(await b.flush(5000));
  assert.deepEqual(seqs(p.stored), range(600));
  assert.deepEqual(readdirSync(dir), []);
  await b.stop();
});

test("a batch the principal refuses for good is split to isolate the bad line", async () => {
  const stored: LogLine[] = [];
  const sink: LogSink = async (lines) => {
    if (lines.some((l) => l.seq === 7)) throw new CdktrError("BAD_REQUEST", "bad line");
    stored.push(...lines);
  };
  const s = new LogShipper({
    sink,
    spoolDir: makeTempDir("cdktr-spool-"),
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    lingerMs: 20,
  });
  s.start();
  for (let i = 1; i <= 20; i++) s.append(line("t", i));
  await s.whenAcked(s.mark());
  assert.deepEqual(
    seqs(stored),
    range(20).filter((x) => x !== 7),
  );
  await s.stop();
});

test("backpressure is per task: a noisy task is paused alone, a quiet one keeps going", async () => {
  // The principal is reachable but slow: the first batch is held until we let it through.
  let letThrough: () => void = () => {};
  let gate = new Promise<void>((r) => (letThrough = r));
  const stored: LogLine[] = [];
  const sink: LogSink = async (lines) => {
    await gate;
    stored.push(...lines);
  };
  const s = new LogShipper({
    sink,
    spoolDir: makeTempDir("cdktr-spool-"),
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    memoryHighBytes: 100_000,
    taskMemoryHighBytes: 10_000,
    lingerMs: 0,
  });
  s.start();
  const noisy = s.flowFor("r1", "noisy");
  const quiet = s.flowFor("r1", "quiet");
  let n = 0;
  while (!noisy.shouldPause() && n < 10_000) s.append(line("noisy", ++n));
  assert.ok(noisy.shouldPause(), "the noisy task is paused at its own cap");
  assert.ok(n < 100, `paused after ${n} lines (~10 kB)`);
  assert.equal(s.shouldPause(), false, "the shared cap is far away");
  for (let i = 1; i <= 20; i++) s.append(line("quiet", i));
  assert.equal(quiet.shouldPause(), false, "the quiet task is not paused by the noisy one");
  assert.ok(s.taskMemoryBytes("r1", "quiet") > 0);
  let resumed = false;
  void noisy.whenWritable().then(() => (resumed = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(resumed, false, "still paused while nothing is acknowledged");
  gate = Promise.resolve();
  letThrough();
  await s.whenAcked(s.mark());
  await waitFor(() => resumed, { timeoutMs: 5000, what: "noisy task resumed" });
  assert.equal(s.taskMemoryBytes("r1", "noisy"), 0);
  assert.equal(stored.length, n + 20);
  await s.stop();
});

test("at the shared cap (principal away, spool full) every task holding lines is paused", async () => {
  const p = fakePrincipal();
  p.down = true;
  const s = new LogShipper({
    sink: p.sink,
    spoolDir: makeTempDir("cdktr-spool-"),
    spoolMaxBytes: 5_000,
    memoryHighBytes: 20_000,
    taskMemoryHighBytes: 15_000,
    logger: noopLogger,
    retryBaseMs: 10,
    retryMaxMs: 20,
  });
  s.start();
  const a = s.flowFor("r1", "t");
  const b = s.flowFor("r1", "u");
  let na = 0;
  let nb = 0;
  // Wait for the spool to fill, then fill memory from both tasks up to the shared cap.
  while (s.spoolBytes < 4_500 && na < 10_000) {
    s.append(line("t", ++na));
    await new Promise((r) => setTimeout(r, 2));
  }
  while (!s.shouldPause() && na + nb < 10_000) {
    if (!a.shouldPause()) s.append(line("t", ++na));
    s.append(line("u", ++nb));
  }
  assert.ok(s.shouldPause(), "shared cap reached");
  assert.ok(a.shouldPause() && b.shouldPause(), "both tasks wait at the shared cap");
  assert.equal(
    s.flowFor("r1", "idle").shouldPause(),
    false,
    "a task with nothing in memory may still write its first lines",
  );
  p.down = false;
  await s.whenAcked(s.mark());
  assert.equal(a.shouldPause() || b.shouldPause(), false);
  const got = (task: string): number[] => p.stored.filter((l) => l.taskId === task).map((l) => l.seq);
  assert.deepEqual(got("t"), range(na));
  assert.deepEqual(got("u"), range(nb));
  await s.stop();
});

test("every batch carries the assignment token of each of its runs, also when resent from the spool by the next shipper", async () => {
  const dir = makeTempDir("cdktr-spool-");
  const sent: { lines: LogLine[]; tokens: Record<string, string> }[] = [];
  let down = true;
  const sink: LogSink = async (lines, tokens) => {
    if (down) throw new CdktrError("UNAVAILABLE", "principal down");
    sent.push({ lines, tokens });
  };
  const of = (runId: string, seq: number): LogLine => ({ ...line("t", seq), runId });
  const a = new LogShipper({ sink, spoolDir: dir, spoolMaxBytes: 1e9, logger: noopLogger, retryBaseMs: 10 });
  a.start();
  a.append(of("r1", 1), "token-1");
  a.append(of("r2", 1), "token-2");
  await new Promise((r) => setTimeout(r, 100));
  await a.stop();
  assert.equal(sent.length, 0, "nothing delivered while the principal is down");
  down = false;
  const b = new LogShipper({ sink, spoolDir: dir, spoolMaxBytes: 1e9, logger: noopLogger });
  b.start();
  b.append(of("r3", 1), "token-3");
  await b.whenAcked(b.mark());
  assert.ok(await b.flush(5000));
  const tokenOf = new Map<string, string | undefined>();
  for (const batch of sent) for (const l of batch.lines) tokenOf.set(l.runId, batch.tokens[l.runId]);
  assert.deepEqual(Object.fromEntries(tokenOf), { r1: "token-1", r2: "token-2", r3: "token-3" });
  await b.stop();
});

test("spool directory not creatable (file creation fails) during an outage: flush() is false, lines held, nothing lost", async () => {
  const p = fakePrincipal();
  p.down = true;
  const base = makeTempDir("cdktr-spool-");
  writeFileSync(join(base, "data"), "a file where the data directory should be");
  const s = new LogShipper({
    sink: p.sink,
    spoolDir: join(base, "data", "spool"),
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    maxBatchLines: 100,
    retryBaseMs: 10,
    retryMaxMs: 50,
  });
  s.start(); // does not throw
  for (let i = 1; i <= 2000; i++) s.append(line("t", i));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await s.flush(200), false, "flush() never claims lines it does not hold");
  assert.match(s.problem ?? "", /cannot write log spool/);
  assert.ok(s.memoryBytes > 0, "the lines the spool did not take are still in memory");
  p.down = false;
  assert.equal(await s.flush(10_000), true);
  assert.deepEqual(seqs(p.stored), range(2000), "every line once, in order");
  rmSync(join(base, "data"));
  assert.equal(s.problem, null, "the path is usable again");
  await s.stop();
});

test("full spool disk (tmpfs) during an outage: the task pauses, flush() is false, problem reported; all lines arrive once after", async (t) => {
  const mnt = mountTmpfs(t, 1024 * 1024);
  if (mnt === null) return;
  const p = fakePrincipal();
  p.down = true;
  const s = new LogShipper({
    sink: p.sink,
    spoolDir: join(mnt, "spool"),
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    retryBaseMs: 10,
    retryMaxMs: 50,
    memoryHighBytes: 4 * 1024 * 1024,
    spoolFileBytes: 128 * 1024,
  });
  s.start();
  const flow = s.flowFor("r1", "t");
  const N = 20_000;
  let written = 0;
  // A task writing as fast as backpressure lets it: it stops at the first pause.
  const writer = (async () => {
    while (written < N) {
      if (flow.shouldPause()) await flow.whenWritable();
      written++;
      const l = line("t", written);
      l.line = `line ${written} ${"y".repeat(80)}`;
      s.append(l);
      if (written % 100 === 0) await new Promise((r) => setImmediate(r));
    }
  })();
  await waitFor(() => s.problem?.startsWith("disk full: log spool") === true, { timeoutMs: 10_000, what: "disk full" });
  await new Promise((r) => setTimeout(r, 500));
  const stuckAt = written;
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(written, stuckAt, "the writer is paused (backpressure), not dropping");
  assert.ok(written < N, `paused before the end (${written} of ${N})`);
  assert.equal(await s.flush(100), false, "flush() never claims lines it does not hold");
  p.down = false;
  await writer;
  assert.equal(await s.flush(30_000), true);
  assert.deepEqual(seqs(p.stored), range(N), "every line exactly once, in order");
  assert.equal(s.problem, null, "cleared once the spool drained");
  await s.stop();
});

test("full spool disk with the principal still down: the spool takes lines again by itself when space returns", async (t) => {
  const mnt = mountTmpfs(t, 512 * 1024);
  if (mnt === null) return;
  const filler = fillDisk(mnt);
  const p = fakePrincipal();
  p.down = true;
  const s = new LogShipper({
    sink: p.sink,
    spoolDir: join(mnt, "spool"),
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    maxBatchLines: 100,
    retryBaseMs: 10,
    retryMaxMs: 50,
  });
  s.start();
  for (let i = 1; i <= 500; i++) s.append(line("t", i));
  await waitFor(() => s.problem !== null, { timeoutMs: 5000, what: "problem reported" });
  assert.ok(s.memoryBytes > 0);
  rmSync(filler);
  await waitFor(() => s.memoryBytes === 0 || s.spoolBytes > 0, {
    timeoutMs: 5000,
    what: "spooled after space returned",
  });
  await waitFor(() => s.problem === null, { timeoutMs: 5000, what: "problem cleared" });
  p.down = false;
  assert.equal(await s.flush(10_000), true);
  assert.deepEqual(seqs(p.stored), range(500));
  await s.stop();
});

test("whenDurable: lines only in memory keep it waiting; acknowledged or spooled (a failed send spools its batch) they resolve it", async () => {
  const p = fakePrincipal();
  let hold: () => void = () => undefined;
  const holding = { on: true };
  const s = new LogShipper({
    sink: async (lines, tokens) => {
      if (holding.on) await new Promise<void>((r) => (hold = r));
      await p.sink(lines, tokens);
    },
    spoolDir: makeTempDir("cdktr-spool-"),
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    lingerMs: 0,
  });
  s.start();
  for (let i = 1; i <= 10; i++) s.append(line("t", i));
  let durable = false;
  void s.whenDurable(s.mark()).then(() => (durable = true));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(durable, false, "in flight from memory: not durable");
  // The principal goes away: the failed batch goes to the spool, and is durable there.
  p.down = true;
  holding.on = false;
  hold();
  await waitFor(() => durable, { timeoutMs: 5000, what: "durable once spooled" });
  assert.ok(s.spoolBytes > 0, "the batch is in the spool");
  p.down = false;
  await s.whenAcked(s.mark());
  assert.deepEqual(seqs(p.stored), range(10), "sent once from the spool");
  // With the principal up, an acknowledgement makes lines durable.
  s.append(line("t", 11));
  await s.whenDurable(s.mark());
  assert.deepEqual(seqs(p.stored), range(11));
  await s.stop();
});

test("a batch the principal refuses as busy (RESOURCE_EXHAUSTED) is kept in memory and resent: every line arrives once, in order, nothing spooled", async () => {
  const stored: LogLine[] = [];
  let refusals = 0;
  let sends = 0;
  let spooled = 0;
  let wentOffline = false;
  const sink: LogSink = async (lines) => {
    await new Promise((r) => setTimeout(r, 1));
    spooled = Math.max(spooled, s.spoolBytes);
    if (!s.connected) wentOffline = true;
    // Every other send is refused, the first ten times.
    if (++sends % 2 === 1 && refusals < 10) {
      refusals++;
      throw new CdktrError("RESOURCE_EXHAUSTED", "agent has 20000 log lines waiting", { retryable: true });
    }
    stored.push(...lines);
  };
  const dir = makeTempDir("cdktr-spool-");
  const s = new LogShipper({
    sink,
    spoolDir: dir,
    spoolMaxBytes: 1e9,
    logger: noopLogger,
    maxBatchLines: 200,
    retryBaseMs: 1,
    retryMaxMs: 5,
  });
  s.start();
  for (let i = 1; i <= 3000; i++) s.append(line("t", i));
  await s.whenAcked(s.mark());
  assert.deepEqual(seqs(stored), range(3000));
  assert.equal(refusals, 10);
  assert.equal(s.refusedBatches, 10);
  assert.equal(wentOffline, false, "a busy principal is not an outage");
  assert.equal(spooled, 0, "nothing went to the spool");
  assert.deepEqual(readdirSync(dir), []);
  assert.equal(await s.flush(1000), true);
  await s.stop();
});

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CdktrError, noopLogger } from "@cdktr/protocol";
import { fillDisk, makeTempDir, mountTmpfs, removeTempDirs, waitFor } from "@cdktr/test-utils";
import { SyncBatch } from "../data-dir/sync-batch.js";
import { StatusOutbox } from "./status-outbox.js";
import type { StatusUpdate } from "./status-update.js";

after(removeTempDirs);

function update(runId: string, n: number): StatusUpdate {
  return {
    verb: "taskStatus",
    body: { agentId: "a", runId, taskId: `t${n}`, attempt: 1, status: "RUNNING", time: new Date(n).toISOString() },
  };
}

test("updates are delivered once each, in order, across an outage", async () => {
  const got: string[] = [];
  let down = true;
  const box = new StatusOutbox({
    dataDir: makeTempDir("cdktr-outbox-"),
    logger: noopLogger,
    retryBaseMs: 5,
    retryMaxMs: 20,
    sink: async (u) => {
      if (down) throw new CdktrError("UNAVAILABLE", "down");
      got.push((u.body as { taskId: string }).taskId);
    },
  });
  box.start();
  for (let i = 1; i <= 20; i++) box.push(update("r", i));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got, []);
  down = false;
  assert.ok(await box.flush(5000));
  assert.deepEqual(
    got,
    Array.from({ length: 20 }, (_, i) => `t${i + 1}`),
  );
  await box.stop();
});

test("undelivered updates survive the process: the next outbox on the data dir sends them first", async () => {
  const dir = makeTempDir("cdktr-outbox-");
  const a = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    retryBaseMs: 5,
    sink: async () => {
      throw new CdktrError("TIMEOUT", "t");
    },
  });
  a.start();
  a.push(update("r", 1));
  a.push(update("r", 2));
  await a.stop();
  assert.ok(existsSync(join(dir, "outbox.json")));
  const got: string[] = [];
  const b = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    sink: async (u) => void got.push((u.body as { taskId: string }).taskId),
  });
  b.start();
  b.push(update("r", 3));
  assert.ok(await b.flush(5000));
  assert.deepEqual(got, ["t1", "t2", "t3"]);
  assert.equal(existsSync(join(dir, "outbox.json")), false);
  await b.stop();
});

test("a refused update is dropped; AGENT_NOT_REGISTERED triggers re-registration and a resend; log barrier respected", async () => {
  const got: string[] = [];
  let registered = false;
  let reregistered = 0;
  let logsAcked = false;
  const box = new StatusOutbox({
    dataDir: makeTempDir("cdktr-outbox-"),
    logger: noopLogger,
    retryBaseMs: 5,
    onNotRegistered: () => {
      reregistered++;
      registered = true;
    },
    whenLogsAcked: () => waitFor(() => logsAcked, { timeoutMs: 5000 }).then(() => undefined),
    sink: async (u) => {
      const id = (u.body as { taskId: string }).taskId;
      if (id === "t1") throw new CdktrError("INVALID_TRANSITION", "no");
      if (!registered) throw new CdktrError("AGENT_NOT_REGISTERED", "who?");
      got.push(id);
    },
  });
  box.start();
  box.push(update("r", 1));
  box.push(update("r", 2));
  box.push(update("r", 3), { afterLogMark: 10 });
  await waitFor(() => got.length === 1, { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got, ["t2"], "t3 waits for its log lines");
  logsAcked = true;
  assert.ok(await box.flush(5000));
  assert.deepEqual(got, ["t2", "t3"]);
  assert.equal(reregistered, 1);
  await box.stop();
});

/** An outbox whose principal is down: every send fails (retryable). */
function downOutbox(dataDir: string, extra: { sync?: SyncBatch } = {}): StatusOutbox {
  return new StatusOutbox({
    dataDir,
    logger: noopLogger,
    retryBaseMs: 5,
    retryMaxMs: 20,
    rewriteMs: 20,
    ...extra,
    sink: async () => {
      throw new CdktrError("UNAVAILABLE", "down");
    },
  });
}

/** The task ids the next agent process delivers from `dataDir`. */
async function deliveredByNext(dataDir: string): Promise<string[]> {
  const got: string[] = [];
  const b = new StatusOutbox({
    dataDir,
    logger: noopLogger,
    sink: async (u) => void got.push((u.body as { taskId: string }).taskId),
  });
  b.start();
  assert.ok(await b.flush(5000));
  await b.stop();
  return got;
}

test("journal not writable: the problem is reported, and the updates are written in order once it is", async () => {
  const dir = makeTempDir("cdktr-outbox-");
  mkdirSync(join(dir, "outbox.json")); // opening it for append fails (EISDIR)
  const box = downOutbox(dir);
  box.start();
  for (let i = 1; i <= 5; i++) box.push(update("r", i));
  assert.match(box.problem ?? "", /^cannot write status outbox/);
  assert.equal(box.pending, 5, "still delivered from memory");
  rmSync(join(dir, "outbox.json"), { recursive: true });
  await waitFor(() => box.problem === null, { timeoutMs: 5000, what: "journal written again" });
  box.push(update("r", 6));
  await box.stop();
  assert.deepEqual(await deliveredByNext(dir), ["t1", "t2", "t3", "t4", "t5", "t6"]);
});

test("journal writes are fsynced once per turn (file and directory), not per update", async () => {
  const calls: string[] = [];
  const sync = new SyncBatch({
    ops: { syncFile: (p) => calls.push(`file ${p}`), syncDir: (p) => calls.push(`dir ${p}`) },
    logger: noopLogger,
  });
  const dir = makeTempDir("cdktr-outbox-");
  const box = downOutbox(dir, { sync });
  box.start();
  await sync.synced();
  calls.length = 0;
  for (let i = 1; i <= 200; i++) box.push(update(`r${i}`, i));
  await sync.synced();
  assert.deepEqual(calls, [`file ${join(dir, "outbox.json")}`, `dir ${dir}`]);
  await box.stop();
});

test("full disk (tmpfs): a torn journal line is cut back; once space returns every update is on disk, in order", async (t) => {
  const mnt = mountTmpfs(t, 256 * 1024);
  if (mnt === null) return;
  const dir = join(mnt, "agent");
  mkdirSync(dir);
  const box = downOutbox(dir);
  box.start();
  box.push(update("r", 1));
  const filler = fillDisk(mnt);
  // Large enough to fill the rest of the journal's last page and fail half way.
  const big = update("r", 2);
  (big.body as { message?: string }).message = "m".repeat(20_000);
  box.push(big);
  box.push(update("r", 3));
  assert.match(box.problem ?? "", /^disk full: status outbox/);
  const text = readFileSync(join(dir, "outbox.json"), "utf8");
  assert.ok(text.endsWith("\n"), "no torn line left in the journal");
  rmSync(filler);
  await waitFor(() => box.problem === null, { timeoutMs: 5000, what: "journal written again" });
  await box.stop();
  assert.deepEqual(await deliveredByNext(dir), ["t1", "t2", "t3"]);
});

test("an update waiting on log lines is journaled only once they are durable: a crash before leaves no final status on disk", async () => {
  const dir = makeTempDir("cdktr-outbox-");
  let makeDurable: () => void = () => undefined;
  const durable = new Promise<void>((resolve) => {
    makeDurable = resolve;
  });
  const a = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    retryBaseMs: 5,
    sink: async () => {
      throw new CdktrError("TIMEOUT", "principal away");
    },
    whenLogsAcked: () => new Promise(() => undefined),
    whenLogsDurable: () => durable,
  });
  a.start();
  a.push(update("r", 1));
  const completed: StatusUpdate = {
    verb: "taskStatus",
    body: { agentId: "a", runId: "r", taskId: "t2", attempt: 1, status: "COMPLETED", time: new Date(2).toISOString() },
  };
  a.push(completed, { afterLogMark: 7 });
  await new Promise((r) => setTimeout(r, 50));
  // What a kill -9 now would leave: the RUNNING update only.
  const journal = (): string[] =>
    readFileSync(join(dir, "outbox.json"), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => (JSON.parse(l) as { u?: { body: { status: string } } }).u?.body.status ?? "d");
  assert.deepEqual(journal(), ["RUNNING"]);
  makeDurable();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(journal(), ["RUNNING", "COMPLETED"]);
  await a.stop();
});

test("full disk (tmpfs): not writable from the first failed write until space returns, even once every update was delivered", async (t) => {
  const mnt = mountTmpfs(t, 256 * 1024);
  if (mnt === null) return;
  const dir = join(mnt, "agent");
  mkdirSync(dir);
  const got: string[] = [];
  let writableAgain = 0;
  const box = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    rewriteMs: 20,
    sink: async (u) => {
      got.push((u.body as { taskId: string }).taskId);
    },
    onWritable: () => writableAgain++,
  });
  box.start();
  assert.equal(box.writable, true);
  const filler = fillDisk(mnt);
  box.push(update("r", 1));
  assert.equal(box.writable, false, "the journal line could not be written");
  let resumed = false;
  void box.whenWritable().then(() => (resumed = true));
  // Delivered from memory: nothing is pending, and still the disk is full.
  assert.ok(await box.flush(5000));
  assert.deepEqual(got, ["t1"]);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(box.writable, false, "a problem stays while the disk has no room (no flapping)");
  assert.match(box.problem ?? "", /^disk full: status outbox .*task output is paused and no new work is taken/);
  assert.equal(resumed, false);
  rmSync(filler);
  await waitFor(() => resumed, { timeoutMs: 5000, what: "whenWritable resolved once space returned" });
  assert.equal(box.writable, true);
  assert.equal(box.problem, null);
  assert.equal(writableAgain, 1);
  await box.stop();
});

test("whenWritable resolves at stop even while the journal cannot be written", async (t) => {
  const mnt = mountTmpfs(t, 256 * 1024);
  if (mnt === null) return;
  const dir = join(mnt, "agent");
  mkdirSync(dir);
  const box = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    rewriteMs: 20,
    sink: async () => {
      throw new CdktrError("TIMEOUT", "principal away");
    },
  });
  box.start();
  const filler = fillDisk(mnt);
  box.push(update("r", 1));
  assert.equal(box.writable, false);
  const waiting = box.whenWritable();
  await box.stop();
  await waiting;
  rmSync(filler);
});

const confirm = (runId: string): StatusUpdate => ({
  verb: "confirmAssignment",
  body: { agentId: "a", runId, token: `s1.sess-0001.1.${runId}` },
});

test("run starts left by a previous process are listed, never delivered, and dropped once the principal was told", async () => {
  const dir = makeTempDir("cdktr-outbox-");
  const a = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    retryBaseMs: 5,
    sink: async () => {
      throw new CdktrError("UNAVAILABLE", "down");
    },
  });
  a.start();
  a.push(confirm("r-started"));
  a.push(update("r-started", 1));
  a.push(confirm("r-other"));
  // A start taken back in the same turn is not a start: its journal line is cancelled.
  const retracted = a.push(confirm("r-retracted"));
  assert.equal(a.retract(retracted), true);
  await a.stop();

  const sent: StatusUpdate[] = [];
  const b = new StatusOutbox({ dataDir: dir, logger: noopLogger, sink: async (u) => void sent.push(u) });
  b.start();
  assert.equal(b.loadedAll, true);
  assert.deepEqual(b.previousStarts(), ["r-started", "r-other"]);
  // The other updates go out (the run's own start does not hold them back).
  await waitFor(() => sent.length === 1, { timeoutMs: 5000, what: "the task update delivered" });
  assert.deepEqual(
    sent.map((u) => u.verb),
    ["taskStatus"],
  );
  assert.ok(await b.flush(1000), "held starts do not count as undelivered");
  assert.ok(existsSync(join(dir, "outbox.json")), "kept until the principal was told");
  b.forgetPreviousStarts();
  assert.deepEqual(b.previousStarts(), []);
  assert.ok(!existsSync(join(dir, "outbox.json")), "nothing left");
  await b.stop();
  assert.deepEqual(
    sent.map((u) => u.verb),
    ["taskStatus"],
    "no start of a previous process was ever sent",
  );
});

test("a refused start calls onRefused; an unreadable journal is reported (loadedAll false)", async () => {
  const dir = makeTempDir("cdktr-outbox-");
  const refused: string[] = [];
  const box = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    sink: async () => {
      throw new CdktrError("STALE_ASSIGNMENT", "cancelled meanwhile");
    },
  });
  box.start();
  box.push(confirm("r1"), { onRefused: (e) => refused.push(e.code) });
  assert.ok(await box.flush(5000));
  assert.deepEqual(refused, ["STALE_ASSIGNMENT"]);
  await box.stop();

  mkdirSync(join(dir, "outbox.json")); // a directory: exists, cannot be read as a file
  const next = new StatusOutbox({ dataDir: dir, logger: noopLogger, sink: async () => {} });
  next.start();
  assert.equal(next.loadedAll, false);
  assert.deepEqual(next.previousStarts(), []);
  await next.stop();
  rmSync(join(dir, "outbox.json"), { recursive: true });
});

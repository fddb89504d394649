import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { isCdktrError, type LogLine } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { ManualClock } from "@cdktr/protocol";
import { UlidGenerator } from "../../ids.js";
import { definition } from "../../test/workflow-fixture.js";
import { MIGRATIONS } from "./migrations.js";
import { SqliteStore } from "./sqlite-store.js";

after(() => removeTempDirs());

function open(clock = new ManualClock()): { store: SqliteStore; path: string; clock: ManualClock; ids: UlidGenerator } {
  const path = join(makeTempDir(), "nested", "cdktr.db");
  return { store: SqliteStore.open({ path, clock }), path, clock, ids: new UlidGenerator(clock) };
}

const wf = definition("wf");
const base = {
  params: {},
  requestParams: {},
  source: "test",
  scheduledFor: null,
  idempotencyScope: "",
  triggeredBy: null,
};

describe("SqliteStore", () => {
  it("migrates once (schema_version) and reopens an existing file", async () => {
    const { store, path } = open();
    await store.close();
    const again = SqliteStore.open({ path });
    await again.close();
    const db = new Database(path, { readonly: true });
    assert.deepEqual(db.prepare("SELECT version FROM schema_version").all(), [{ version: MIGRATIONS.length }]);
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    db.close();
  });

  it("group commit: same-tick triggers with one key dedupe inside the batch; a refused command does not undo the others", async () => {
    const { store, ids } = open();
    const a = ids.next();
    const results = await Promise.allSettled([
      store.createRun({ ...base, runId: a, workflow: wf, idempotencyKey: "k" }),
      store.createRun({ ...base, runId: ids.next(), workflow: wf, idempotencyKey: "k" }),
      store.createRun({ ...base, runId: ids.next(), workflow: wf, idempotencyKey: "k", requestParams: { x: 1 } }),
      store.createRun({ ...base, runId: ids.next(), workflow: wf, idempotencyKey: "other" }),
    ]);
    const [r1, r2, r3, r4] = results;
    assert.ok(r1?.status === "fulfilled" && r1.value.duplicate === false && r1.value.run.runId === a);
    assert.ok(r2?.status === "fulfilled" && r2.value.duplicate === true && r2.value.run.runId === a);
    assert.ok(r3?.status === "rejected" && isCdktrError(r3.reason, "IDEMPOTENCY_CONFLICT"));
    assert.ok(r4?.status === "fulfilled" && r4.value.duplicate === false);
    const counts = await store.counts();
    assert.equal(counts.runs, 2);
    assert.equal(counts.idempotency_keys, 2);
    await store.close();
  });

  it("assigning a run whose lease ran out but whose expiry was never stored (a failed commit) expires it first", async () => {
    const { store, ids, clock } = open();
    const runId = ids.next();
    await store.createRun({ ...base, runId, workflow: wf, idempotencyKey: null });
    assert.ok(await store.assignRun(runId, "ag", "tok", clock.now() + 1000, null));
    // The dispatcher put it back in its queue when the lease ran out, but that expiry was not stored.
    await clock.advance(1001);
    const again = await store.assignRun(runId, "ag2", "tok2", clock.now() + 1000, null);
    assert.equal(again?.status, "ASSIGNED");
    assert.equal(again?.agentId, "ag2");
    await assert.rejects(store.confirmAssignment(runId, "ag", "tok", ["only"], null), (e: unknown) =>
      isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    assert.equal((await store.confirmAssignment(runId, "ag2", "tok2", ["only"], null)).run.status, "RUNNING");
    await store.close();
  });

  it("the history table is an append-only record of every transition, including refused late reports", async () => {
    const { store, ids, clock } = open();
    const runId = ids.next();
    await store.createRun({ ...base, runId, workflow: wf, idempotencyKey: null });
    assert.ok(await store.assignRun(runId, "ag", "tok", clock.now() + 1000, null));
    assert.equal(
      await store.assignRun(runId, "ag2", "tok2", clock.now() + 1000, null),
      null,
      "only a QUEUED run can be assigned",
    );
    await assert.rejects(store.confirmAssignment(runId, "ag", "wrong", ["only"], null), (e: unknown) =>
      isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    const { run, tasks } = await store.confirmAssignment(runId, "ag", "tok", ["only"], null);
    assert.equal(run.status, "RUNNING");
    assert.deepEqual(
      tasks.map((t) => t.status),
      ["PENDING"],
    );
    const crash = await store.crashRun(runId, "agent_lost", "gone", null);
    assert.equal(crash?.run.status, "CRASHED");
    assert.deepEqual(
      crash?.tasks.map((t) => t.status),
      ["CRASHED"],
    );
    const late = await store.updateRunStatus(
      {
        agentId: "ag",
        runId,
        status: "COMPLETED",
        time: new Date(clock.now()).toISOString(),
      },
      null,
    );
    assert.equal(late.applied, false);
    assert.equal(late.run.status, "CRASHED");
    await store.close();
    const { path } = { path: (store as unknown as { path: string }).path };
    const db = new Database(path, { readonly: true });
    const rows = db
      .prepare("SELECT from_status, to_status, applied FROM status_history WHERE task_id IS NULL ORDER BY id")
      .all();
    assert.deepEqual(rows, [
      { from_status: null, to_status: "QUEUED", applied: 1 },
      { from_status: "QUEUED", to_status: "ASSIGNED", applied: 1 },
      { from_status: "ASSIGNED", to_status: "RUNNING", applied: 1 },
      { from_status: "RUNNING", to_status: "CRASHED", applied: 1 },
      { from_status: "CRASHED", to_status: "COMPLETED", applied: 0 },
    ]);
    db.close();
  });

  it("retention deletes finished runs with their tasks, history, logs and keys; keys also expire on their own", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const { store, ids } = open(clock);
    const day = 86_400_000;
    const oldRun = ids.next();
    await store.createRun({ ...base, runId: oldRun, workflow: wf, idempotencyKey: "old" });
    await store.cancelRun(oldRun);
    const line = (runId: string, seq: number): LogLine => ({
      time: new Date(clock.now()).toISOString(),
      runId,
      workflowId: "wf",
      taskId: "only",
      stream: "stdout",
      level: "info",
      seq,
      line: "x",
    });
    await store.insertLogs([line(oldRun, 1)], null);
    await clock.advance(10 * day);
    const activeRun = ids.next();
    await store.createRun({ ...base, runId: activeRun, workflow: wf, idempotencyKey: "recent" });
    await store.insertLogs([line(activeRun, 1)], null);
    await clock.advance(25 * day); // old run finished 35 days ago, the active one was created 25 days ago
    const pruned = await store.prune({ runDays: 30, logDays: 30, idempotencyDays: 7 });
    assert.deepEqual(pruned, { runs: 1, logs: 1, idempotencyKeys: 2 });
    assert.equal(await store.getRun(oldRun), null);
    assert.equal((await store.getRun(activeRun))?.run.status, "QUEUED", "active runs are never pruned");
    const counts = await store.counts();
    assert.equal(counts.logs, 1);
    assert.equal(counts.status_history, 1);
    await store.close();
  });

  it("each run keeps the definition it was triggered with, even for two files with identical text", async () => {
    const { store, ids } = open();
    const a = definition("same");
    const b = { ...a, id: "copy", path: "copy.yml" };
    const v2 = definition("same", "description: v2");
    for (const wf of [a, b, v2])
      await store.createRun({ ...base, runId: ids.next(), workflow: wf, idempotencyKey: null });
    const active = await store.loadActiveRuns();
    assert.deepEqual(
      active.map((x) => [x.run.workflowId, x.workflow.id, x.workflow.description]),
      [
        ["same", "same", null],
        ["copy", "copy", null],
        ["same", "same", "v2"],
      ],
    );
    await store.close();
  });

  it("listRuns and queryLogs page with opaque cursors in the read worker; a bad cursor is BAD_REQUEST", async () => {
    const { store, ids } = open();
    const created: string[] = [];
    for (let i = 0; i < 25; i++) {
      const runId = ids.next();
      created.push(runId);
      await store.createRun({
        ...base,
        runId,
        workflow: wf,
        idempotencyKey: null,
        source: i % 2 === 0 ? "even" : "odd",
      });
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.listRuns({ limit: 10, ...(cursor === undefined ? {} : { cursor }) });
      seen.push(...page.runs.map((r) => r.runId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    assert.deepEqual(seen, [...created].reverse(), "newest first by default");
    const odd = await store.listRuns({ source: "odd", order: "asc", limit: 1000 });
    assert.equal(odd.runs.length, 12);
    await assert.rejects(store.listRuns({ cursor: "garbage!" }), (e: unknown) => isCdktrError(e, "BAD_REQUEST"));
    await assert.rejects(store.queryLogs({ cursor: "WyJ4Il0" }), (e: unknown) => isCdktrError(e, "BAD_REQUEST"));
    await store.close();
  });

  it("a version-1 database migrates: its idempotency keys move to the unauthenticated scope '', runs gain triggered_by and lease_key", async () => {
    const path = join(makeTempDir(), "v1.db");
    const v1 = new Database(path);
    v1.exec(MIGRATIONS[0] ?? "");
    v1.exec("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)");
    v1.prepare("INSERT INTO workflow_snapshots VALUES (?, ?, ?, 0)").run("wf@h", "wf", JSON.stringify(wf));
    v1.prepare(
      "INSERT INTO runs (run_id, workflow_id, workflow_hash, status, source, idempotency_key, params, created_at, updated_at) VALUES ('r0', 'wf', 'wf@h', 'QUEUED', 'old', 'k', '{}', 0, 0)",
    ).run();
    v1.prepare("INSERT INTO idempotency_keys VALUES ('k', 'r0', 'wf', '{}', 0)").run();
    v1.close();
    const clock = new ManualClock();
    const store = SqliteStore.open({ path, clock });
    const ids = new UlidGenerator(clock);
    const old = await store.getRun("r0");
    assert.equal(old?.run.triggeredBy, null);
    const again = await store.createRun({ ...base, runId: ids.next(), workflow: wf, idempotencyKey: "k" });
    assert.deepEqual(
      [again.duplicate, again.run.runId],
      [true, "r0"],
      "the old key still dedupes unauthenticated triggers",
    );
    const scoped = await store.createRun({
      ...base,
      runId: ids.next(),
      workflow: wf,
      idempotencyKey: "k",
      idempotencyScope: "ops",
      triggeredBy: "ops",
    });
    assert.equal(scoped.duplicate, false, "another scope, another run");
    assert.equal(scoped.run.triggeredBy, "ops");
    await store.close();
  });

  it("idempotency keys are per scope; a run records who triggered it and a requeue keeps it", async () => {
    const { store, ids } = open();
    const trig = (scope: string, by: string | null) =>
      store.createRun({
        ...base,
        runId: ids.next(),
        workflow: wf,
        idempotencyKey: "same",
        idempotencyScope: scope,
        triggeredBy: by,
      });
    const a = await trig("sched", "sched-1");
    const b = await trig("sched", "sched-2");
    const c = await trig("hooks", "hook-1");
    assert.deepEqual([a.duplicate, b.duplicate, c.duplicate], [false, true, false]);
    assert.equal(b.run.runId, a.run.runId, "two keys of one scope dedupe");
    assert.equal(a.run.triggeredBy, "sched-1");
    assert.equal(b.run.triggeredBy, "sched-1", "the duplicate is the first run");
    await store.assignRun(a.run.runId, "ag", "tok", Date.now() + 10_000, "local-agent");
    await store.confirmAssignment(a.run.runId, "ag", "tok", ["only"], "local-agent");
    const crash = await store.crashRun(a.run.runId, "agent_lost", "gone", ids.next());
    assert.equal(crash?.requeued?.triggeredBy, "sched-1");
    const mine = await store.listRuns({}, { triggeredBy: "hook-1" });
    assert.deepEqual(
      mine.runs.map((r) => r.runId),
      [c.run.runId],
    );
    await store.close();
  });

  it("a run's lease belongs to the key that fetched it: reports need that key and the run's token, also after the run ended", async () => {
    const { store, ids, clock } = open();
    const runId = ids.next();
    await store.createRun({ ...base, runId, workflow: wf, idempotencyKey: null });
    await store.assignRun(runId, "ag", "tok", clock.now() + 10_000, "agent-a");
    await assert.rejects(store.confirmAssignment(runId, "ag", "tok", ["only"], "agent-b"), (e: unknown) =>
      isCdktrError(e, "PERMISSION_DENIED"),
    );
    await store.confirmAssignment(runId, "ag", "tok", ["only"], "agent-a");
    const time = new Date(clock.now()).toISOString();
    const task = { agentId: "ag", runId, taskId: "only", attempt: 1, status: "RUNNING" as const, time };
    await assert.rejects(
      store.updateTaskStatus({ ...task, token: "tok" }, { keyName: "agent-b", token: "tok" }),
      (e: unknown) => isCdktrError(e, "PERMISSION_DENIED"),
    );
    await assert.rejects(store.updateTaskStatus(task, { keyName: "agent-a", token: undefined }), (e: unknown) =>
      isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    await assert.rejects(store.updateTaskStatus(task, { keyName: "agent-a", token: "old" }), (e: unknown) =>
      isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    assert.equal((await store.updateTaskStatus(task, { keyName: "agent-a", token: "tok" })).applied, true);
    const line: LogLine = {
      time,
      runId,
      workflowId: "wf",
      taskId: "only",
      stream: "stdout",
      level: "info",
      seq: 1,
      line: "x",
    };
    await assert.rejects(store.insertLogs([line], { keyName: "agent-b", tokens: { [runId]: "tok" } }), (e: unknown) =>
      isCdktrError(e, "PERMISSION_DENIED"),
    );
    await assert.rejects(store.insertLogs([line], { keyName: "agent-a", tokens: {} }), (e: unknown) =>
      isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    await assert.rejects(
      store.insertLogs([{ ...line, workflowId: "other" }], { keyName: "agent-a", tokens: { [runId]: "tok" } }),
      (e: unknown) => isCdktrError(e, "PERMISSION_DENIED"),
    );
    await assert.rejects(
      store.insertLogs([line, { ...line, runId: "nope" }], {
        keyName: "agent-a",
        tokens: { [runId]: "tok", nope: "tok" },
      }),
      (e: unknown) => isCdktrError(e, "RUN_NOT_FOUND"),
    );
    assert.equal((await store.counts()).logs, 0, "a refused batch stores nothing, not even its good lines");
    assert.equal((await store.insertLogs([line], { keyName: "agent-a", tokens: { [runId]: "tok" } })).stored, 1);
    const done = { agentId: "ag", runId, status: "COMPLETED" as const, time };
    assert.equal((await store.updateRunStatus(done, { keyName: "agent-a", token: "tok" })).applied, true);
    const late = await store.insertLogs([{ ...line, seq: 2 }], { keyName: "agent-a", tokens: { [runId]: "tok" } });
    assert.equal(late.stored, 1, "the token still checks after the run ended (spooled lines)");
    await store.close();
  });

  it("keys: enrol (a resend is a no-op), names unique among keys not revoked, a revoked pair never again, list and revoke", async () => {
    const { store } = open();
    const k = (name: string, publicKey: string, role: "agent" | "trigger" = "agent") => ({
      name,
      role,
      scope: name,
      workflows: null,
      publicKey,
    });
    const pk = (c: string) => c.repeat(40);
    const first = await store.enrollKey(k("a", pk("A")));
    assert.equal(first.created, true);
    assert.deepEqual(await store.enrollKey(k("a", pk("A"))), { key: first.key, created: false });
    await assert.rejects(store.enrollKey(k("a", pk("B"))), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
    await assert.rejects(store.enrollKey(k("a", pk("A"), "trigger")), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
    await assert.rejects(store.enrollKey(k("b", pk("A"))), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
    const revoked = await store.revokeKey("a");
    assert.equal(revoked?.revoked, true);
    assert.ok(revoked?.key.revokedAt !== null);
    assert.equal((await store.revokeKey("a"))?.revoked, false, "idempotent");
    assert.equal(await store.revokeKey("nobody"), null);
    await assert.rejects(store.enrollKey(k("a", pk("A"))), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
    await assert.rejects(store.enrollKey(k("c", pk("A"))), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
    const reused = await store.enrollKey(k("a", pk("C")));
    assert.deepEqual([reused.created, reused.key.revokedAt, reused.key.publicKey], [true, null, pk("C")]);
    await store.enrollKey({ ...k("t", pk("D"), "trigger"), scope: "hooks", workflows: ["etl"] });
    const listed = await store.listKeys();
    assert.deepEqual(
      listed.map((x) => [x.name, x.role, x.scope, x.workflows, x.revokedAt === null]),
      [
        ["a", "agent", "a", null, true],
        ["t", "trigger", "hooks", ["etl"], true],
      ],
    );
    assert.ok(listed.every((x) => !("secretKey" in x)));
    await store.close();
  });
});

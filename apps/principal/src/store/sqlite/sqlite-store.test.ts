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
});

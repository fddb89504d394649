import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
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

// What every store must do is the store contract (src/test/store-contract/, run against SQLite and
// PostgreSQL); here only what is SQLite's own: the file, WAL, and migrations of old files.
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
});

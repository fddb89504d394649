import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { ManualClock } from "@cdktr/protocol";
import { UlidGenerator } from "../../ids.js";
import { definition } from "../../test/workflow-fixture.js";
import { LOG_MIGRATIONS, logDatabasePath } from "./log-database.js";
import { LOGS_MOVED_VERSION, MIGRATIONS } from "./migrations.js";
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
    assert.deepEqual(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'logs'").get(), { n: 0 });
    db.close();
    const logs = new Database(logDatabasePath(path), { readonly: true });
    assert.deepEqual(logs.prepare("SELECT version FROM schema_version").all(), [{ version: LOG_MIGRATIONS.length }]);
    assert.equal(logs.pragma("journal_mode", { simple: true }), "wal");
    logs.close();
  });

  it("a log database written by a newer principal is refused, naming that file and what to do", () => {
    const path = join(makeTempDir(), "cdktr.db");
    const future = new Database(logDatabasePath(path));
    future.exec("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (99)");
    future.close();
    assert.throws(
      () => SqliteStore.open({ path }),
      (e: unknown) =>
        e instanceof Error &&
        (e as { code?: unknown }).code === "SCHEMA_TOO_NEW" &&
        e.message.includes(logDatabasePath(path)) &&
        /upgrade cdktr or use another CDKTR_DB_PATH/.test(e.message),
    );
  });

  it("the log database sits beside the main file: cdktr.db -> cdktr.logs.db, db -> db.logs", () => {
    assert.equal(logDatabasePath("/d/cdktr.db"), "/d/cdktr.logs.db");
    assert.equal(logDatabasePath("/d/x.y/db"), "/d/x.y/db.logs");
    assert.equal(logDatabasePath("state.sqlite3"), "state.logs.sqlite3");
  });

  it("a version-2 database's log lines move to the log database, ids kept; a copy interrupted before the drop is not duplicated", async () => {
    const path = join(makeTempDir(), "v2.db");
    const v2 = new Database(path);
    v2.exec("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (2)");
    for (const m of MIGRATIONS.slice(0, LOGS_MOVED_VERSION - 1)) v2.exec(m);
    const ins = v2.prepare(
      "INSERT INTO logs (id, run_id, workflow_id, task_id, seq, time, level, stream, line) VALUES (?, 'r0', 'wf', 't', ?, 0, 1, 'stdout', ?)",
    );
    for (let i = 1; i <= 3000; i++) ins.run(i * 2, i, `line ${i}`);
    v2.close();
    // A principal stopped after the copy, before the drop: the log database already holds some.
    const partial = new Database(logDatabasePath(path));
    partial.exec("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)");
    partial.exec(LOG_MIGRATIONS[0] ?? "");
    partial
      .prepare(
        "INSERT INTO logs (id, run_id, workflow_id, task_id, seq, time, level, stream, line) VALUES (2, 'r0', 'wf', 't', 1, 0, 1, 'stdout', 'line 1')",
      )
      .run();
    partial.close();

    const store = SqliteStore.open({ path, clock: new ManualClock() });
    const page = await store.queryLogs({ runId: "r0", limit: 5000 });
    assert.equal(page.lines.length, 3000);
    assert.deepEqual(
      page.lines.slice(0, 2).map((l) => [l.seq, l.line]),
      [
        [1, "line 1"],
        [2, "line 2"],
      ],
    );
    assert.equal((await store.counts()).logs, 3000);
    await store.close();
    const main = new Database(path, { readonly: true });
    assert.deepEqual(main.prepare("SELECT version FROM schema_version").all(), [{ version: MIGRATIONS.length }]);
    assert.deepEqual(main.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'logs'").get(), { n: 0 });
    main.close();
    const logs = new Database(logDatabasePath(path), { readonly: true });
    const ids = logs.prepare("SELECT min(id) AS lo, max(id) AS hi FROM logs").get() as { lo: number; hi: number };
    assert.deepEqual([ids.lo, ids.hi], [2, 6000], "ids kept");
    logs.close();
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

/**
 * What is PostgreSQL's own in the PostgreSQL store (the shared behaviour is the store contract,
 * src/test/store-contract/): migrations when two principals start at once, one transaction per
 * event-loop turn, lanes on their own connections, and a database that goes away and comes back.
 * Real server on 127.0.0.1:5432; skips without it, fails with `CI` set.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { ManualClock, isCdktrError } from "@cdktr/protocol";
import { CuttableProxy, waitFor } from "@cdktr/test-utils";
import { UlidGenerator } from "../../ids.js";
import { PgTestSchema, PG_TEST_URL, requirePostgres } from "../../test/store-contract/harness.js";
import { baseTrigger, logLine } from "../../test/store-contract/contract.js";
import { definition } from "../../test/workflow-fixture.js";
import { PG_MIGRATIONS } from "./migrations.js";
import { PostgresStore } from "./postgres-store.js";

const wf = definition("wf");

describe("PostgresStore", async () => {
  const skip = await requirePostgres();
  const opts = { skip: skip ?? false };
  const schemas: PgTestSchema[] = [];
  const newSchema = async (): Promise<PgTestSchema> => {
    const s = new PgTestSchema();
    schemas.push(s);
    await s.create();
    return s;
  };
  after(async () => {
    for (const s of schemas) await s.drop();
  });

  it("two principals starting at once on an empty schema migrate it once, under the advisory lock", opts, async () => {
    const schema = await newSchema();
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => PostgresStore.open({ url: schema.url, clock: new ManualClock() })),
    );
    assert.deepEqual(await schema.query("SELECT version FROM schema_version"), [{ version: PG_MIGRATIONS.length }]);
    const clock = new ManualClock();
    const ids = new UlidGenerator(clock);
    for (const s of stores)
      await s.createRun({ ...baseTrigger, runId: ids.next(), workflow: wf, idempotencyKey: null });
    assert.equal((await stores[0]?.counts())?.runs, 4);
    await Promise.all(stores.map((s) => s.close()));
  });

  it(
    "a schema newer than the code, or a search_path naming no schema, is refused at open with a message saying what to do",
    opts,
    async () => {
      const schema = await newSchema();
      await (await PostgresStore.open({ url: schema.url })).close();
      await schema.query("UPDATE schema_version SET version = 99");
      await assert.rejects(PostgresStore.open({ url: schema.url }), (e: unknown) => {
        assert.equal((e as { code?: unknown }).code, "SCHEMA_TOO_NEW");
        assert.match(String(e), /newer than this principal understands.*CDKTR_DATABASE_URL/);
        return true;
      });
      const missing = `${PG_TEST_URL}?options=${encodeURIComponent("-c search_path=cdktr_no_such_schema")}`;
      await assert.rejects(PostgresStore.open({ url: missing }), (e: unknown) => {
        assert.equal((e as { code?: unknown }).code, "NO_SCHEMA");
        return true;
      });
    },
  );

  it(
    "the calls of one event-loop turn commit in one transaction; a refused one undoes nothing else",
    opts,
    async () => {
      const schema = await newSchema();
      const clock = new ManualClock();
      let transactions = 0;
      const store = await PostgresStore.open({
        url: schema.url,
        clock,
        fence: async () => {
          transactions++;
        },
      });
      try {
        const ids = new UlidGenerator(clock);
        const results = await Promise.allSettled(
          Array.from({ length: 40 }, (_, i) =>
            i === 20
              ? store.createRun({
                  ...baseTrigger,
                  runId: ids.next(),
                  workflow: wf,
                  idempotencyKey: "k",
                  requestParams: { x: 1 },
                })
              : store.createRun({
                  ...baseTrigger,
                  runId: ids.next(),
                  workflow: wf,
                  idempotencyKey: i === 10 ? "k" : null,
                }),
          ),
        );
        assert.equal(transactions, 1);
        assert.equal(results.filter((r) => r.status === "fulfilled").length, 39);
        assert.ok(results[20]?.status === "rejected" && isCdktrError(results[20].reason, "IDEMPOTENCY_CONFLICT"));
        assert.equal((await store.counts()).runs, 39);
      } finally {
        await store.close();
      }
    },
  );

  it(
    "a call that fails after it wrote (a statement the server refuses) is undone alone: the batch runs again with a savepoint per call",
    opts,
    async () => {
      const schema = await newSchema();
      const clock = new ManualClock();
      const store = await PostgresStore.open({ url: schema.url, clock });
      try {
        const ids = new UlidGenerator(clock);
        const taken = ids.next();
        await store.createRun({ ...baseTrigger, runId: taken, workflow: wf, idempotencyKey: null });
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) =>
            store.createRun({
              ...baseTrigger,
              runId: i === 5 ? taken : ids.next(),
              workflow: wf,
              idempotencyKey: null,
            }),
          ),
        );
        assert.deepEqual(
          results.map((r) => r.status),
          results.map((_, i) => (i === 5 ? "rejected" : "fulfilled")),
        );
        assert.equal((await store.counts()).runs, 10);
        assert.deepEqual(await schema.query("SELECT count(*)::int AS n FROM status_history"), [{ n: 10 }]);
      } finally {
        await store.close();
      }
    },
  );

  it(
    "log lines have a connection of their own: a trigger is acknowledged while a log batch waits on a lock",
    opts,
    async () => {
      const schema = await newSchema();
      const clock = new ManualClock();
      const store = await PostgresStore.open({ url: schema.url, clock });
      const ids = new UlidGenerator(clock);
      const blocker = new pg.Client({ connectionString: schema.url });
      await blocker.connect();
      try {
        await blocker.query("BEGIN");
        await blocker.query("LOCK TABLE logs IN EXCLUSIVE MODE");
        let logsDone = false;
        const logs = store.insertLogs([logLine(clock, "r", 1)], null).then((r) => {
          logsDone = true;
          return r;
        });
        const runId = ids.next();
        const run = await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: null });
        assert.equal(run.run.status, "QUEUED");
        assert.equal(logsDone, false, "the log batch still waits for the lock");
        await blocker.query("COMMIT");
        assert.equal((await logs).stored, 1);
      } finally {
        await blocker.end();
        await store.close();
      }
    },
  );

  it(
    "while the database is unreachable writes are refused with the retryable STORAGE_UNAVAILABLE and problems() says so; it reconnects by itself and loses nothing acknowledged",
    opts,
    async () => {
      const schema = await newSchema();
      const proxy = new CuttableProxy({ host: "127.0.0.1", port: 5432 });
      await proxy.start();
      const clock = new ManualClock();
      const store = await PostgresStore.open({ url: proxy.url(schema.url), clock });
      const ids = new UlidGenerator(clock);
      const before = ids.next();
      await store.createRun({ ...baseTrigger, runId: before, workflow: wf, idempotencyKey: "a" });
      assert.deepEqual(store.problems(), []);

      await proxy.cut();
      const refused = await store
        .createRun({ ...baseTrigger, runId: ids.next(), workflow: wf, idempotencyKey: "b" })
        .then(
          () => null,
          (e: unknown) => e,
        );
      assert.ok(isCdktrError(refused, "STORAGE_UNAVAILABLE"), `got ${String(refused)}`);
      assert.equal((refused as { retryable: boolean }).retryable, true);
      await waitFor(() => store.problems().includes("database unreachable"), {
        timeoutMs: 10_000,
        what: "problems() to say database unreachable",
      });
      await assert.rejects(store.insertLogs([logLine(clock, before, 1)], null), (e: unknown) =>
        isCdktrError(e, "STORAGE_UNAVAILABLE"),
      );
      await assert.rejects(store.getRun(before), (e: unknown) => isCdktrError(e, "STORAGE_UNAVAILABLE"));

      await proxy.start(); // same port: the database is back
      await waitFor(() => store.problems().length === 0, { timeoutMs: 30_000, what: "the store to reconnect" });
      const retried = await store.createRun({ ...baseTrigger, runId: ids.next(), workflow: wf, idempotencyKey: "b" });
      assert.equal(retried.duplicate, false);
      assert.equal((await store.insertLogs([logLine(clock, before, 1)], null)).stored, 1);
      assert.equal((await store.getRun(before))?.run.status, "QUEUED");
      assert.equal((await store.counts()).runs, 2);
      await store.close();
      await proxy.cut();
    },
  );
});

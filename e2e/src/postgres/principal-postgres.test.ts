/**
 * The principal on PostgreSQL (`CDKTR_DATABASE_URL`), as real processes: a workflow runs on a
 * real agent, the principal is SIGKILLed mid-run and restarted, and the runs are there (in the
 * database, not in a SQLite file); its /readyz fails while the database is unreachable and passes
 * again once it is back. Needs the machine's PostgreSQL on 127.0.0.1:5432 (a schema of
 * its own, dropped at the end); skips without it, fails with `CI` set.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import pg from "pg";
import { CuttableProxy, cleanup, freePort, taskStates, waitFor, workflowYaml } from "@cdktr/test-utils";
import { prepareCluster, startFastAgent } from "../agent/helpers.js";
import { requireServer } from "../listeners/helpers.js";
import { get, sample } from "../metrics/scrape.js";

const BASE_URL = "postgres://postgres@127.0.0.1:5432/test";

describe("principal on PostgreSQL", async () => {
  const skip = await requireServer("PostgreSQL", 5432);
  const schema = `cdktr_e2e_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: BASE_URL });
  if (skip === undefined) {
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
  }
  after(async () => {
    await cleanup();
    if (skip !== undefined) return;
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  it("runs a workflow on a real agent and survives a principal SIGKILL and restart with its runs and logs", {
    skip: skip ?? false,
  }, async () => {
    const url = `${BASE_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    const c = await prepareCluster(
      {
        "quick.yml": workflowYaml({ tasks: { hello: { cmd: "sh", args: ["-c", "echo one; echo two"] } } }),
        "slow.yml": workflowYaml({
          tasks: { wait: { cmd: "sh", args: ["-c", "echo start; sleep 4; echo end"] } },
        }),
      },
      { env: { CDKTR_DATABASE_URL: url, CDKTR_LEADER_TTL_MS: "1000" } },
    );
    const first = await c.start();
    assert.match(
      String(first.ready.dbPath),
      /^postgres:\/\/postgres@127\.0\.0\.1:5432\/test/,
      "the ready line names the database",
    );
    await startFastAgent(c);
    const quick = await c.run("quick");
    const done = await c.waitForRun(quick, 30_000);
    assert.equal(done.run.status, "COMPLETED");
    assert.deepEqual(
      (await c.logs(quick, "hello")).filter((l) => l.stream === "stdout").map((l) => l.line),
      ["one", "two"],
    );

    const slow = await c.run("slow");
    await waitFor(async () => (await c.logs(slow, "wait")).some((l) => l.line === "start"), {
      timeoutMs: 20_000,
      what: "the slow task to start",
    });
    await c.kill();
    const restarted = await c.start();
    // The restarted principal is a new candidate: it cannot tell its SIGKILLed predecessor from a
    // paused one, so it waits for that lease to expire (at most CDKTR_LEADER_TTL_MS), then leads
    // with the runs of the database.
    assert.ok(["leader", "standby"].includes(String(restarted.ready.role)));
    await waitFor(async () => (await c.client.request("ping", {})).role === "leader", {
      timeoutMs: 5_000,
      what: "the restarted principal to lead",
    });
    assert.equal(
      (await c.client.request("getRun", { runId: slow })).run.status,
      "RUNNING",
      "the RUNNING run is found in the database",
    );
    const slowDone = await c.waitForRun(slow, 60_000);
    assert.equal(slowDone.run.status, "COMPLETED", JSON.stringify(slowDone.run));
    assert.deepEqual(taskStates(slowDone), { wait: "COMPLETED" });
    assert.deepEqual(
      (await c.logs(slow, "wait")).filter((l) => l.stream === "stdout").map((l) => l.line),
      ["start", "end"],
    );
    assert.equal((await c.waitForRun(quick, 5_000)).run.status, "COMPLETED", "the first run is still there");

    const rows = await admin.query(`SELECT run_id, status FROM ${schema}.runs ORDER BY run_id`);
    assert.deepEqual(rows.rows, [
      { run_id: quick, status: "COMPLETED" },
      { run_id: slow, status: "COMPLETED" },
    ]);
    assert.equal(existsSync(c.dbPath), false, "no SQLite file was made");
  });

  it("/readyz says database unreachable (503) while PostgreSQL cannot be reached, and ready again after", {
    skip: skip ?? false,
  }, async () => {
    const own = `${schema}_ready`;
    await admin.query(`CREATE SCHEMA ${own}`);
    const proxy = new CuttableProxy({ host: "127.0.0.1", port: 5432 });
    await proxy.start();
    try {
      const port = await freePort();
      const url = proxy.url(`${BASE_URL}?options=${encodeURIComponent(`-c search_path=${own}`)}`);
      const c = await prepareCluster({}, { env: { CDKTR_DATABASE_URL: url, CDKTR_METRICS_PORT: String(port) } });
      await c.start();
      const metrics = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await get(metrics, "/readyz")).status === 200, { what: "ready (leading)" });

      await proxy.cut();
      const unready = await waitFor(
        async () => {
          const r = await get(metrics, "/readyz");
          return r.status === 503 ? r : undefined;
        },
        { timeoutMs: 20_000, what: "/readyz to fail while the database is unreachable" },
      );
      assert.ok((JSON.parse(unready.body) as { problems: string[] }).problems.includes("database unreachable"));
      const down = (await get(metrics, "/metrics")).body;
      assert.equal(sample(down, "cdktr_storage_problem", { problem: "database unreachable" }), 1);
      assert.equal(sample(down, "cdktr_ready"), 0);
      assert.equal((await get(metrics, "/healthz")).status, 200, "alive all along");

      await proxy.start(); // the same port: the database is back
      await waitFor(async () => (await get(metrics, "/readyz")).status === 200, {
        timeoutMs: 40_000,
        what: "/readyz to pass once the database is back",
      });
      const up = (await get(metrics, "/metrics")).body;
      assert.equal(sample(up, "cdktr_storage_problem", { problem: "database unreachable" }), 0);
      assert.equal(sample(up, "cdktr_ready"), 1);
    } finally {
      await cleanup();
      await proxy.cut();
      await admin.query(`DROP SCHEMA IF EXISTS ${own} CASCADE`);
    }
  });
});

/**
 * The PostgreSQL listener against the machine's PostgreSQL (127.0.0.1:5432, db `test`, trust
 * auth) and a real principal process. Each test uses its own channel name.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { PostgresListener } from "@cdktr/events/postgres";
import { cleanup, preparePrincipal, startPrincipal, waitFor, type PrincipalFixture } from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflows, requireServer } from "./helpers.js";
import { ListenerPool } from "./listener-pool.js";

const PG_URL = process.env.CDKTR_TEST_PG_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const skip = await requireServer("PostgreSQL", 5432);

describe("postgres listener", { skip }, () => {
  let f: PrincipalFixture;
  let admin: pg.Client;
  const listeners = new ListenerPool<PostgresListener>();

  /** A channel name that needs quoting: spaces, capitals and a double quote. */
  const newChannel = (): string => `cdktr Test "${randomUUID().slice(0, 8)}"`;
  const notify = async (channel: string, payload: string): Promise<void> => {
    await admin.query("SELECT pg_notify($1, $2)", [channel, payload]);
  };
  const start = async (
    channel: string,
    extra: Partial<ConstructorParameters<typeof PostgresListener>[0]> = {},
    port = f.ports.api,
  ): Promise<PostgresListener> => {
    const l = await listeners.start(
      new PostgresListener({
        principal: { host: "127.0.0.1", port },
        key: f.key("local-listeners"),
        connectionString: PG_URL,
        channel,
        applicationName: `cdktr-test-${randomUUID().slice(0, 8)}`,
        backoff: { initialMs: 200, maxMs: 1000 },
        triggerTimeoutMs: 1000,
        ...extra,
      }),
    );
    await waitFor(() => l.stats.listening, { what: "LISTEN", timeoutMs: 10_000 });
    return l;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: paramWorkflows("pgw", "pgbad", "pgre", "pgok", "pgdenied", "pgmap"),
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
  });
  afterEach(() => listeners.stopAll());
  after(async () => {
    await admin.end();
    await cleanup();
  });

  test("with `workflow` and a mapping, a row's JSON becomes one run with mapped params; filtered and unmappable payloads trigger nothing", async () => {
    const channel = newChannel();
    const l = await start(channel, {
      workflow: "pgmap",
      mapping: {
        paramsMap: { date: "body.row.day", n: "to_string(body.row.id)" },
        when: "body.op == 'INSERT'",
        idempotencyKey: "join(':', [body.table, to_string(body.row.id)])",
      },
    });
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    const insert = { op: "INSERT", table: "orders", row: { id: 7, day: "2026-12-02" } };
    await notify(channel, JSON.stringify(insert));
    await notify(channel, JSON.stringify(insert)); // the same row again: same key, no second run
    await notify(channel, JSON.stringify({ op: "DELETE", table: "orders", row: { id: 8 } }));
    await notify(channel, JSON.stringify({ op: "INSERT", table: "orders", row: { id: 9 } })); // no day
    await waitFor(() => l.stats.triggered === 2 && l.stats.filtered === 1 && l.stats.rejected === 1, {
      what: "2 triggers, 1 filtered, 1 rejected",
    });
    assert.deepEqual(reasons, ["unmapped"]);
    const runs = await expectRunCount(f, "pgmap", 1);
    assert.deepEqual(runs[0]?.params, { date: "2026-12-02", n: "7" });
    assert.equal(runs[0]?.idempotencyKey, `pg:${channel}:orders:7`);
  });

  test("a workflow id or a JSON payload triggers exactly one run; a repeated key does not", async () => {
    const channel = newChannel();
    const l = await start(channel);
    await notify(channel, "pgw");
    await notify(
      channel,
      JSON.stringify({ workflow_id: "pgw", params: { date: "2026-11-28" }, idempotency_key: "row-7" }),
    );
    await notify(
      channel,
      JSON.stringify({ workflow_id: "pgw", params: { date: "2026-11-28" }, idempotency_key: "row-7" }),
    );
    await waitFor(() => l.stats.triggered === 3, { what: "3 notifications handled" });
    const runs = await expectRunCount(f, "pgw", 2);
    const keyed = runs.find((r) => r.params.date === "2026-11-28");
    assert.equal(keyed?.idempotencyKey, `pg:${channel}:row-7`);
    assert.equal(keyed?.source, "postgres");
    assert.ok(runs.some((r) => Object.keys(r.params).length === 0));
  });

  test("bad payloads are refused and logged; nothing runs; the listener keeps serving", async () => {
    const channel = newChannel();
    const l = await start(channel);
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    for (const p of [
      "",
      "not a workflow id!",
      "{bad json",
      JSON.stringify({ workflow_id: "no-such-workflow" }),
      JSON.stringify({ workflow_id: "pgbad", params: { undeclared: "x" } }),
      JSON.stringify({ id: "pgbad" }),
    ]) {
      await notify(channel, p);
    }
    await waitFor(() => l.stats.rejected === 6, { what: "6 rejections" });
    // Four turned away here (`rejected`), two refused by the principal (a `triggered` result).
    assert.deepEqual(reasons, ["malformed", "malformed", "malformed", "malformed"]);
    assert.equal((await f.runs("pgbad")).length, 0);
    await notify(channel, JSON.stringify({ workflow_id: "pgbad", params: { date: "ok" } }));
    const runs = await expectRunCount(f, "pgbad", 1);
    assert.deepEqual(runs[0]?.params, { date: "ok" });
  });

  test("with a `workflows` allow-list, a notification for another workflow is logged and dropped, never triggered", async () => {
    const channel = newChannel();
    const l = await start(channel, { workflows: ["pgok"] });
    const sent: string[] = [];
    l.on("triggered", (r) => sent.push(r.workflowId));
    const reasons: string[] = [];
    l.on("rejected", (r) => reasons.push(r.reason));
    await notify(channel, "pgdenied");
    await notify(channel, JSON.stringify({ workflow_id: "pgdenied", params: { date: "x" }, idempotency_key: "d-1" }));
    await notify(channel, JSON.stringify({ workflow_id: "pgok", params: { date: "allowed" } }));
    await waitFor(() => l.stats.rejected === 2 && l.stats.triggered === 1, { what: "2 refusals and 1 trigger" });
    assert.deepEqual(reasons, ["not_allowed", "not_allowed"]);
    const runs = await expectRunCount(f, "pgok", 1);
    assert.deepEqual(runs[0]?.params, { date: "allowed" });
    assert.equal((await f.runs("pgdenied")).length, 0, "the principal never saw the refused workflow");
    assert.deepEqual(sent, ["pgok"], "only the allowed workflow was sent to the principal");
  });

  test("reconnects and LISTENs again after its backend is terminated", async () => {
    const channel = newChannel();
    const appName = `cdktr-term-${randomUUID().slice(0, 8)}`;
    const l = await start(channel, { applicationName: appName });
    await notify(channel, JSON.stringify({ workflow_id: "pgre", params: { n: "1" } }));
    await expectRunCount(f, "pgre", 1);
    const killed = await admin.query(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1",
      [appName],
    );
    assert.equal(killed.rowCount, 1);
    await waitFor(() => l.stats.connections === 2 && l.stats.listening, {
      what: "a second LISTEN session",
      timeoutMs: 10_000,
    });
    await notify(channel, JSON.stringify({ workflow_id: "pgre", params: { n: "2" } }));
    const runs = await expectRunCount(f, "pgre", 2);
    assert.deepEqual(
      runs.map((r) => r.params.n),
      ["1", "2"],
    );
  });

  test("a notification is retried while the principal is down and triggers once it is up", async () => {
    // Ports picked up front: the listener is pointed at the principal before it runs.
    const down = await preparePrincipal({
      workflows: paramWorkflows("pgdown"),
      ports: "reserved",
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    try {
      const channel = newChannel();
      const l = await start(channel, { retryForMs: 30_000, key: down.key("local-listeners") }, down.ports.api);
      const failures: string[] = [];
      l.on("triggered", (r) => {
        if (!r.success) failures.push(r.error?.code ?? "?");
      });
      await notify(channel, JSON.stringify({ workflow_id: "pgdown", params: { date: "late" } }));
      await waitFor(() => failures.length >= 2, {
        what: "failed attempts while the principal is down",
        timeoutMs: 10_000,
      });
      assert.ok(
        failures.every((c) => c === "UNAVAILABLE" || c === "TIMEOUT"),
        failures.join(","),
      );
      assert.equal(l.stats.dropped, 0);
      await down.start();
      await waitFor(() => l.stats.triggered === 1, { what: "the trigger once the principal is up", timeoutMs: 15_000 });
      const runs = await expectRunCount(down, "pgdown", 1);
      assert.deepEqual(runs[0]?.params, { date: "late" });
    } finally {
      await down.stop();
    }
  });
});

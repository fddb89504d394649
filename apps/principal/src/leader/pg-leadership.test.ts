import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { isCdktrError, type AdvertisedEndpoints } from "@cdktr/protocol";
import { migratePostgres } from "../store/postgres/migrations.js";
import { sqlOn } from "../store/postgres/sql.js";
import { PgTestSchema, requirePostgres } from "../test/store-contract/harness.js";
import { PgLeadership } from "./pg-leadership.js";

const TTL = 1000;
const endpointsOf = (n: number): AdvertisedEndpoints => ({
  api: `tcp://host${n}:5561`,
  logs: `tcp://host${n}:5562`,
  publish: `tcp://host${n}:5563`,
});

/** A principal's leadership driven by hand: its rounds, its monotonic clock, its term events. */
class Candidate {
  time = 0;
  readonly terms: (number | null)[] = [];
  readonly deposed: string[] = [];
  readonly leadership: PgLeadership;

  constructor(
    url: string,
    readonly n: number,
    hash = "h1",
  ) {
    this.leadership = new PgLeadership({
      url,
      ttlMs: TTL,
      instanceId: `test:${n}:${Math.random()}`,
      workflowHash: () => hash,
      monotonic: () => this.time,
      periodic: false,
    });
  }

  start(): Promise<void> {
    return this.leadership.start(endpointsOf(this.n), {
      onElected: async (epoch) => void this.terms.push(epoch),
      onDeposed: (reason) => void this.deposed.push(reason),
    });
  }
}

/** A connection of the schema, for write transactions fenced by a candidate. */
async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("PgLeadership: the leader lease on PostgreSQL", async () => {
  const skip = await requirePostgres();
  const opts = { skip: skip ?? false };
  const schemas: PgTestSchema[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  /** A fresh migrated schema. */
  const fresh = async (): Promise<string> => {
    const s = new PgTestSchema();
    schemas.push(s);
    await s.create();
    const c = await connect(s.url);
    await migratePostgres(sqlOn(c, false));
    await c.end();
    return s.url;
  };
  const candidate = (url: string, n: number, hash?: string): Candidate => {
    const c = new Candidate(url, n, hash);
    cleanups.push(() => c.leadership.stop());
    return c;
  };
  after(async () => {
    for (const c of cleanups) await c().catch(() => undefined);
    for (const s of schemas) await s.drop();
  });

  it(
    "one of two takes the lease (epoch 1); the other is a standby that knows the leader's endpoints",
    opts,
    async () => {
      const url = await fresh();
      const a = candidate(url, 1);
      const b = candidate(url, 2);
      await a.start();
      await b.start();
      assert.deepEqual(a.terms, [1]);
      assert.deepEqual(a.leadership.ping(), { role: "leader", leader: endpointsOf(1), epoch: 1 });
      assert.deepEqual(b.terms, []);
      assert.deepEqual(b.leadership.ping(), { role: "standby", leader: endpointsOf(1), epoch: 1 });
      // Renewals keep it: the standby's rounds take nothing while the lease lives.
      for (let i = 0; i < 3; i++) {
        a.time += TTL / 3;
        await a.leadership.tick();
        await b.leadership.tick();
      }
      assert.equal(a.leadership.isLeader(), true);
      assert.equal(b.leadership.isLeader(), false);
    },
  );

  it(
    "fences writes: the leader's transaction passes, a standby's is refused with NOT_LEADER and the leader's endpoints",
    opts,
    async () => {
      const url = await fresh();
      const a = candidate(url, 1);
      const b = candidate(url, 2);
      await a.start();
      await b.start();
      const c = await connect(url);
      cleanups.push(() => c.end());
      await c.query("BEGIN");
      await a.leadership.fence(sqlOn(c));
      await c.query("COMMIT");
      await c.query("BEGIN");
      await assert.rejects(b.leadership.fence(sqlOn(c)), (e: unknown) => {
        assert.ok(isCdktrError(e, "NOT_LEADER"));
        assert.equal(e.retryable, true);
        assert.deepEqual(e.leader, endpointsOf(1));
        return true;
      });
      await c.query("ROLLBACK");
    },
  );

  it(
    "a leader past its local deadline stops at once; after the expiry in the database a standby takes over with the next epoch",
    opts,
    async () => {
      const url = await fresh();
      const a = candidate(url, 1);
      const b = candidate(url, 2);
      await a.start();
      await b.start();
      // No renewal: locally the lease ends before TTL since the last renewal was sent.
      a.time += TTL - 1;
      assert.equal(a.leadership.isLeader(), false, "stops before the TTL is over");
      assert.equal(a.deposed.length, 1);
      await b.leadership.tick();
      assert.equal(b.leadership.isLeader(), false, "the database lease has not expired yet");
      await sleep(TTL + 100);
      await b.leadership.tick();
      assert.deepEqual(b.terms, [2]);
      await a.leadership.tick();
      assert.deepEqual(a.leadership.ping(), { role: "standby", leader: endpointsOf(2), epoch: 2 });
    },
  );

  it("a paused leader that still thinks it leads is refused by the fence and steps down", opts, async () => {
    const url = await fresh();
    const a = candidate(url, 1);
    const b = candidate(url, 2);
    await a.start();
    await b.start();
    await sleep(TTL + 100);
    await b.leadership.tick();
    assert.deepEqual(b.terms, [2]);
    // a's clock did not move (a paused process): it still counts itself leader until it writes.
    assert.equal(a.leadership.isLeader(), true);
    const c = await connect(url);
    cleanups.push(() => c.end());
    await c.query("BEGIN");
    await assert.rejects(a.leadership.fence(sqlOn(c)), (e: unknown) => {
      assert.ok(isCdktrError(e, "NOT_LEADER"));
      return true;
    });
    await c.query("ROLLBACK");
    assert.equal(a.leadership.isLeader(), false);
    assert.equal(a.deposed.length, 1);
    assert.deepEqual(a.leadership.ping(), { role: "standby", leader: null }, "never itself as the leader");
    await a.leadership.tick();
    assert.deepEqual(a.leadership.ping(), { role: "standby", leader: endpointsOf(2), epoch: 2 });
  });

  it(
    "a takeover waits for the old leader's fenced transaction in flight; the leader's own renewal does not",
    opts,
    async () => {
      const url = await fresh();
      const a = candidate(url, 1);
      const b = candidate(url, 2);
      await a.start();
      await b.start();
      const c = await connect(url);
      cleanups.push(() => c.end());
      await c.query("BEGIN");
      await a.leadership.fence(sqlOn(c));
      a.time += TTL / 3;
      const renewal = a.leadership.tick();
      assert.equal(await Promise.race([renewal.then(() => "renewed"), sleep(300).then(() => "waiting")]), "renewed");
      a.time += TTL * 0.8;
      assert.equal(a.leadership.isLeader(), true, "renewed while its write transaction holds the row");
      await sleep(TTL + 100);
      let tookOver = false;
      const takeover = b.leadership.tick().then(() => {
        tookOver = b.leadership.isLeader();
      });
      await sleep(300);
      assert.equal(tookOver, false, "the takeover waits for the transaction");
      await c.query("INSERT INTO schema_version (version) SELECT -1 WHERE false");
      await c.query("COMMIT");
      await takeover;
      assert.equal(tookOver, true);
      assert.deepEqual(b.terms, [2]);
    },
  );

  it(
    "a restarted principal (new instance id) does not renew its predecessor's lease; a released lease is taken at once",
    opts,
    async () => {
      const url = await fresh();
      const a = candidate(url, 1);
      await a.start();
      const again = candidate(url, 1);
      await again.start();
      assert.equal(again.leadership.isLeader(), false, "a new instance waits like any standby");
      await a.leadership.stop();
      await again.leadership.tick();
      assert.deepEqual(again.terms, [2], "the lease released at stop is taken without waiting for the TTL");
    },
  );

  it(
    "says `leader lease unreachable` while its database cannot be reached, and stops leading by its local deadline",
    opts,
    async () => {
      const url = await fresh();
      const a = candidate(url, 1);
      await a.start();
      assert.deepEqual(a.leadership.problems(), []);
      const cut = candidate(url.replace("127.0.0.1:5432", "127.0.0.1:1"), 2);
      await cut.start();
      assert.deepEqual(cut.leadership.problems(), ["leader lease unreachable"]);
      assert.deepEqual(cut.leadership.ping(), { role: "standby", leader: null });
    },
  );

  it("a term that cannot start is given up: the lease is released for another principal", opts, async () => {
    const url = await fresh();
    const a = new PgLeadership({
      url,
      ttlMs: TTL,
      instanceId: "test:failing",
      workflowHash: () => "h1",
      periodic: false,
    });
    cleanups.push(() => a.stop());
    await a.start(endpointsOf(1), {
      onElected: async () => {
        throw new Error("cannot load");
      },
      onDeposed: () => undefined,
    });
    assert.equal(a.isLeader(), false);
    const b = candidate(url, 2);
    await b.start();
    assert.deepEqual(b.terms, [2], "taken at once, not after the TTL");
  });
});

/**
 * Several principals on one PostgreSQL database, as real processes sharing a keys directory and
 * a fresh schema: one leads, the other stands by (reads, `NOT_LEADER` on writes with the
 * leader's endpoints); SIGKILL of the leader hands over within the TTL plus 2 s with the queued
 * runs; a leader SIGSTOPped past its lease writes nothing once resumed and steps down.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  isCdktrError,
  type AdvertisedEndpoints,
  type ApiVerbs,
  type PrincipalClient,
  type ReplyOf,
} from "@cdktr/protocol";
import { cleanup, makeTempDir, startPrincipal, waitFor, type PrincipalFixture } from "@cdktr/test-utils";
import { TAKEOVER_AGENT_GRACE_MS } from "../leader/leader-terms.js";
import { PgTestSchema, requirePostgres } from "./store-contract/harness.js";

const TTL_MS = 2000;
type Ping = ReplyOf<ApiVerbs, "ping">;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const registration = (agentId: string, runningRuns: string[] = []) => ({
  agentId,
  host: "h",
  capacity: 1,
  labels: [],
  version: "1",
  runningRuns,
});

const ping = (c: PrincipalClient): Promise<Ping> => c.request("ping", {}, { retry: false });

/** Asserts `p` is refused with NOT_LEADER carrying `leader`. */
async function refusedNotLeader(p: Promise<unknown>, leader: AdvertisedEndpoints): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isCdktrError(e, "NOT_LEADER"), String(e));
    assert.equal(e.retryable, true);
    assert.deepEqual(e.leader, leader);
    return true;
  });
}

describe("several principals on one PostgreSQL database", async () => {
  const skip = await requirePostgres();
  const opts = { skip: skip ?? false, timeout: 120_000 };
  const schemas: PgTestSchema[] = [];
  after(async () => {
    await cleanup();
    for (const s of schemas) await s.drop();
  });

  /** Two principals on a fresh schema with one keys directory; the first started leads. */
  const pair = async (extra: Record<string, string> = {}): Promise<[PrincipalFixture, PrincipalFixture]> => {
    const schema = new PgTestSchema();
    schemas.push(schema);
    await schema.create();
    const env = {
      CDKTR_DATABASE_URL: schema.url,
      CDKTR_LEADER_TTL_MS: String(TTL_MS),
      CDKTR_KEYS_DIR: makeTempDir("cdktr-ha-keys-"),
      ...extra,
    };
    const a = await startPrincipal({ env });
    const b = await startPrincipal({ env });
    return [a, b];
  };

  it(
    "one leads; the standby answers ping and reads, refuses writes with NOT_LEADER and the leader's endpoints; after kill -9 of the leader it leads within TTL + 2 s with the queued runs",
    opts,
    async () => {
      const [a, b] = await pair();
      assert.equal(a.service?.ready.role, "leader");
      assert.equal(b.service?.ready.role, "standby");
      const [pa, pb] = [await ping(a.client), await ping(b.client)];
      assert.equal(pa.role, "leader");
      assert.deepEqual(pa.leader, a.endpoints);
      assert.equal(pb.role, "standby");
      assert.deepEqual(pb.leader, a.endpoints, "the standby advertises the leader's three endpoints");
      assert.equal(pb.epoch, pa.epoch);
      assert.ok(pa.workflowHash !== undefined && pa.workflowHash.length > 0);
      assert.equal(pb.workflowHash, pa.workflowHash, "same workflow directory, same hash");

      // No agent: the runs stay queued.
      const queued = [await a.run("hello"), await a.run("hello")];
      const read = await b.client.request("getRun", { runId: queued[0] as string }, { retry: false });
      assert.equal(read.run.status, "QUEUED", "the standby reads the leader's writes from the database");
      assert.equal((await b.client.request("listWorkflows", {}, { retry: false })).workflows.length, 1);
      // A key the leader enrols is admitted by the standby within a TTL (it reloads the key ring).
      const viewer = await a.createKey("ha-reader", "reader");
      await waitFor(
        async () => {
          const c = b.connect({ key: viewer.key, timeoutMs: 500 });
          try {
            return (await ping(c)).role === "standby";
          } catch {
            return false;
          } finally {
            c.close();
          }
        },
        { timeoutMs: TTL_MS + 3000, intervalMs: 200, what: "the standby to admit the key the leader enrolled" },
      );
      await refusedNotLeader(
        b.client.request("runWorkflow", { workflowId: "hello", source: "test" }, { retry: false }),
        a.endpoints,
      );
      const agentOnB = b.connect({ key: b.key("local-agent") });
      const agentReg = registration("agent-ha-1");
      await refusedNotLeader(agentOnB.request("registerAgent", agentReg, { retry: false }), a.endpoints);
      const agentOnA = a.connect({ key: a.key("local-agent") });
      const reply = await agentOnA.request("registerAgent", agentReg, { retry: false });
      assert.deepEqual(reply.leader, a.endpoints, "registerAgent tells the agent where the leader is");

      const killedAt = Date.now();
      await a.kill();
      const led = await waitFor(async () => ((await ping(b.client)).role === "leader" ? Date.now() : false), {
        timeoutMs: TTL_MS + 2000,
        intervalMs: 50,
        what: "the standby to lead",
      });
      const took = led - killedAt;
      assert.ok(took <= TTL_MS + 2000, `took over in ${took} ms`);
      const pb2 = await ping(b.client);
      assert.deepEqual(pb2.leader, b.endpoints);
      assert.ok((pb2.epoch ?? 0) > (pa.epoch ?? 0), "a new epoch");
      const after = await b.run("hello");
      for (const runId of queued) {
        const r = await b.client.request("getRun", { runId }, { retry: false });
        assert.equal(r.run.status, "QUEUED", `${runId} is still queued after the failover`);
      }
      assert.equal((await b.client.request("getRun", { runId: after }, { retry: false })).run.status, "QUEUED");
      // The agent that held nothing re-registers with the new leader.
      const again = await agentOnB.request("registerAgent", agentReg, { retry: false });
      assert.deepEqual(again.leader, b.endpoints);
    },
  );

  it("a leader SIGSTOPped past its lease and resumed writes nothing and steps down", opts, async () => {
    const [a, b] = await pair();
    const pid = a.service?.pid as number;
    const before = await ping(a.client);
    assert.equal(before.role, "leader");
    process.kill(pid, "SIGSTOP");
    let resumed = false;
    try {
      await waitFor(async () => (await ping(b.client)).role === "leader", {
        timeoutMs: TTL_MS + 3000,
        what: "the standby to take over from the stopped leader",
      });
    } finally {
      process.kill(pid, "SIGCONT");
      resumed = true;
    }
    assert.ok(resumed);
    // Right after resuming: the trigger is refused (never acknowledged), nothing is stored.
    const trigger = a.client.request(
      "runWorkflow",
      { workflowId: "hello", source: "test", idempotencyKey: "after-sigcont" },
      { retry: false },
    );
    await assert.rejects(trigger, (e: unknown) => isCdktrError(e, "NOT_LEADER"));
    assert.equal((await ping(a.client)).role, "standby", "the resumed leader stepped down");
    // It learns the new leader at its next round (never advertising itself meanwhile).
    await waitFor(
      async () => {
        const p = await ping(a.client);
        assert.notDeepEqual(p.leader, a.endpoints);
        return JSON.stringify(p.leader) === JSON.stringify(b.endpoints);
      },
      { timeoutMs: TTL_MS, what: "the old leader to advertise the new one" },
    );
    const runs = await b.client.request("listRuns", { workflowId: "hello" }, { retry: false });
    assert.deepEqual(runs.runs, [], "the old leader wrote nothing");
    assert.ok(
      a.service?.lines.some((l) => l.includes("stepped down")),
      "the old leader logs that it stepped down",
    );
  });

  it(
    "a run RUNNING at the failover is not CRASHED by it: the new leader gives its agent a fresh heartbeat deadline",
    opts,
    async () => {
      // The heartbeat timeout is shorter than the takeover: only a fresh deadline saves the run.
      const [a, b] = await pair({ CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "1500", CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: "300" });
      const agentId = "agent-ha-2";
      const onA = a.connect({ key: a.key("local-agent") });
      await onA.request("registerAgent", registration(agentId), { retry: false });
      const runId = await a.run("hello");
      const work = await onA.request("fetchWork", { agentId, waitMs: 2000, freeSlots: 1 }, { retry: false });
      assert.equal(work.assignment?.run.runId, runId);
      await onA.request("confirmAssignment", { agentId, runId, token: work.assignment.token }, { retry: false });
      // Another agent holds a run and never comes back: lost a heartbeat timeout after the takeover.
      const gone = "agent-ha-3";
      await onA.request("registerAgent", registration(gone), { retry: false });
      const goneRun = await a.run("hello");
      const goneWork = await onA.request("fetchWork", { agentId: gone, waitMs: 2000, freeSlots: 1 }, { retry: false });
      assert.equal(goneWork.assignment?.run.runId, goneRun);
      const token = goneWork.assignment.token;
      await onA.request("confirmAssignment", { agentId: gone, runId: goneRun, token }, { retry: false });
      const killedAt = Date.now();
      await a.kill();
      await waitFor(async () => (await ping(b.client)).role === "leader", {
        timeoutMs: TTL_MS + 2000,
        what: "the standby to lead",
      });
      assert.ok(Date.now() - killedAt > 1500, "the agents were silent for longer than their heartbeat timeout");
      const statusOf = async (id: string) => (await b.client.request("getRun", { runId: id }, { retry: false })).run;
      assert.equal((await statusOf(goneRun)).status, "RUNNING", "not crashed at the takeover");
      // The agent finds the new leader and heartbeats it, as it does after a failover.
      const onB = b.connect({ key: b.key("local-agent") });
      // Past the heartbeat timeout plus the takeover grace (TAKEOVER_AGENT_GRACE_MS) for the silent one.
      const until = Date.now() + 1500 + TAKEOVER_AGENT_GRACE_MS + 1000;
      while (Date.now() < until) {
        const hb = await onB.request("heartbeat", { agentId, runningRuns: [runId] }, { retry: false });
        assert.deepEqual(hb.cancel, []);
        if (hb.reregister) {
          const r = await onB.request("registerAgent", registration(agentId, [runId]), { retry: false });
          assert.deepEqual(r.cancel, [], "the run is not to be stopped");
        }
        await sleep(300);
      }
      const r = await statusOf(runId);
      assert.equal(r.status, "RUNNING", JSON.stringify(r));
      const lost = await statusOf(goneRun);
      assert.deepEqual([lost.status, lost.reason], ["CRASHED", "agent_lost"], "the agent that never came back is lost");
    },
  );
});

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { clientKeyOf, isCdktrError, ManualClock, PrincipalClient, readKeyFile } from "@cdktr/protocol";
import { freePorts, makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { createPrincipal } from "./app.js";
import { loadConfig } from "./config.js";
import { SqliteStore } from "./store/sqlite/sqlite-store.js";
import { definition } from "./test/workflow-fixture.js";

after(() => removeTempDirs());

async function config() {
  const home = makeTempDir();
  const [api, logs, pub] = await freePorts(3);
  return loadConfig(
    {
      HOME: home,
      CDKTR_PRINCIPAL_PORT: String(api),
      CDKTR_LOGS_LISTENING_PORT: String(logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(pub),
      CDKTR_WORKFLOW_DIR: join(home, "missing-dir"),
      CDKTR_DB_PATH: join(home, "db"),
    },
    { cwd: home, dotEnv: false },
  );
}

describe("createPrincipal lifecycle", () => {
  it("stop() during start() leaves nothing open: the same ports bind again", async () => {
    const c = await config();
    for (let i = 0; i < 3; i++) {
      const p = createPrincipal(c);
      const starting = p.start().then(
        () => "started",
        () => "aborted",
      );
      await new Promise((r) => setTimeout(r, i * 15));
      await p.stop();
      await starting;
    }
    const last = createPrincipal(c);
    const ep = await last.start();
    assert.equal(ep.api, `tcp://127.0.0.1:${c.apiPort}`);
    await last.stop();
    await last.stop(); // idempotent
  });

  it("a missing workflow directory is not fatal", async () => {
    const p = createPrincipal(await config());
    await p.start();
    assert.ok(p.endpoints !== null);
    await p.stop();
  });

  it("runs on the injected clock: advancing it expires a lease, declares a silent agent lost, crashes and requeues its run", async () => {
    const clock = new ManualClock();
    const base = await config();
    const c = { ...base, apiPort: 0, logsPort: 0, publishPort: 0, leaseMs: 10_000, heartbeatTimeoutMs: 30_000 };
    const store = SqliteStore.open({ path: join(makeTempDir(), "db"), clock });
    const wf = definition("wf", "on_agent_lost: requeue");
    const p = createPrincipal(c, {
      clock,
      store,
      scanWorkflows: async () => ({ workflows: new Map([["wf", wf]]), errors: [], warnings: [] }),
    });
    const ep = await p.start();
    // The local operator key the principal made on its first start (authentication is on by default).
    const key = clientKeyOf(readKeyFile(join(c.keysDir, "local-operator.json")));
    const api = new PrincipalClient({ endpoint: ep.api, timeoutMs: 5000, key });
    const agent = (agentId: string) => ({ agentId, host: "h", capacity: 1, labels: [], version: "t", runningRuns: [] });
    const advance = async (ms: number): Promise<void> => {
      await clock.advance(ms); // fires the principal's periodic checks due by then
      await store.drain();
    };
    try {
      await api.registerAgent(agent("a"));
      const { runId } = await api.runWorkflow({ workflowId: "wf" });
      const first = await api.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
      assert.equal(first.assignment?.run.runId, runId);

      await advance(10_000 + 1_000); // the lease, plus one check period
      assert.equal((await api.getRun(runId)).run.status, "QUEUED", "lease expired");
      await assert.rejects(
        api.confirmAssignment({ agentId: "a", runId, token: first.assignment?.token ?? "" }),
        (e: unknown) => isCdktrError(e, "STALE_ASSIGNMENT"),
      );

      await api.registerAgent(agent("b"));
      const second = await api.fetchWork({ agentId: "b", waitMs: 0, freeSlots: 1 });
      assert.equal(second.assignment?.run.runId, runId);
      await api.confirmAssignment({ agentId: "b", runId, token: second.assignment?.token ?? "" });
      assert.equal((await api.getRun(runId)).run.status, "RUNNING");

      await advance(30_000 + 1_000); // b sends no heartbeat for the timeout, plus one check period
      const crashed = await api.getRun(runId);
      assert.equal(crashed.run.status, "CRASHED");
      assert.equal(crashed.run.reason, "agent_lost");
      assert.deepEqual((await api.listAgents()).agents.find((x) => x.agentId === "b")?.status, "LOST");
      const requeued = (await api.listRuns({ source: "requeue" })).runs;
      assert.equal(requeued.length, 1);
      assert.equal(requeued[0]?.status, "QUEUED");
      assert.match(requeued[0]?.message ?? "", new RegExp(`^requeue of run ${runId} `));
    } finally {
      api.close();
      await p.stop();
    }
  });
});

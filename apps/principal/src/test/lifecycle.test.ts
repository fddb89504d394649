import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, preparePrincipal, waitFor } from "@cdktr/test-utils";
import { registerAgent } from "./helpers.js";

afterEach(cleanup);

describe("process lifecycle", () => {
  it("invalid configuration exits 2 with one readable line per problem", async () => {
    const p = await preparePrincipal();
    const svc = await p.start({
      waitReady: false,
      env: { CDKTR_PRINCIPAL_PORT: "abc", CDKTR_ASSIGNMENT_LEASE_MS: "-5", CDKTR_LOG_LEVEL: "loud" },
    });
    const exit = await svc.exited;
    assert.equal(exit.code, 2);
    const text = svc.lines.join("\n");
    assert.match(text, /CDKTR_PRINCIPAL_PORT: .*0 to 65535.*"abc"/);
    assert.match(text, /CDKTR_ASSIGNMENT_LEASE_MS: .*"-5"/);
    assert.match(text, /CDKTR_LOG_LEVEL: .*"loud"/);
    assert.ok(!text.includes("    at "), "no stack trace");
  });

  it("reads a .env file in the working directory without overriding the environment", async () => {
    const p = await preparePrincipal();
    writeFileSync(join(p.home, ".env"), `CDKTR_ASSIGNMENT_LEASE_MS=oops\nCDKTR_PRINCIPAL_PORT=1\n`);
    const svc = await p.start({ waitReady: false });
    const exit = await svc.exited;
    assert.equal(exit.code, 2);
    const text = svc.lines.join("\n");
    assert.match(text, /CDKTR_ASSIGNMENT_LEASE_MS/);
    assert.doesNotMatch(text, /CDKTR_PRINCIPAL_PORT/, "the environment wins over .env");
  });

  it("SIGTERM answers a parked fetchWork and exits 0; the ready line shows the real endpoints", async () => {
    const p = await preparePrincipal();
    // The fixture starts the principal on port 0 (OS-assigned) and reads its ports from this line.
    const svc = await p.start();
    const ready = svc.ready as {
      endpoints: { api: string; logs: string; publish: string };
      workflows: number;
      dbPath: string;
    };
    assert.match(ready.endpoints.api, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(ready.endpoints.api, "tcp://127.0.0.1:0");
    assert.equal(ready.workflows, 1);
    assert.equal(ready.dbPath, p.dbPath);
    await registerAgent(p.client, "a");
    const parked = p.client.fetchWork({ agentId: "a", waitMs: 30_000, freeSlots: 1 }, { timeoutMs: 35_000 });
    // Same connection, handled in arrival order: once this ping is answered, fetchWork is parked.
    await p.client.ping();
    const stopped = svc.stop("SIGTERM");
    const reply = await parked;
    assert.deepEqual(reply, { assignment: null, cancel: [] });
    assert.deepEqual(await stopped, { code: 0, signal: null });
  });

  it("after a restart, held runs get a fresh heartbeat deadline: a returning agent keeps its run, a vanished one's run crashes", async () => {
    const p = await preparePrincipal({ env: { CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "3000" } });
    const svc = await p.start();
    const kept = await p.client.runWorkflow({ workflowId: "hello" });
    const lost = await p.client.runWorkflow({ workflowId: "hello" });
    await registerAgent(p.client, "stays");
    await registerAgent(p.client, "vanishes");
    const tokens = new Map<string, string>();
    for (const [agentId, runId] of [
      ["stays", kept.runId],
      ["vanishes", lost.runId],
    ] as const) {
      const w = await p.client.fetchWork({ agentId, waitMs: 0, freeSlots: 1 });
      assert.equal(w.assignment?.run.runId, runId);
      await p.client.confirmAssignment({ agentId, runId, token: w.assignment?.token ?? "" });
      tokens.set(runId, w.assignment?.token ?? "");
    }
    await svc.kill();
    // Longer than the timeout: stored heartbeats are stale, yet nothing may crash at start.
    await new Promise((r) => setTimeout(r, 3300));
    await p.start();
    assert.equal((await p.client.getRun(kept.runId)).run.status, "RUNNING");
    assert.equal((await p.client.getRun(lost.runId)).run.status, "RUNNING");
    assert.deepEqual(await p.client.heartbeat({ agentId: "stays", runningRuns: [kept.runId] }), {
      cancel: [],
      reregister: true,
    });
    const reg = await p.client.registerAgent({
      agentId: "stays",
      host: "h",
      capacity: 1,
      labels: [],
      version: "t",
      runningRuns: [kept.runId],
    });
    assert.deepEqual(reg.cancel, []);
    const beat = setInterval(
      () => void p.client.heartbeat({ agentId: "stays", runningRuns: [kept.runId] }).catch(() => undefined),
      200,
    );
    try {
      await waitFor(async () => (await p.client.getRun(lost.runId)).run.status === "CRASHED", {
        timeoutMs: 10_000,
        what: "vanished agent's run CRASHED",
      });
      assert.equal((await p.client.getRun(kept.runId)).run.status, "RUNNING");
      const done = await p.client.runStatus({
        agentId: "stays",
        runId: kept.runId,
        token: tokens.get(kept.runId),
        status: "COMPLETED",
        time: new Date().toISOString(),
      });
      assert.deepEqual(done, { applied: true, status: "COMPLETED" });
    } finally {
      clearInterval(beat);
    }
  });
});

import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { isCdktrError } from "@cdktr/protocol";
import { cleanup, preparePrincipal, startPrincipal, waitFor } from "@cdktr/test-utils";
import Database from "better-sqlite3";
import { countRows, registerAgent } from "./helpers.js";

function runIds(dbPath: string): string[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare("SELECT run_id FROM runs").all() as { run_id: string }[]).map((r) => r.run_id);
  } finally {
    db.close();
  }
}

afterEach(cleanup);

describe("durability", () => {
  it("every acknowledged trigger survives SIGKILL right after its ack, and nothing extra appears", async () => {
    const p = await preparePrincipal();
    const svc = await p.start();
    const c = p.connect();
    const N = 200;
    let acked: string[] = [];
    try {
      const replies = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          c.runWorkflow({ workflowId: "hello", idempotencyKey: `k-${i}`, source: "durability" }),
        ),
      );
      acked = replies.map((r) => r.runId);
      // Kill the moment the last acknowledgement arrived: no graceful flush can help.
      await svc.kill();
    } finally {
      c.close();
    }
    assert.equal(new Set(acked).size, N);

    const svc2 = await p.start();
    const c2 = p.connect();
    try {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await c2.listRuns({
          workflowId: "hello",
          order: "asc",
          limit: 50,
          ...(cursor === undefined ? {} : { cursor }),
        });
        for (const r of page.runs) {
          assert.equal(r.status, "QUEUED", `run ${r.runId}`);
          seen.push(r.runId);
        }
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
      assert.deepEqual(seen, [...acked].sort(), "exactly the acknowledged runs, in id order");
      // The same keys still dedupe after the restart.
      const dup = await c2.runWorkflow({ workflowId: "hello", idempotencyKey: "k-7", source: "durability" });
      assert.equal(dup.duplicate, true);
      assert.equal(dup.runId, acked[7]);
      assert.deepEqual(await svc2.stop(), { code: 0, signal: null });
    } finally {
      c2.close();
    }
    assert.equal(countRows(p.dbPath, "runs"), N);
  });

  it("SIGTERM in the middle of a burst of triggers: every acknowledged run is stored, the rest were refused, exit 0", async () => {
    const p = await preparePrincipal();
    const svc = await p.start();
    const c = p.connect({ timeoutMs: 3000 });
    const acked: string[] = [];
    let refused = 0;
    let i = 0;
    try {
      const burst: Promise<void>[] = [];
      const fire = (): void => {
        for (let k = 0; k < 10; k++, i++) {
          burst.push(
            c.runWorkflow({ workflowId: "hello", idempotencyKey: `burst-${i}` }, { retry: false }).then(
              (r) => void acked.push(r.runId),
              () => void refused++,
            ),
          );
        }
      };
      const producer = setInterval(fire, 2);
      await waitFor(() => acked.length >= 50, { timeoutMs: 10_000, what: "first acks" });
      const exit = svc.stop("SIGTERM");
      await waitFor(() => refused > 0 || i >= 5000, { timeoutMs: 10_000, what: "refusals" });
      clearInterval(producer);
      await Promise.all(burst);
      assert.deepEqual(await exit, { code: 0, signal: null });
    } finally {
      c.close();
    }
    assert.equal(acked.length + refused, i);
    if (process.env.CDKTR_TEST_VERBOSE) process.stderr.write(`acked ${acked.length}, refused ${refused}\n`);
    const stored = new Set(runIds(p.dbPath));
    assert.ok(acked.length > 0);
    for (const runId of acked) assert.ok(stored.has(runId), `acknowledged run ${runId} stored`);
  });

  it("an unconfirmed assignment returns to the queue after its lease; the stale token is refused", async () => {
    const p = await startPrincipal({ env: { CDKTR_ASSIGNMENT_LEASE_MS: "1000" } });
    const { runId } = await p.client.runWorkflow({ workflowId: "hello" });
    await registerAgent(p.client, "a1");
    await registerAgent(p.client, "a2");
    const first = await p.client.fetchWork({ agentId: "a1", waitMs: 0, freeSlots: 1 });
    assert.equal(first.assignment?.run.runId, runId);
    const none = await p.client.fetchWork({ agentId: "a2", waitMs: 0, freeSlots: 1 });
    assert.equal(none.assignment, null, "an assigned run is not handed out twice");

    // The fetch reply does not wait for the assignment's commit: see it stored first, so that
    // QUEUED below really is the lease expiry and not the moment before the assignment landed.
    await waitFor(async () => (await p.client.getRun(runId)).run.status === "ASSIGNED", {
      timeoutMs: 5000,
      what: "assignment stored",
    });
    await waitFor(async () => (await p.client.getRun(runId)).run.status === "QUEUED", {
      timeoutMs: 5000,
      what: "lease expiry",
    });
    await assert.rejects(
      p.client.confirmAssignment({ agentId: "a1", runId, token: first.assignment?.token ?? "" }),
      (e: unknown) => isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    const second = await p.client.fetchWork({ agentId: "a2", waitMs: 2000, freeSlots: 1 });
    assert.equal(second.assignment?.run.runId, runId);
    assert.notEqual(second.assignment?.token, first.assignment?.token);
    const ok = await p.client.confirmAssignment({ agentId: "a2", runId, token: second.assignment?.token ?? "" });
    assert.equal(ok.run.status, "RUNNING");
    assert.equal(ok.run.agentId, "a2");
    // The old holder still cannot take it over.
    await assert.rejects(
      p.client.confirmAssignment({ agentId: "a1", runId, token: first.assignment?.token ?? "" }),
      (e: unknown) => isCdktrError(e, "STALE_ASSIGNMENT"),
    );
    const history = countRows(p.dbPath, "status_history", `WHERE run_id = '${runId}' AND task_id IS NULL`);
    assert.equal(history, 5, "QUEUED, ASSIGNED, QUEUED (lease), ASSIGNED, RUNNING");
  });
});

import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { isCdktrError } from "@cdktr/protocol";
import { cleanup, fillDisk, mountTmpfs, runCli, startAgent, startPrincipal, waitFor } from "@cdktr/test-utils";

/** Size of the file system the database lives on. */
const DISK_BYTES = 16 * 1024 * 1024;

afterEach(cleanup);

describe("principal on a full disk (issue 13)", () => {
  it("refuses triggers with a retryable STORAGE_FULL, ping and `cdktr ping` say degraded, and it recovers by itself when space returns, losing nothing acknowledged", async (t) => {
    const dir = mountTmpfs(t, DISK_BYTES);
    if (dir === null) return;
    const p = await startPrincipal({ dbPath: join(dir, "cdktr.db") });
    const acked = new Set<string>();
    let n = 0;
    const trigger = async (): Promise<void> => {
      const r = await p.client.runWorkflow({ workflowId: "hello", source: "test", idempotencyKey: `k-${++n}` });
      acked.add(r.runId);
    };
    for (let i = 0; i < 5; i++) await trigger();
    const healthy = await p.client.ping();
    assert.equal(healthy.health, "ok");
    assert.deepEqual(healthy.problems, []);

    const filler = fillDisk(dir);
    // The WAL may still have room for a few commits; then the disk is full.
    let refusal: unknown = null;
    for (let i = 0; i < 2000 && refusal === null; i++) {
      try {
        await trigger();
      } catch (e) {
        refusal = e;
      }
    }
    assert.ok(
      isCdktrError(refusal, "STORAGE_FULL"),
      `a trigger on a full disk fails with STORAGE_FULL, got ${String(refusal)}`,
    );
    assert.equal(refusal.retryable, true);
    assert.match(refusal.message, /disk is full/);
    // Still refused, with the same code, while the disk stays full (no INTERNAL, no crash).
    await assert.rejects(trigger(), (e: unknown) => isCdktrError(e, "STORAGE_FULL"));
    const sick = await p.client.ping();
    assert.equal(sick.health, "degraded");
    assert.deepEqual(sick.problems, ["disk full"]);
    const cli = await runCli(["ping"], { env: p.clientEnv });
    assert.equal(cli.code, 1, `cdktr ping exits 1 when degraded: ${cli.stdout}${cli.stderr}`);
    assert.match(cli.stdout, /degraded \(disk full\)/);

    rmSync(filler);
    // Nothing writes now: the principal finds out by itself that space is back.
    await waitFor(async () => (await p.client.ping()).health === "ok", { timeoutMs: 15_000 });
    assert.equal((await runCli(["ping"], { env: p.clientEnv })).code, 0);
    for (let i = 0; i < 3; i++) await trigger();

    // Every acknowledged trigger is stored and queued (memory and database agree): each one runs.
    const { runs } = await p.client.listRuns({ workflowId: "hello", limit: 1000 });
    const listed = new Set(runs.map((r) => r.runId));
    for (const id of acked) assert.ok(listed.has(id), `acknowledged run ${id} is in listRuns`);
    assert.equal(runs.length, acked.size, "and nothing that was refused");
    await startAgent(p);
    for (const id of acked) assert.equal((await p.waitForRun(id, 60_000)).run.status, "COMPLETED");
  });
});

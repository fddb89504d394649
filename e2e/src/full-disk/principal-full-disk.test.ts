import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isCdktrError } from "@cdktr/protocol";
import { cleanup, runCli, startAgent, startPrincipal, waitFor } from "@cdktr/test-utils";

/** Size of the file system the database lives on. */
const DISK = "16m";

let mounted: string | null = null;
afterEach(async () => {
  await cleanup(); // the principal first: it holds files on the mount
  if (mounted !== null) {
    execFileSync("umount", ["-l", mounted]);
    rmSync(mounted, { recursive: true, force: true });
    mounted = null;
  }
});

/**
 * A small tmpfs to fill, or null (with the reason) when this process may not mount one: the test
 * then skips, except with CI set, where it fails.
 */
function mountSmallDisk(): { dir: string } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), "cdktr-full-disk-"));
  let why: string | null = null;
  if (process.getuid?.() !== 0) why = "mounting a tmpfs needs root";
  else {
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${DISK}`, "tmpfs", dir], { stdio: "pipe" });
      mounted = dir;
      return { dir };
    } catch (e) {
      why = `mount -t tmpfs failed: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  const msg = `${why}: the full-disk test needs a small file system of its own (run as root, or in a container with CAP_SYS_ADMIN)`;
  if (process.env.CI !== undefined && process.env.CI !== "") throw new Error(`${msg}; CI is set: it is required`);
  return { skip: msg };
}

/** Write zeros into `path` until the file system has no room left; returns the bytes written. */
function fill(path: string): number {
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  try {
    for (;;) {
      try {
        written += writeSync(fd, chunk);
      } catch (e) {
        if ((e as { code?: string }).code === "ENOSPC") break;
        throw e;
      }
    }
    // The last partial page too.
    for (;;) {
      try {
        const n = writeSync(fd, chunk, 0, 512);
        if (n === 0) break;
        written += n;
      } catch {
        break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

describe("principal on a full disk (issue 13)", () => {
  it("refuses triggers with a retryable STORAGE_FULL, ping and `cdktr ping` say degraded, and it recovers by itself when space returns, losing nothing acknowledged", async (t) => {
    const disk = mountSmallDisk();
    if ("skip" in disk) {
      t.skip(disk.skip);
      return;
    }
    const p = await startPrincipal({ dbPath: join(disk.dir, "cdktr.db") });
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

    const filler = join(disk.dir, "filler");
    fill(filler);
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

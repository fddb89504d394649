/**
 * The agent's data directory on a full disk (a 1 MiB tmpfs of its own, mounted as root): during a
 * principal outage the spool fills the disk, the task's output pauses (the task blocks on its
 * pipe, nothing is dropped), the heartbeat reports the problem (`listAgents` shows it while the
 * disk stays full), and once space returns every line reaches the principal exactly once.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, fillDisk, mountTmpfs, runCli, waitFor, workflowYaml } from "@cdktr/test-utils";
import { prepareCluster, startFastAgent } from "./helpers.js";

afterEach(cleanup);

const freeBytes = (dir: string): number => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

test("full spool disk during an outage: output pauses, listAgents shows the problem, every line arrives once after", async (t) => {
  const mnt = mountTmpfs(t, 1024 * 1024);
  if (mnt === null) return;
  const N = 30_000;
  const c = await prepareCluster();
  const progress = join(c.home, "progress");
  const pad = "p".repeat(90);
  // Waits for `go`, then prints N lines, noting its progress every 500 lines outside the tmpfs.
  const script =
    `while [ ! -f '${c.home}/go' ]; do sleep 0.05; done; ` +
    `awk 'BEGIN { for (i = 1; i <= ${N}; i++) { printf "line %d ${pad}\\n", i; ` +
    `if (i % 500 == 0) { fflush(); print i > "${progress}"; close("${progress}") } } }'; ` +
    `touch '${c.home}/done'`;
  c.writeWorkflows({ "flood.yml": workflowYaml({ tasks: { flood: { cmd: "sh", args: ["-c", script] } } }) });
  await c.start();
  await startFastAgent(c, { dataDir: join(mnt, "agent"), env: { CDKTR_AGENT_ID: "disk-agent" } });
  const runId = await c.run("flood");
  await waitFor(async () => (await c.client.getRun(runId)).run.status === "RUNNING", {
    timeoutMs: 15_000,
    what: "run RUNNING",
  });

  // Principal down: the lines go to the spool until the disk is full, then wait in memory.
  await c.kill();
  writeFileSync(join(c.home, "go"), "");
  const written = (): number => Number(existsSync(progress) ? readFileSync(progress, "utf8").trim() || 0 : 0);
  let last = -1;
  let since = Date.now();
  await waitFor(
    () => {
      const now = written();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      // A send to the dead principal fails at its 10 s timeout; then the spool fills the disk.
      return now > 0 && freeBytes(mnt) < 128 * 1024 && Date.now() - since > 3000;
    },
    { timeoutMs: 45_000, intervalMs: 100, what: "the spool filled the disk and the task's output paused" },
  );
  assert.ok(last < N, `the task is blocked part way (${last} of ${N} lines written)`);
  t.diagnostic(`paused after ${last} of ${N} lines, ${freeBytes(mnt)} bytes free on the tmpfs`);
  assert.equal(existsSync(join(c.home, "done")), false, "the task has not finished");

  // Keep the disk full while the principal is back, so that the problem stays to be seen.
  const filler = fillDisk(mnt);
  const hog = setInterval(() => fillDisk(mnt), 20);
  try {
    await c.start();
    const problems = await waitFor(
      async () => {
        const a = (await c.client.listAgents({})).agents.find((x) => x.agentId === "disk-agent");
        return a?.problems?.some((p) => p.startsWith("disk full:")) === true ? a.problems : undefined;
      },
      { timeoutMs: 20_000, what: "listAgents shows the disk problem" },
    );
    t.diagnostic(`listAgents problems: ${JSON.stringify(problems)}`);
    assert.ok(
      problems.some((p) => p.includes(join(mnt, "agent"))),
      `the problem names the place: ${JSON.stringify(problems)}`,
    );
    const table = await runCli(["agents"], { env: c.env });
    assert.match(table.stdout, /disk-agent .*disk full: /, `cdktr agents shows the problem:\n${table.stdout}`);
    // With the principal back, the lines held in memory flow to it directly: the task goes on.
    await waitFor(() => existsSync(join(c.home, "done")), { timeoutMs: 60_000, what: "task done" });
  } finally {
    clearInterval(hog);
  }
  rmSync(filler);
  await waitFor(
    async () => {
      const a = (await c.client.listAgents({})).agents.find((x) => x.agentId === "disk-agent");
      return a !== undefined && (a.problems ?? []).length === 0;
    },
    { timeoutMs: 20_000, what: "the problem cleared once space returned" },
  );
  const r = await c.waitForRun(runId, 30_000);
  assert.equal(r.run.status, "COMPLETED", JSON.stringify(r.run));
  const out = (await c.logs(runId, "flood")).filter((l) => l.stream === "stdout").sort((a, b) => a.seq - b.seq);
  assert.equal(out.length, N, "lines delivered = lines written");
  const expected = Array.from({ length: N }, (_, i) => `line ${i + 1} ${pad}`);
  assert.deepEqual(
    out.map((l) => l.line),
    expected,
    "every line exactly once, in order",
  );
});

/**
 * The agent's status outbox on a full disk (a 1 MiB tmpfs of its own, mounted as root) while the
 * principal is up: once a transition cannot be journaled, the agent pauses its tasks' output (the
 * task blocks on its pipe, nothing is dropped), takes no new run, and reports the problem in its
 * heartbeats; once space returns it goes on by itself, and every line and status arrives.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, fillDisk, mountTmpfs, waitFor, workflowYaml } from "@cdktr/test-utils";
import { prepareCluster, startFastAgent } from "./helpers.js";

afterEach(cleanup);

test("full outbox disk with the principal up: output pauses, no new run starts, the problem is reported, all resumes once space returns", async (t) => {
  const mnt = mountTmpfs(t, 1024 * 1024);
  if (mnt === null) return;
  const N = 30_000;
  const c = await prepareCluster({}, { env: { CDKTR_ASSIGNMENT_LEASE_MS: "3000" } });
  const progress = join(c.home, "progress");
  const pad = "p".repeat(90);
  // Waits for `go`, then prints N lines, noting its progress every 500 lines outside the tmpfs.
  const flood =
    `while [ ! -f '${c.home}/go' ]; do sleep 0.05; done; ` +
    `awk 'BEGIN { for (i = 1; i <= ${N}; i++) { printf "line %d ${pad}\\n", i; ` +
    `if (i % 500 == 0) { fflush(); print i > "${progress}"; close("${progress}") } } }'; ` +
    `touch '${c.home}/done'`;
  c.writeWorkflows({
    "flood.yml": workflowYaml({ tasks: { flood: { cmd: "sh", args: ["-c", flood] } } }),
    "small.yml": workflowYaml({ tasks: { hi: { cmd: "echo", args: ["hi"] } } }),
  });
  await c.start();
  await startFastAgent(c, {
    dataDir: join(mnt, "agent"),
    env: { CDKTR_AGENT_ID: "outbox-agent", CDKTR_AGENT_MAX_CONCURRENCY: "4" },
  });
  const runId = await c.run("flood");
  await waitFor(async () => (await c.client.getRun(runId)).tasks[0]?.status === "RUNNING", {
    timeoutMs: 15_000,
    what: "flood RUNNING",
  });
  // Every transition so far delivered: the journal is gone, nothing waits.
  await waitFor(() => !existsSync(join(mnt, "agent", "outbox.json")), { timeoutMs: 10_000, what: "outbox empty" });

  const filler = fillDisk(mnt);
  const hog = setInterval(() => fillDisk(mnt), 20);
  const problems = async (): Promise<string[]> =>
    (await c.client.listAgents({})).agents.find((a) => a.agentId === "outbox-agent")?.problems ?? [];
  let last = -1;
  let run2 = "";
  let poke = "";
  try {
    await new Promise((r) => setTimeout(r, 200));
    // The first transition on the full disk: the start of a run taken now cannot be journaled, so
    // the agent does not start it (its next heartbeat gives it back to the queue). From then on
    // the agent pushes back.
    poke = await c.run("small");
    const seen = await waitFor(
      async () => {
        const p = await problems();
        return p.some((x) => x.startsWith("disk full: status outbox")) ? p : undefined;
      },
      { timeoutMs: 20_000, what: "listAgents shows the outbox problem" },
    );
    t.diagnostic(`listAgents problems: ${JSON.stringify(seen)}`);
    assert.ok(
      seen.some((p) => p.includes(join(mnt, "agent", "outbox.json"))),
      `the problem names the file: ${JSON.stringify(seen)}`,
    );
    await waitFor(async () => (await c.client.getRun(poke)).run.status === "QUEUED", {
      timeoutMs: 10_000,
      what: "the run whose start could not be journaled back in the queue",
    });

    writeFileSync(join(c.home, "go"), "");
    run2 = await c.run("small");
    const written = (): number => Number(existsSync(progress) ? readFileSync(progress, "utf8").trim() || 0 : 0);
    let since = Date.now();
    await waitFor(
      () => {
        const now = written();
        if (now !== last) {
          last = now;
          since = Date.now();
        }
        return existsSync(join(c.home, "done")) || (now > 0 && Date.now() - since > 3000);
      },
      { timeoutMs: 45_000, intervalMs: 100, what: "the task's output paused (or the task finished)" },
    );
    assert.equal(existsSync(join(c.home, "done")), false, `the task is blocked part way (${last} of ${N} lines)`);
    t.diagnostic(`paused after ${last} of ${N} lines`);
    const r2 = await c.client.getRun(run2);
    assert.ok(
      r2.run.status === "QUEUED" || r2.run.status === "ASSIGNED",
      `no new run starts while the outbox cannot be written: ${r2.run.status}`,
    );
    assert.ok(
      (await problems()).some((x) => x.startsWith("disk full: status outbox")),
      "still reported",
    );
  } finally {
    clearInterval(hog);
  }
  rmSync(filler);
  await waitFor(async () => (await problems()).length === 0, {
    timeoutMs: 20_000,
    what: "the problem cleared once space returned",
  });
  const r = await c.waitForRun(runId, 60_000);
  assert.equal(r.run.status, "COMPLETED", JSON.stringify(r.run));
  for (const id of [poke, run2]) {
    const done = await c.waitForRun(id, 30_000);
    assert.equal(done.run.status, "COMPLETED", JSON.stringify(done.run));
  }
  const out = (await c.logs(runId, "flood")).filter((l) => l.stream === "stdout").sort((a, b) => a.seq - b.seq);
  assert.equal(out.length, N, "lines delivered = lines written");
  assert.deepEqual(
    out.map((l) => l.line),
    Array.from({ length: N }, (_, i) => `line ${i + 1} ${pad}`),
    "every line exactly once, in order",
  );
});

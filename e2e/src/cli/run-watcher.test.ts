/**
 * RunWatcher against a real principal, with this test acting as the agent (PrincipalClient +
 * LogClient), so the order and timing of transitions and log lines are under its control.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { RunWatcher } from "@cdktr/cli";
import type { LogLine, RunRecord, TaskRunRecord } from "@cdktr/protocol";
import { cleanup, cliBin, spawnService, waitFor } from "@cdktr/test-utils";
import { setupFakeAgent as setup } from "./fake-agent.js";

afterEach(cleanup);

test("subscribed before the trigger: every transition once, log holes filled, per-task order", async () => {
  const h = await setup();
  try {
    const runs: RunRecord[] = [];
    const tasks: TaskRunRecord[] = [];
    const printed: LogLine[] = [];
    const watcher = h.watcher({
      follow: true,
      onRun: (r) => runs.push(r),
      onTask: (t) => tasks.push(t),
      onLog: (l) => printed.push(l),
    });
    const runId = await h.trigger();
    const done = watcher.watch(runId);
    await h.startRun(runId);
    await h.task(runId, "hello", "RUNNING");
    // seq 3 of `hello` arrives last: 4 must wait for it.
    await h.send([h.line(runId, "hello", 1), h.line(runId, "hello", 2), h.line(runId, "hello", 4)]);
    await waitFor(() => printed.length >= 2, { what: "lines 1 and 2", timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      printed.map((l) => l.seq),
      [1, 2],
      "line 4 is held back until 3 arrives",
    );
    await h.send([h.line(runId, "hello", 3)]);
    await h.task(runId, "hello", "COMPLETED");
    await h.task(runId, "goodbye", "RUNNING");
    await h.send([h.line(runId, "goodbye", 1)]);
    await h.task(runId, "goodbye", "COMPLETED");
    await h.finish(runId);
    const final = await done;
    await watcher.close();

    assert.equal(final.status, "COMPLETED");
    assert.deepEqual(
      printed.filter((l) => l.taskId === "hello").map((l) => l.seq),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      printed.filter((l) => l.taskId === "goodbye").map((l) => l.seq),
      [1],
    );
    const statuses = runs.map((r) => r.status);
    assert.equal(new Set(statuses).size, statuses.length, `each run state once: ${statuses.join(",")}`);
    assert.ok(statuses.includes("RUNNING") && statuses.at(-1) === "COMPLETED", statuses.join(","));
    const seen = tasks.map((t) => `${t.taskId}:${t.status}`);
    for (const want of ["hello:RUNNING", "hello:COMPLETED", "goodbye:RUNNING", "goodbye:COMPLETED"]) {
      assert.equal(seen.filter((s) => s === want).length, 1, `${want} once in ${seen.join(",")}`);
    }
  } finally {
    h.close();
  }
});

test("lines stored before the watcher existed are read back, in order, once", async () => {
  const h = await setup();
  try {
    const runId = await h.trigger();
    await h.startRun(runId);
    await h.task(runId, "hello", "RUNNING");
    await h.send([1, 2, 3, 4, 5].map((s) => h.line(runId, "hello", s)));
    const printed: LogLine[] = [];
    const watcher = h.watcher({
      follow: true,
      onLog: (l) => printed.push(l),
    });
    const done = watcher.watch(runId);
    await waitFor(() => printed.length >= 5, { what: "the stored lines", timeoutMs: 5000 });
    await h.send([h.line(runId, "hello", 6)]);
    await h.task(runId, "hello", "COMPLETED");
    await h.task(runId, "goodbye", "RUNNING");
    await h.task(runId, "goodbye", "COMPLETED");
    await h.finish(runId);
    assert.equal((await done).status, "COMPLETED");
    await watcher.close();
    assert.deepEqual(
      printed.map((l) => l.seq),
      [1, 2, 3, 4, 5, 6],
    );
  } finally {
    h.close();
  }
});

test("cdktr logs --follow --run: stored lines, then live ones in order, until SIGTERM", async () => {
  const h = await setup();
  try {
    const runId = await h.trigger();
    await h.startRun(runId);
    await h.task(runId, "hello", "RUNNING");
    await h.send([h.line(runId, "hello", 1), h.line(runId, "hello", 2)]);
    const follow = await spawnService({
      script: cliBin(),
      args: ["logs", "--follow", "--run", runId],
      env: h.p.env,
      name: "logs --follow",
      waitReady: false,
    });
    await follow.waitForLine((l) => l.endsWith("hello line 2"), 10_000);
    // a hole: 4 before 3
    await h.send([h.line(runId, "hello", 4)]);
    await h.send([h.line(runId, "hello", 3)]);
    await h.send([h.line(runId, "goodbye", 1)]);
    await follow.waitForLine((l) => l.endsWith("goodbye line 1"), 10_000);
    await follow.waitForLine((l) => l.endsWith("hello line 4"), 10_000);
    const result = await follow.stop("SIGTERM", 10_000);
    assert.equal(result.code, 0);
    const hello = follow.lines.filter((l) => /hello line \d$/.test(l)).map((l) => Number(l.at(-1)));
    assert.deepEqual(hello, [1, 2, 3, 4], follow.lines.join("\n"));
    assert.equal(follow.lines.filter((l) => l.endsWith("goodbye line 1")).length, 1);
  } finally {
    h.close();
  }
});

test("the principal restarting during a run does not end the watch", async () => {
  const h = await setup();
  try {
    let outages = 0;
    const watcher = h.watcher({
      follow: false,
      onUnreachable: () => outages++,
    });
    const runId = await h.trigger();
    const done = watcher.watch(runId);
    await h.startRun(runId);
    await h.restartPrincipal(4000);
    await h.task(runId, "hello", "RUNNING");
    await h.task(runId, "hello", "COMPLETED");
    await h.task(runId, "goodbye", "RUNNING");
    await h.task(runId, "goodbye", "COMPLETED");
    await h.finish(runId);
    const final = await done;
    await watcher.close();
    assert.equal(final.status, "COMPLETED");
    assert.equal(outages, 1, "the outage was reported once");
  } finally {
    h.close();
  }
});

test("a trigger key's watcher gets its run live from the run's own topics; the workflow's are refused to it", async () => {
  const h = await setup();
  const stop = new AbortController();
  const watchers: RunWatcher[] = [];
  try {
    const ci = await h.p.createKey("ci", "trigger");
    const client = h.p.connect({ key: ci.key });
    const watch = (subscribe: "workflow" | "run") => {
      const seen = { tasks: [] as string[], lines: [] as number[], logReads: 0 };
      const watcher = new RunWatcher({
        // Counts the watcher's reads of the stored lines (its own run's: a trigger key may).
        client: {
          getRun: (id) => client.getRun(id),
          queryLogs: async (req) => {
            const page = await client.queryLogs(req);
            seen.logReads++;
            return page;
          },
        },
        publishEndpoint: h.p.endpoints.publish,
        key: ci.key,
        workflowId: "hello",
        follow: true,
        subscribe,
        // No poll before the run ends: what is seen until then came through the publish channel.
        pollIntervalMs: 120_000,
        onTask: (t) => {
          if (t.status !== "PENDING") seen.tasks.push(`${t.taskId}:${t.status}`);
        },
        onLog: (l) => seen.lines.push(l.seq),
      });
      watchers.push(watcher);
      return { watcher, seen };
    };
    const broad = watch("workflow");
    const own = watch("run");
    const { runId } = await client.runWorkflow({ workflowId: "hello", source: "test" });
    void broad.watcher.watch(runId, stop.signal).catch(() => undefined);
    const ownDone = own.watcher.watch(runId, stop.signal);
    await new Promise((r) => setTimeout(r, 500)); // the run's subscription reaches the principal
    // Both watchers read the run's stored lines once at the start (none yet); what they see after
    // that, until the next read two minutes away, came through the publish channel.
    await waitFor(() => broad.seen.logReads > 0 && own.seen.logReads > 0, { what: "the watchers' first reads" });
    await h.startRun(runId);
    await h.task(runId, "hello", "RUNNING");
    await h.send([h.line(runId, "hello", 1), h.line(runId, "hello", 2)]);
    await waitFor(() => own.seen.lines.length >= 2, { timeoutMs: 5000, what: "the run's lines, live" });
    assert.deepEqual(own.seen.tasks, ["hello:RUNNING"]);
    assert.deepEqual(own.seen.lines, [1, 2]);
    assert.deepEqual(
      { tasks: broad.seen.tasks, lines: broad.seen.lines },
      { tasks: [], lines: [] },
      "a trigger key receives nothing on the workflow's topics",
    );
    await h.task(runId, "hello", "COMPLETED");
    await h.task(runId, "goodbye", "RUNNING");
    await h.task(runId, "goodbye", "COMPLETED");
    await h.finish(runId);
    // The final run event ends the watch at once (the next poll is two minutes away).
    const final = await Promise.race([
      ownDone,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("the final state never arrived live")), 15_000).unref(),
      ),
    ]);
    assert.equal(final.status, "COMPLETED");
    assert.deepEqual(own.seen.tasks, ["hello:RUNNING", "hello:COMPLETED", "goodbye:RUNNING", "goodbye:COMPLETED"]);
  } finally {
    stop.abort();
    await Promise.all(watchers.map((w) => w.close()));
    h.close();
  }
});

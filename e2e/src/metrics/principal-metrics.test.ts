import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { isCdktrError } from "@cdktr/protocol";
import {
  cleanup,
  fillDisk,
  freePort,
  helloWorkflowYaml,
  mountTmpfs,
  preparePrincipal,
  startAgent,
  startPrincipal,
  waitFor,
  workflowYaml,
} from "@cdktr/test-utils";
import { get, sample } from "./scrape.js";

afterEach(cleanup);

/** GET `path` on the principal's metrics port. */
const getOn = (port: number, path: string, method = "GET") => get(`http://127.0.0.1:${port}`, path, method);

describe("principal metrics and health endpoints (CDKTR_METRICS_PORT)", () => {
  it("counts finished runs by workflow and status, tasks, triggers, dispatches, log lines and agents, by the right amounts", async () => {
    const port = await freePort();
    const p = await startPrincipal({
      env: { CDKTR_METRICS_PORT: String(port) },
      workflows: {
        "hello.yml": helloWorkflowYaml(),
        "fail.yml": workflowYaml({ tasks: { boom: { cmd: "sh", args: ["-c", "echo about to fail; exit 3"] } } }),
      },
    });
    assert.equal(p.service?.ready.metrics, `http://127.0.0.1:${port}`, "the ready line names the metrics URL");
    const before = (await getOn(port, "/metrics")).body;
    assert.equal(sample(before, "cdktr_runs_total", { workflow: "hello", status: "COMPLETED" }), 0);
    assert.equal(sample(before, "cdktr_agents", { status: "ACTIVE" }), 0);

    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await p.client.runWorkflow({ workflowId: "hello", source: "test" })).runId);
    ids.push((await p.client.runWorkflow({ workflowId: "fail", source: "test" })).runId);
    await assert.rejects(p.client.runWorkflow({ workflowId: "nope", source: "test" }), (e: unknown) =>
      isCdktrError(e, "WORKFLOW_NOT_FOUND"),
    );
    const queued = (await getOn(port, "/metrics")).body;
    assert.equal(sample(queued, "cdktr_queue_depth"), 4, "4 runs wait for an agent");

    await startAgent(p);
    const statuses = [];
    for (const id of ids) statuses.push((await p.waitForRun(id, 60_000)).run.status);
    assert.deepEqual(statuses, ["COMPLETED", "COMPLETED", "COMPLETED", "FAILED"]);
    let lines = 0;
    for (const id of ids) lines += (await p.client.queryLogs({ runId: id, limit: 1000 })).lines.length;

    // Metrics follow the committed events: give the last ones a moment.
    let m = "";
    await waitFor(
      async () => {
        m = (await getOn(port, "/metrics")).body;
        return (
          sample(m, "cdktr_runs_total", { workflow: "fail", status: "FAILED" }) === 1 &&
          sample(m, "cdktr_log_lines_ingested_total") === lines
        );
      },
      { timeoutMs: 10_000, what: "the metrics caught up" },
    );
    assert.equal(sample(m, "cdktr_runs_total", { workflow: "hello", status: "COMPLETED" }), 3);
    assert.equal(sample(m, "cdktr_runs_total", { workflow: "fail", status: "FAILED" }), 1);
    assert.equal(sample(m, "cdktr_run_duration_seconds_count", { workflow: "hello", status: "COMPLETED" }), 3);
    assert.equal(
      sample(m, "cdktr_tasks_total", { workflow: "hello", status: "COMPLETED" }),
      6,
      "2 tasks per hello run",
    );
    assert.equal(sample(m, "cdktr_tasks_total", { workflow: "fail", status: "FAILED" }), 1);
    assert.equal(sample(m, "cdktr_dispatch_latency_seconds_count", { workflow: "hello" }), 3);
    assert.equal(sample(m, "cdktr_dispatch_latency_seconds_count", { workflow: "fail" }), 1);
    assert.equal(sample(m, "cdktr_triggers_total", { outcome: "accepted" }), 4);
    assert.equal(sample(m, "cdktr_triggers_total", { outcome: "refused" }), 1);
    assert.equal(sample(m, "cdktr_trigger_ack_seconds_count"), 5);
    assert.ok(lines >= 4 * 2, `the runs wrote log lines (${lines})`);
    assert.equal(sample(m, "cdktr_log_lines_ingested_total"), lines, "every stored line counted once");
    assert.ok(m.includes("\ncdktr_log_lines_pending 0\n"), "no log line waits to be stored now");
    assert.equal(sample(m, "cdktr_queue_depth"), 0);
    assert.equal(sample(m, "cdktr_active_runs", { status: "RUNNING" }), 0);
    assert.equal(sample(m, "cdktr_agents", { status: "ACTIVE" }), 1);
    assert.ok(sample(m, "process_cpu_seconds_total") > 0, "process metrics too");
    assert.equal(sample(m, "cdktr_ready"), 1);
    assert.equal(sample(m, "cdktr_storage_problem", { problem: "disk full" }), 0);

    const health = await getOn(port, "/healthz");
    assert.equal(health.status, 200);
    const ready = await getOn(port, "/readyz");
    assert.deepEqual([ready.status, JSON.parse(ready.body)], [200, { ready: true }]);
    assert.equal((await getOn(port, "/nothing")).status, 404);
    assert.equal((await getOn(port, "/metrics", "POST")).status, 405);
  });

  it("/readyz is unready (503, naming the problem) while the database's disk is full, and ready again after", async (t) => {
    const dir = mountTmpfs(t, 16 * 1024 * 1024);
    if (dir === null) return;
    const port = await freePort();
    const p = await startPrincipal({ dbPath: join(dir, "cdktr.db"), env: { CDKTR_METRICS_PORT: String(port) } });
    assert.equal((await getOn(port, "/readyz")).status, 200);
    const filler = fillDisk(dir);
    let refused = false;
    for (let i = 0; i < 2000 && !refused; i++) {
      try {
        await p.client.runWorkflow({ workflowId: "hello", source: "test", idempotencyKey: `k-${i}` });
      } catch (e) {
        refused = isCdktrError(e, "STORAGE_FULL");
      }
    }
    assert.ok(refused, "the disk filled up");
    const sick = await getOn(port, "/readyz");
    assert.equal(sick.status, 503);
    assert.deepEqual(JSON.parse(sick.body), { ready: false, problems: ["disk full"] });
    const sickMetrics = (await getOn(port, "/metrics")).body;
    assert.equal(sample(sickMetrics, "cdktr_ready"), 0);
    assert.equal(sample(sickMetrics, "cdktr_storage_problem", { problem: "disk full" }), 1);
    assert.equal((await getOn(port, "/healthz")).status, 200, "still alive");
    rmSync(filler);
    await waitFor(async () => (await getOn(port, "/readyz")).status === 200, {
      timeoutMs: 15_000,
      what: "ready again once space is back",
    });
    assert.equal(sample((await getOn(port, "/metrics")).body, "cdktr_storage_problem", { problem: "disk full" }), 0);
  });

  it("a metrics port in use stops the start with a message naming the setting", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    try {
      const port = (blocker.address() as AddressInfo).port;
      const p = await preparePrincipal({ env: { CDKTR_METRICS_PORT: String(port) } });
      await assert.rejects(p.start(), (e: unknown) => {
        assert.match(
          String(e),
          new RegExp(
            `cannot serve metrics on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*set CDKTR_METRICS_PORT to a free port`,
          ),
        );
        return true;
      });
    } finally {
      blocker.close();
    }
  });

  it("is off unless CDKTR_METRICS_PORT is set", async () => {
    const p = await startPrincipal();
    assert.equal(p.service?.ready.metrics, null);
  });
});

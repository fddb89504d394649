/**
 * The metrics and health endpoints of the agent, the scheduler and the listeners runner
 * (`CDKTR_METRICS_PORT`), each a real process next to a real principal.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { signWebhookRequest, webhookTriggerPath } from "@cdktr/events/webhook";
import {
  cleanup,
  freePort,
  helloWorkflowYaml,
  startAgent,
  startListeners,
  startPrincipal,
  startScheduler,
  waitFor,
  workflowYaml,
} from "@cdktr/test-utils";
import { get, sample } from "./scrape.js";

afterEach(cleanup);

describe("metrics and health endpoints of the other processes", () => {
  it("agent: runs by workflow and final status, log lines delivered, slots; ready while registered", async () => {
    const p = await startPrincipal({
      workflows: {
        "hello.yml": helloWorkflowYaml(),
        "fail.yml": workflowYaml({ tasks: { boom: { cmd: "sh", args: ["-c", "echo about to fail; exit 3"] } } }),
      },
    });
    const port = await freePort();
    const agent = await startAgent(p, { env: { CDKTR_METRICS_PORT: String(port), CDKTR_AGENT_MAX_CONCURRENCY: "3" } });
    const url = `http://127.0.0.1:${port}`;
    assert.equal(agent.ready.metrics, url);
    const ids = [];
    for (let i = 0; i < 2; i++) ids.push((await p.client.runWorkflow({ workflowId: "hello", source: "test" })).runId);
    ids.push((await p.client.runWorkflow({ workflowId: "fail", source: "test" })).runId);
    for (const id of ids) await p.waitForRun(id, 60_000);
    let lines = 0;
    for (const id of ids) lines += (await p.client.queryLogs({ runId: id, limit: 1000 })).lines.length;
    let m = "";
    await waitFor(
      async () => {
        m = (await get(url, "/metrics")).body;
        return sample(m, "cdktr_agent_log_lines_delivered_total") === lines;
      },
      { timeoutMs: 10_000, what: "every stored line counted as delivered" },
    );
    assert.equal(sample(m, "cdktr_agent_runs_total", { workflow: "hello", status: "COMPLETED" }), 2);
    assert.equal(sample(m, "cdktr_agent_runs_total", { workflow: "fail", status: "FAILED" }), 1);
    assert.equal(sample(m, "cdktr_agent_capacity"), 3);
    assert.equal(sample(m, "cdktr_agent_runs_executing"), 0);
    assert.equal(sample(m, "cdktr_agent_registered"), 1);
    const ready = await get(url, "/readyz");
    assert.deepEqual([ready.status, JSON.parse(ready.body)], [200, { ready: true }]);
    assert.equal((await get(url, "/healthz")).status, 200);
  });

  it("scheduler: occurrences triggered and their lateness, matching the runs the principal stored", async () => {
    const p = await startPrincipal({
      workflows: { "tick.yml": workflowYaml({ header: ['cron: "* * * * * *"'], tasks: { t: { cmd: "true" } } }) },
    });
    const port = await freePort();
    const scheduler = await startScheduler(p, { env: { CDKTR_METRICS_PORT: String(port) } });
    const url = `http://127.0.0.1:${port}`;
    assert.equal(scheduler.ready.metrics, url);
    await waitFor(async () => (await get(url, "/readyz")).status === 200, { what: "definitions loaded" });
    await waitFor(
      async () =>
        sample((await get(url, "/metrics")).body, "cdktr_scheduler_occurrences_total", { outcome: "triggered" }) >= 2,
      {
        timeoutMs: 10_000,
        what: "two occurrences triggered",
      },
    );
    // Compare at a moment between two occurrences: both sides have seen the same ones.
    let m = "";
    let stored = 0;
    await waitFor(
      async () => {
        m = (await get(url, "/metrics")).body;
        stored = (await p.client.listRuns({ workflowId: "tick", limit: 1000 })).runs.length;
        return sample(m, "cdktr_scheduler_occurrences_total", { outcome: "triggered" }) === stored;
      },
      { timeoutMs: 10_000, what: "the scheduler's count and the stored runs agree" },
    );
    assert.equal(sample(m, "cdktr_scheduler_trigger_lateness_seconds_count", { workflow: "tick" }), stored);
    assert.equal(sample(m, "cdktr_scheduler_occurrences_total", { outcome: "missed" }), 0);
    assert.equal(sample(m, "cdktr_scheduler_definitions_loaded"), 1);
  });

  it("listeners: each listener's triggers by outcome, and the events it turned away by reason", async () => {
    const p = await startPrincipal({
      workflows: { "hook.yml": workflowYaml({ tasks: { t: { cmd: "true" } } }) },
    });
    writeFileSync(
      join(p.home, "listeners.yml"),
      "listeners:\n  - type: webhook\n    name: hooks\n    port: 0\n    secret_env: TEST_HOOK_SECRET\n",
    );
    const port = await freePort();
    const runner = await startListeners(p, "listeners.yml", {
      env: { TEST_HOOK_SECRET: "k", CDKTR_METRICS_PORT: String(port) },
    });
    const url = `http://127.0.0.1:${port}`;
    assert.equal(runner.ready.metrics, url);
    const hook = (runner.ready.listeners as { url: string }[])[0]?.url ?? "";
    /** A signed request (each its own idempotency key: an identical request would be a replay). */
    const send = async (workflowId: string, key: string, body = "{}"): Promise<number> => {
      const ts = Math.floor(Date.now() / 1000);
      const path = webhookTriggerPath(workflowId);
      const res = await fetch(`${hook}${path}`, {
        method: "POST",
        body,
        headers: {
          "x-cdktr-timestamp": String(ts),
          "idempotency-key": key,
          "x-cdktr-signature": signWebhookRequest("k", ts, { method: "POST", path, idempotencyKey: key, body }),
        },
      });
      await res.arrayBuffer();
      return res.status;
    };
    assert.equal(await send("hook", "a"), 202);
    assert.equal(await send("hook", "b"), 202);
    // The same key again, signed in the next second (the same signature twice is a replay: 401).
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await send("hook", "a"), 202, "the same key again: the same run");
    assert.equal(await send("nope", "c"), 404);
    // Turned away before any trigger: unsigned, and a signed body that is not JSON.
    const unsigned = await fetch(`${hook}${webhookTriggerPath("hook")}`, { method: "POST", body: "{}" });
    assert.equal(unsigned.status, 401);
    await unsigned.arrayBuffer();
    assert.equal(await send("hook", "d", "not json"), 400);
    const m = (await get(url, "/metrics")).body;
    const labels = { listener: "hooks", type: "webhook" };
    assert.equal(sample(m, "cdktr_listener_events_rejected_total", { ...labels, reason: "signature" }), 1);
    assert.equal(sample(m, "cdktr_listener_events_rejected_total", { ...labels, reason: "malformed" }), 1);
    assert.equal(sample(m, "cdktr_listener_triggers_total", { ...labels, outcome: "accepted" }), 2);
    assert.equal(sample(m, "cdktr_listener_triggers_total", { ...labels, outcome: "duplicate" }), 1);
    assert.equal(sample(m, "cdktr_listener_triggers_total", { ...labels, outcome: "refused" }), 1);
    assert.equal(sample(m, "cdktr_listener_triggers_total", { ...labels, outcome: "failed" }), 0);
    assert.equal((await get(url, "/readyz")).status, 200);
  });
});

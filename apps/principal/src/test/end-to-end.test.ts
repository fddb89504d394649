import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Subscriber, topics, type LogLine } from "@cdktr/protocol";
import { cleanup, preparePrincipal, waitFor } from "@cdktr/test-utils";
import { countRows, registerAgent } from "./helpers.js";

afterEach(cleanup);

describe("principal end to end (spawned dist/main.js)", () => {
  it("trigger -> persisted -> fetched -> confirmed -> statuses -> queried back, logs stored and published live", async () => {
    const p = await preparePrincipal();
    const svc = await p.start();
    const sub = new Subscriber({ endpoint: `tcp://127.0.0.1:${p.ports.publish}`, key: p.key() });
    try {
      sub.connect();
      sub.subscribe(topics.logs("hello"), topics.runs("hello"));
      const received: { topic: string; body: unknown }[] = [];
      const pump = (async () => {
        for await (const m of sub) received.push(m);
      })();

      const ping = await p.client.ping();
      assert.match(ping.principalId, /principal/);
      const wfs = await p.client.listWorkflows();
      assert.deepEqual(
        wfs.workflows.map((w) => w.id),
        ["hello"],
      );

      const trig = await p.client.runWorkflow({ workflowId: "hello", source: "test" });
      assert.equal(trig.status, "QUEUED");
      assert.equal(trig.duplicate, false);
      assert.equal(countRows(p.dbPath, "runs", `WHERE run_id = '${trig.runId}'`), 1, "committed before the reply");

      await registerAgent(p.client, "agent-1");
      const work = await p.client.fetchWork({ agentId: "agent-1", waitMs: 1000, freeSlots: 1 });
      assert.ok(work.assignment !== null);
      assert.equal(work.assignment.run.runId, trig.runId);
      assert.equal(work.assignment.run.status, "ASSIGNED");
      assert.equal(work.assignment.workflow.id, "hello");

      const confirmed = await p.client.confirmAssignment({
        agentId: "agent-1",
        runId: trig.runId,
        token: work.assignment.token,
      });
      assert.equal(confirmed.run.status, "RUNNING");
      let run = await p.client.getRun(trig.runId);
      assert.deepEqual(
        run.tasks.map((t) => [t.taskId, t.status]),
        [
          ["goodbye", "PENDING"],
          ["hello", "PENDING"],
        ],
      );

      const t0 = Date.now();
      const at = (ms: number): string => new Date(t0 + ms).toISOString();
      await p.client.taskStatus({
        agentId: "agent-1",
        runId: trig.runId,
        token: work.assignment.token,
        taskId: "hello",
        attempt: 1,
        status: "RUNNING",
        time: at(1),
      });
      const lines: LogLine[] = [1, 2, 3].map((seq) => ({
        time: at(seq + 1),
        runId: trig.runId,
        workflowId: "hello",
        taskId: "hello",
        stream: seq === 3 ? "stderr" : "stdout",
        level: seq === 3 ? "error" : "info",
        seq,
        line: `line ${seq}`,
      }));
      const tokens = { [trig.runId]: work.assignment.token };
      const ack = await p.logClient.logBatch({ agentId: "agent-1", lines, tokens });
      assert.deepEqual(ack, { stored: 3, duplicates: 0 });
      const again = await p.logClient.logBatch({ agentId: "agent-1", lines: lines.slice(1), tokens });
      assert.deepEqual(again, { stored: 0, duplicates: 2 }, "resends are idempotent");
      await p.client.taskStatus({
        agentId: "agent-1",
        runId: trig.runId,
        token: work.assignment.token,
        taskId: "hello",
        attempt: 1,
        status: "COMPLETED",
        time: at(10),
        exitCode: 0,
      });
      await p.client.taskStatus({
        agentId: "agent-1",
        runId: trig.runId,
        token: work.assignment.token,
        taskId: "goodbye",
        attempt: 1,
        status: "RUNNING",
        time: at(11),
      });
      await p.client.taskStatus({
        agentId: "agent-1",
        runId: trig.runId,
        token: work.assignment.token,
        taskId: "goodbye",
        attempt: 1,
        status: "COMPLETED",
        time: at(12),
        exitCode: 0,
      });
      const fin = await p.client.runStatus({
        agentId: "agent-1",
        runId: trig.runId,
        token: work.assignment.token,
        status: "COMPLETED",
        time: at(13),
      });
      assert.deepEqual(fin, { applied: true, status: "COMPLETED" });

      run = await p.client.getRun(trig.runId);
      assert.equal(run.run.status, "COMPLETED");
      assert.equal(run.run.agentId, "agent-1");
      assert.equal(run.run.source, "test");
      assert.equal(run.run.finishedAt, at(13));
      assert.deepEqual(
        run.tasks.map((t) => [t.taskId, t.status, t.exitCode]),
        [
          ["goodbye", "COMPLETED", 0],
          ["hello", "COMPLETED", 0],
        ],
      );

      const listed = await p.client.listRuns({ workflowId: "hello" });
      assert.deepEqual(
        listed.runs.map((r) => [r.runId, r.status]),
        [[trig.runId, "COMPLETED"]],
      );

      const logs = await p.client.queryLogs({ runId: trig.runId });
      assert.deepEqual(
        logs.lines.map((l) => l.line),
        ["line 1", "line 2", "line 3"],
      );
      const errs = await p.client.queryLogs({ runId: trig.runId, level: "error" });
      assert.deepEqual(
        errs.lines.map((l) => l.line),
        ["line 3"],
      );
      const page1 = await p.client.queryLogs({ workflowId: "hello", order: "desc", limit: 2 });
      assert.deepEqual(
        page1.lines.map((l) => l.seq),
        [3, 2],
      );
      assert.ok(page1.nextCursor !== null);
      const page2 = await p.client.queryLogs({
        workflowId: "hello",
        order: "desc",
        limit: 2,
        cursor: page1.nextCursor,
      });
      assert.deepEqual(
        page2.lines.map((l) => l.seq),
        [1],
      );
      assert.equal(page2.nextCursor, null);

      await waitFor(() => received.filter((m) => m.topic.startsWith("logs|")).length >= 3, {
        timeoutMs: 5000,
        what: "3 live log lines",
      });
      const live = received.filter((m) => m.topic.startsWith("logs|"));
      assert.equal(live.length, 3, "duplicates are not republished");
      assert.equal(live[0]?.topic, topics.logs("hello", trig.runId, "hello"));
      assert.deepEqual(
        live.map((m) => (m.body as LogLine).line),
        ["line 1", "line 2", "line 3"],
      );
      await waitFor(
        () =>
          received.some(
            (m) => m.topic.startsWith("runs|") && (m.body as { run: { status: string } }).run.status === "COMPLETED",
          ),
        {
          timeoutMs: 5000,
          what: "COMPLETED run event",
        },
      );
      sub.close();
      await pump;
      const stopped = await svc.stop("SIGTERM");
      assert.deepEqual(stopped, { code: 0, signal: null });
    } finally {
      sub.close();
    }
  });
});

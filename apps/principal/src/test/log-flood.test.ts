import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { isCdktrError, type LogClient, type LogLine } from "@cdktr/protocol";
import { cleanup, startPrincipal, type PrincipalFixture } from "@cdktr/test-utils";
import { countRows, registerAgent } from "./helpers.js";

afterEach(cleanup);

/** The flood of the issue: 200 batches of 5,000 lines sent at once by one agent key. */
const BATCHES = 200;
const LINES_PER_BATCH = 5_000;

/** A run of `hello` leased to `agentId` (the fixture's operator key), with its token. */
async function leasedRun(p: PrincipalFixture, agentId: string): Promise<{ runId: string; token: string }> {
  await registerAgent(p.client, agentId);
  const { runId } = await p.client.runWorkflow({ workflowId: "hello", source: "test" });
  const work = await p.client.fetchWork({ agentId, waitMs: 1000, freeSlots: 1 });
  assert.ok(work.assignment !== null && work.assignment.run.runId === runId);
  await p.client.confirmAssignment({ agentId, runId, token: work.assignment.token });
  return { runId, token: work.assignment.token };
}

function batchOf(runId: string, b: number): LogLine[] {
  const time = new Date().toISOString();
  const lines: LogLine[] = [];
  for (let i = 0; i < LINES_PER_BATCH; i++) {
    const seq = b * LINES_PER_BATCH + i + 1;
    lines.push({
      time,
      runId,
      workflowId: "hello",
      taskId: "hello",
      stream: "stdout",
      level: "info",
      seq,
      line: `l${seq}`,
    });
  }
  return lines;
}

/** Send one batch; true when stored, false when refused by the per-agent ingest bound (retryable). */
async function offer(
  logs: LogClient,
  agentId: string,
  lines: LogLine[],
  tokens: Record<string, string>,
): Promise<boolean> {
  try {
    const ack = await logs.logBatch({ agentId, lines, tokens }, { retry: false });
    assert.equal(ack.stored + ack.duplicates, lines.length);
    return true;
  } catch (e) {
    if (!isCdktrError(e, "RESOURCE_EXHAUSTED")) throw e;
    assert.equal(e.retryable, true, "the ingest bound is a retryable refusal");
    return false;
  }
}

describe("log flood (issue 13: triggers never wait behind logs)", () => {
  it("a runWorkflow during 200 x 5,000 queued log lines is acknowledged within 5 s, and every line is stored once", async () => {
    const p = await startPrincipal({ clientTimeoutMs: 120_000 });
    const pid = p.service?.child.pid;
    assert.ok(pid !== undefined);
    const agentId = "flooder";
    const { runId, token } = await leasedRun(p, agentId);
    const logs = p.connectLogs({ timeoutMs: 120_000 });
    const tokens = { [runId]: token };
    // The flood: every batch at once (what no agent does: its shipper has one batch in flight).
    const sends: Promise<boolean>[] = [];
    for (let b = 0; b < BATCHES; b++) sends.push(offer(logs, agentId, batchOf(runId, b), tokens));
    // Let the flood reach the principal, then trigger on another connection.
    await new Promise((r) => setTimeout(r, 1000));
    const api = p.connect({ timeoutMs: 120_000 });
    const t0 = performance.now();
    const trig = await api.runWorkflow({ workflowId: "hello", source: "test" });
    const triggerMs = performance.now() - t0;
    assert.equal(trig.status, "QUEUED");
    assert.ok(
      triggerMs < 5000,
      `the trigger waited ${Math.round(triggerMs)} ms behind the log flood (bound 5 s; 21.9 s before)`,
    );
    const outcome = await Promise.all(sends);
    // Then what was refused, one batch at a time with a pause after a refusal, as the shipper does.
    let refusals = 0;
    for (let b = 0; b < BATCHES; b++) {
      if (outcome[b] === true) continue;
      refusals++;
      while (!(await offer(logs, agentId, batchOf(runId, b), tokens))) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(refusals > 0, "the agent's ingest bound pushed back on the flood");
    assert.equal(
      countRows(p.dbPath, "logs", `WHERE run_id = '${runId}'`),
      BATCHES * LINES_PER_BATCH,
      "every line stored once",
    );
    const peakMb =
      Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN) / 1024;
    process.stderr.write(
      `# trigger during the flood: ${Math.round(triggerMs)} ms; ${refusals} refused batches resent; principal peak RSS ${Math.round(peakMb)} MB\n`,
    );
  });
});

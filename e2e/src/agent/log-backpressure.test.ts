/**
 * The principal's per-agent log ingest bound pushes back on a real agent: its refused batches are
 * resent, and every line the task wrote is stored once.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { isCdktrError, type LogLine } from "@cdktr/protocol";
import { cleanup, workflowYaml } from "@cdktr/test-utils";
import { prepareCluster, startFastAgent } from "./helpers.js";

afterEach(cleanup);

const N = 30_000;
const AGENT_ID = "bp-agent";

test(`while its ingest budget is taken, a real agent's refused log batches are resent: all ${N} lines stored once`, async () => {
  const c = await prepareCluster(
    {
      "chatty.yml": workflowYaml({ tasks: { chatty: { cmd: "seq", args: ["1", String(N)] } } }),
      // Run only by the flood's own agent id (the real agent does not carry the label).
      "hold.yml": workflowYaml({ name: "Hold", header: ["agent_labels: [flood]"] }),
    },
    // Small enough that any batch pending under the agent's id makes the next one wait.
    { env: { CDKTR_LOG_INGEST_MAX_PENDING_LINES: "100" } },
  );
  await c.start();
  const agent = await startFastAgent(c, { env: { CDKTR_AGENT_ID: AGENT_ID } });
  // Someone with the agent's key keeps the agent's budget busy: 2,000-line batches, sent under
  // the agent's id, for a run of its own lease. Each is written in pieces over several turns of
  // the principal's event loop (a batch refused at once would free the budget before the next
  // request is even read), so the agent's batches arriving meanwhile are refused as busy.
  const agentKey = c.key("local-agent");
  const api = c.connect({ key: agentKey });
  await api.registerAgent({
    agentId: "bp-flood",
    host: "test",
    capacity: 1,
    labels: ["flood"],
    version: "t",
    runningRuns: [],
  });
  const holdRun = await c.run("hold");
  const work = await api.fetchWork({ agentId: "bp-flood", waitMs: 5000, freeSlots: 1 });
  assert.equal(work.assignment?.run.runId, holdRun);
  const token = work.assignment?.token ?? "";
  await api.confirmAssignment({ agentId: "bp-flood", runId: holdRun, token });
  const flood = c.connectLogs({ key: agentKey, timeoutMs: 30_000 });
  const junk: LogLine[] = Array.from({ length: 2000 }, (_, i) => ({
    time: new Date().toISOString(),
    runId: holdRun,
    workflowId: "hold",
    taskId: "only",
    stream: "stdout",
    level: "info",
    seq: i + 1,
    line: `junk ${i}`,
  }));
  let flooding = true;
  let floodRefusedBusy = 0;
  const flooder = async (): Promise<void> => {
    while (flooding) {
      try {
        await flood.logBatch({ agentId: AGENT_ID, lines: junk, tokens: { [holdRun]: token } }, { retry: false });
      } catch (e) {
        if (isCdktrError(e, "RESOURCE_EXHAUSTED")) floodRefusedBusy++;
        else throw e;
      }
      // Busy part of the time, not all of it (a flood holding it always would starve the agent).
      await new Promise((r) => setTimeout(r, 15));
    }
  };
  const flooders = [flooder(), flooder()];
  try {
    const runId = await c.run("chatty");
    const r = await c.waitForRun(runId, 50_000);
    assert.equal(r.run.status, "COMPLETED");
    const lines = (await c.logs(runId, "chatty")).filter((l) => l.stream === "stdout");
    assert.equal(lines.length, N, "lines delivered = lines written");
    assert.equal(new Set(lines.map((l) => l.seq)).size, N, "no line twice");
    const values = lines.map((l) => Number(l.line)).sort((a, b) => a - b);
    for (let i = 0; i < N; i++) if (values[i] !== i + 1) assert.fail(`line ${i + 1} is missing`);
  } finally {
    flooding = false;
    await Promise.all(flooders);
  }
  assert.ok(floodRefusedBusy > 0, "the budget was contended");
  assert.ok(
    agent.lines.some((l) => l.includes("the principal is busy storing this agent's log lines")),
    "the agent was refused as busy and backed off",
  );
});

/**
 * Workflow chaining end to end: a principal, an agent and the scheduler process (which follows
 * the workflows' `triggers: [{after, status}]`), real runs, the downstream task reading its
 * upstream from CDKTR_UPSTREAM_*.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  cleanup,
  startAgent,
  startPrincipal,
  startScheduler,
  waitFor,
  workflowYaml,
  type PrincipalFixture,
} from "@cdktr/test-utils";

afterEach(cleanup);

/** Sweeps every second, looking back one second: the catch-up after a restart must come from the stored mark. */
const SCHEDULER_ENV = { CDKTR_SCHEDULER_CHAIN_SWEEP_S: "1", CDKTR_SCHEDULER_CHAIN_MARGIN_S: "1" };

const WORKFLOWS = {
  "up.yml": workflowYaml({ name: "Upstream" }),
  "down.yml": workflowYaml({
    name: "Downstream",
    header: ["triggers:", "  - after: up"],
    tasks: {
      show: { cmd: "printenv", args: ["CDKTR_UPSTREAM_RUN_ID", "CDKTR_UPSTREAM_WORKFLOW_ID", "CDKTR_UPSTREAM_STATUS"] },
      template: { cmd: "echo", args: ["after {{ upstream.workflow_id }} {{ upstream.run_id }} {{upstream.status}}"] },
    },
  }),
  "on_failure.yml": workflowYaml({
    name: "Only after a failure",
    header: ["triggers:", "  - {after: up, status: FAILED}"],
  }),
};

async function finishedRun(f: PrincipalFixture, workflowId: string): Promise<string> {
  const { runId } = await f.connect().runWorkflow({ workflowId });
  await waitFor(async () => (await f.connect().getRun(runId)).run.status === "COMPLETED", {
    what: `run ${runId} of ${workflowId} COMPLETED`,
    timeoutMs: 20_000,
  });
  return runId;
}

async function downstreamOf(f: PrincipalFixture, upRunId: string) {
  await waitFor(async () => (await f.runs("down")).some((r) => r.upstream?.runId === upRunId), {
    what: `the downstream run of ${upRunId}`,
    timeoutMs: 20_000,
  });
  return (await f.runs("down")).filter((r) => r.upstream?.runId === upRunId);
}

describe("workflow chaining (scheduler process)", () => {
  it("A completes -> B runs once with A's run id in its environment; a FAILED-only rule does not fire", async () => {
    const f = await startPrincipal({ workflows: WORKFLOWS });
    await startAgent(f);
    await startScheduler(f, { env: SCHEDULER_ENV });
    const up = await finishedRun(f, "up");
    const runs = await downstreamOf(f, up);
    assert.equal(runs.length, 1);
    const down = runs[0];
    assert.ok(down !== undefined);
    assert.deepEqual(down.upstream, { runId: up, workflowId: "up", status: "COMPLETED" });
    assert.equal(down.source, "chain");
    assert.equal(down.idempotencyKey, `chain:${up}:down`);
    await waitFor(async () => (await f.connect().getRun(down.runId)).run.status === "COMPLETED", {
      what: "the downstream run COMPLETED",
      timeoutMs: 20_000,
    });
    const { lines } = await f.connect().queryLogs({ runId: down.runId });
    const stdout = (task: string) => lines.filter((l) => l.stream === "stdout" && l.taskId === task).map((l) => l.line);
    assert.deepEqual(stdout("show"), [up, "up", "COMPLETED"]);
    assert.deepEqual(stdout("template"), [`after up ${up} COMPLETED`]);
    // Several sweeps later, still one downstream run, and nothing for the FAILED-only rule.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await f.runs("down")).length, 1);
    assert.equal((await f.runs("on_failure")).length, 0);
  });

  it("the scheduler killed -9 between A's end and B's trigger triggers B exactly once after its restart", async () => {
    const f = await startPrincipal({ workflows: WORKFLOWS });
    await startAgent(f);
    const stateDir = join(f.home, "scheduler-state");
    const env = { ...SCHEDULER_ENV, CDKTR_SCHEDULER_STATE_DIR: stateDir };
    const first = await startScheduler(f, { env, name: "scheduler-1" });
    await waitFor(() => existsSync(join(stateDir, "chaining.json")), { what: "the chaining mark on disk" });
    await first.kill();
    // A ends while nobody follows it: B's trigger has not happened.
    const up = await finishedRun(f, "up");
    await new Promise((r) => setTimeout(r, 2500)); // past the 1 s look-back: only the stored mark finds A
    assert.equal((await f.runs("down")).length, 0);
    await startScheduler(f, { env, name: "scheduler-2" });
    const runs = await downstreamOf(f, up);
    assert.equal(runs.length, 1);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await f.runs("down")).length, 1, "exactly once");
    const mark = JSON.parse(readFileSync(join(stateDir, "chaining.json"), "utf8")) as { mark: number };
    const upRun = (await f.connect().getRun(up)).run;
    assert.ok(mark.mark >= Date.parse(upRun.finishedAt ?? ""), "the mark moved past A once B was triggered");
  });

  it("a chaining cycle across files is a load error naming the path; the other workflows load", async () => {
    const f = await startPrincipal({
      workflows: {
        "ping.yml": workflowYaml({ name: "Ping", header: ["triggers:", "  - after: pong"] }),
        "pong.yml": workflowYaml({ name: "Pong", header: ["triggers:", "  - after: ping"] }),
        "up.yml": workflowYaml({ name: "Upstream" }),
      },
    });
    const { workflows, errors } = await f.connect().listWorkflows();
    assert.deepEqual(
      workflows.map((w) => w.id),
      ["up"],
    );
    assert.equal(errors.length, 2);
    for (const e of errors) assert.match(e.message, /^chaining cycle (ping -> pong -> ping|pong -> ping -> pong): /);
  });
});

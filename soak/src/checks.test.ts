/**
 * The checks on made-up observations: all good passes, and each kind of breakage is caught and
 * counted (a check that cannot fail would pass here too, and this file would say so).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { LogLine, RunRecord, TaskRunRecord } from "@cdktr/protocol";
import { checkSoak, percentile, type SoakObservations } from "./checks.js";
import { expectedLines } from "./workflows.js";

const T0 = Date.parse("2026-11-30T10:00:00.000Z");
const iso = (ms: number): string => new Date(ms).toISOString();

function run(
  runId: string,
  workflowId: string,
  status: RunRecord["status"],
  extra: Partial<RunRecord> = {},
): RunRecord {
  return {
    runId,
    workflowId,
    status,
    source: "soak",
    triggeredBy: "soak-load",
    idempotencyKey: null,
    params: {},
    scheduledFor: null,
    createdAt: iso(T0),
    startedAt: iso(T0),
    finishedAt: iso(T0 + 1000),
    agentId: "a",
    reason: null,
    message: null,
    ...extra,
  };
}

function task(runId: string, taskId: string, status: TaskRunRecord["status"]): TaskRunRecord {
  return { runId, taskId, status, attempt: 1 } as TaskRunRecord;
}

function lines(runId: string, taskId: string, texts: string[]): LogLine[] {
  return texts.map((line, i) => ({ runId, taskId, seq: i + 1, stream: "stdout", line }) as LogLine);
}

/** Two runs of `w` (one task `x`, 3 lines), three cron occurrences, everything fine. */
function good(): SoakObservations & { runs: RunRecord[]; effects: string[] } {
  const runs = [
    run("r1", "w", "COMPLETED"),
    run("r2", "w", "FAILED"),
    ...[0, 1, 2].map((i) =>
      run(`c${i}`, "tick", "COMPLETED", { source: "scheduler", scheduledFor: iso(T0 + i * 1000) }),
    ),
  ];
  return {
    seed: 1,
    acked: new Map([
      ["k1", "r1"],
      ["k2", "r2"],
    ]),
    runs,
    tasks: new Map([
      ["r1", [task("r1", "x", "COMPLETED")]],
      ["r2", [task("r2", "x", "FAILED")]],
    ]),
    logs: new Map([
      ["r1", lines("r1", "x", expectedLines("x", 3))],
      ["r2", lines("r2", "x", ["x line 1"])],
    ]),
    effects: ["r1 x", "r2 x", ""],
    lineCounts: { w: { x: 3 } },
    cronWorkflow: "tick",
    occurrencesUntilMs: T0 + 2000,
    recoveriesMs: [300, 100, 200],
    unexpectedExits: [],
  };
}

test("all good: every invariant holds, figures counted", () => {
  const r = checkSoak(good());
  assert.deepEqual(r.violations, []);
  assert.equal(r.invariantsHeld, true);
  assert.equal(r.acked, 2);
  assert.equal(r.terminal, 2);
  assert.equal(r.principalRestarts, 3);
  assert.equal(r.recoveryMsP50, 200);
  assert.equal(r.recoveryMsMax, 300);
  assert.equal(r.details.expectedOccurrences, 3);
});

test("an acknowledged run still RUNNING, or missing, breaks `terminal`", () => {
  const o = good();
  o.runs[0] = run("r1", "w", "RUNNING");
  const r = checkSoak({ ...o, acked: new Map([...o.acked, ["k3", "nope"]]) });
  assert.equal(r.terminal, 1);
  assert.equal(r.acked, 3);
  assert.equal(r.invariantsHeld, false);
  assert.match(r.violations.join("\n"), /2 acknowledged trigger\(s\) not terminal/);
  assert.match(r.violations.join("\n"), /1 run\(s\) not terminal/);
});

test("a task executed twice in one run is counted; a requeued run is counted apart", () => {
  const o = good();
  o.effects.push("r1 x");
  o.runs.push(run("r3", "w", "COMPLETED", { source: "requeue" }));
  const r = checkSoak(o);
  assert.equal(r.executedTwice, 1);
  assert.equal(r.requeuedAfterCrash, 1);
  assert.equal(r.invariantsHeld, false);
});

test("a lost, a duplicated and a foreign line of a COMPLETED task are each counted; FAILED tasks are not checked", () => {
  const o = good();
  o.logs = new Map([
    ["r1", lines("r1", "x", ["x line 1", "x line 1", "x line 2", "junk"])],
    ["r2", []],
  ]);
  const r = checkSoak(o);
  assert.equal(r.logLinesLost, 1);
  assert.equal(r.logLinesDuplicated, 1);
  assert.equal(r.details.logLinesUnexpected, 1);
  assert.equal(r.violations.length, 3);
});

test("a duplicated and a missed occurrence are counted; occurrences after the bound are not expected", () => {
  const o = good();
  o.runs.splice(3, 1); // T0 + 1 s missing
  o.runs.push(run("d", "tick", "COMPLETED", { source: "scheduler", scheduledFor: iso(T0) }));
  o.runs.push(run("late", "tick", "COMPLETED", { source: "scheduler", scheduledFor: iso(T0 + 9000) }));
  const r = checkSoak(o);
  assert.equal(r.occurrencesDuplicated, 1);
  assert.equal(r.occurrencesMissed, 1);
  assert.match(r.violations.join("\n"), /2026-11-30T10:00:01\.000Z/);
});

test("an unexpected process exit breaks the invariants", () => {
  const r = checkSoak({ ...good(), unexpectedExits: ["agent-1 exited (code 1)"] });
  assert.equal(r.invariantsHeld, false);
});

test("percentile: nearest rank", () => {
  assert.equal(percentile([], 50), null);
  assert.equal(percentile([5], 50), 5);
  assert.equal(percentile([4, 1, 3, 2], 50), 2);
  assert.equal(percentile([4, 1, 3, 2], 100), 4);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import type { LogLine } from "@cdktr/protocol";
import { LogIngestBudget } from "./log-ingest.js";

const lines = (n: number): LogLine[] =>
  Array.from({ length: n }, (_, i) => ({
    runId: "r",
    workflowId: "w",
    taskId: "t",
    seq: i + 1,
    time: new Date(0).toISOString(),
    level: "info",
    stream: "stdout",
    line: "x",
  }));

test("the ingest backlog: lines taken and not released yet, over all agents; a release counts once", () => {
  const budget = new LogIngestBudget(1000, 1_000_000);
  const a = budget.take("a", lines(10));
  const b = budget.take("b", lines(5));
  assert.equal(budget.totalLines(), 15);
  a();
  a();
  assert.equal(budget.totalLines(), 5);
  assert.throws(() => {
    budget.take("b", lines(996));
  }, /RESOURCE_EXHAUSTED|pending/i);
  assert.equal(budget.totalLines(), 5, "a refused batch is not counted");
  b();
  assert.equal(budget.totalLines(), 0);
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RUN_STATUSES } from "@cdktr/protocol";
import { canTransitionRun, isTerminalRun, taskTransition } from "./state-machine.js";

describe("run state machine", () => {
  it("allows exactly the documented run transitions", () => {
    const allowed = new Set([
      "QUEUED>ASSIGNED",
      "QUEUED>CANCELLED",
      "ASSIGNED>RUNNING",
      "ASSIGNED>QUEUED",
      "ASSIGNED>CANCELLED",
      "ASSIGNED>CRASHED",
      "RUNNING>COMPLETED",
      "RUNNING>FAILED",
      "RUNNING>CANCELLED",
      "RUNNING>CRASHED",
    ]);
    for (const from of RUN_STATUSES) {
      for (const to of RUN_STATUSES)
        assert.equal(canTransitionRun(from, to), allowed.has(`${from}>${to}`), `${from} -> ${to}`);
    }
    assert.deepEqual(RUN_STATUSES.filter(isTerminalRun), ["COMPLETED", "FAILED", "CRASHED", "CANCELLED", "SKIPPED"]);
  });

  it("task reports: retries need a higher attempt; resends are duplicates; terminal states stay", () => {
    assert.equal(taskTransition("PENDING", 0, "RUNNING", 1), "apply");
    assert.equal(taskTransition("PENDING", 0, "SKIPPED", 0), "apply");
    assert.equal(taskTransition("RUNNING", 1, "RUNNING", 1), "duplicate");
    assert.equal(taskTransition("RUNNING", 1, "RUNNING", 2), "apply");
    assert.equal(taskTransition("RUNNING", 2, "FAILED", 1), "invalid");
    assert.equal(taskTransition("RUNNING", 1, "COMPLETED", 1), "apply");
    assert.equal(taskTransition("FAILED", 1, "RUNNING", 2), "apply");
    assert.equal(taskTransition("FAILED", 1, "RUNNING", 1), "invalid");
    assert.equal(taskTransition("COMPLETED", 1, "RUNNING", 2), "invalid");
    assert.equal(taskTransition("COMPLETED", 1, "FAILED", 1), "invalid");
    assert.equal(taskTransition("COMPLETED", 1, "COMPLETED", 1), "duplicate");
    assert.equal(taskTransition("SKIPPED", 0, "RUNNING", 1), "invalid");
  });
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DagError } from "../errors.js";
import type { DagInput } from "./dag-planner.js";
import { reusableTasks, type SourceTaskState } from "./reusable-tasks.js";

const wf = (spec: Record<string, string[]>): { tasks: DagInput } => ({
  tasks: Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, { depends: v }])),
});
const source = (spec: Record<string, string>): SourceTaskState[] =>
  Object.entries(spec).map(([taskId, status]) => ({ taskId, status }));

describe("reusableTasks", () => {
  it("takes the completed tasks upstream of a failure and an independent branch as done", () => {
    const got = reusableTasks(
      wf({ a: [], b: ["a"], c: ["b"], d: [] }),
      source({ a: "COMPLETED", b: "FAILED", c: "SKIPPED", d: "COMPLETED" }),
    );
    assert.deepEqual(new Set(got), new Set(["a", "d"]));
  });

  it("reruns a COMPLETED task downstream of a failed one (diamond: the join ran on a branch that failed)", () => {
    // top -> left, right -> join; right failed, left and join completed (join does not depend
    // only on left), tail depends on join.
    const got = reusableTasks(
      wf({ top: [], left: ["top"], right: ["top"], join: ["left", "right"], tail: ["join"] }),
      source({ top: "COMPLETED", left: "COMPLETED", right: "FAILED", join: "COMPLETED", tail: "COMPLETED" }),
    );
    assert.deepEqual(got, ["top", "left"]);
  });

  it("takes a whole diamond as done when only a task after it failed", () => {
    const got = reusableTasks(
      wf({ top: [], left: ["top"], right: ["top"], join: ["left", "right"], tail: ["join"] }),
      source({ top: "COMPLETED", left: "COMPLETED", right: "COMPLETED", join: "COMPLETED", tail: "FAILED" }),
    );
    assert.deepEqual(got, ["top", "left", "right", "join"]);
  });

  it("runs a task added since the source run and everything downstream of it", () => {
    // `new` was added between a and b: b and c completed in the source run but depend on it now.
    const got = reusableTasks(
      wf({ a: [], new: ["a"], b: ["new"], c: ["b"], d: [] }),
      source({ a: "COMPLETED", b: "COMPLETED", c: "COMPLETED", d: "FAILED" }),
    );
    assert.deepEqual(got, ["a"]);
  });

  it("ignores a task of the source run that the definition no longer has", () => {
    // `gone` failed in the source run and was removed: b no longer depends on it.
    const got = reusableTasks(
      wf({ a: [], b: ["a"], c: [] }),
      source({ a: "COMPLETED", gone: "FAILED", b: "COMPLETED", c: "CANCELLED" }),
    );
    assert.deepEqual(got, ["a", "b"]);
  });

  it("reuses nothing when nothing completed, and every task when all did", () => {
    assert.deepEqual(reusableTasks(wf({ a: [], b: ["a"] }), source({ a: "CRASHED", b: "CANCELLED" })), []);
    assert.deepEqual(reusableTasks(wf({ a: [], b: ["a"] }), []), []);
    assert.deepEqual(reusableTasks(wf({ a: [], b: ["a"] }), source({ a: "COMPLETED", b: "COMPLETED" })), ["a", "b"]);
  });

  it("refuses a definition with a cycle", () => {
    assert.throws(() => reusableTasks(wf({ a: ["b"], b: ["a"] }), source({ a: "COMPLETED" })), DagError);
  });
});

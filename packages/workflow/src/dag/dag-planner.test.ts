import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DagPlanner } from "./dag-planner.js";
import { DagError } from "../errors.js";
import type { DagInput } from "./dag-planner.js";
import { findCycle, renderDagTree, topoOrder } from "./graph.js";

const deps = (spec: Record<string, string[]>): DagInput =>
  Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, { depends: v }]));

describe("DagPlanner", () => {
  it("runs a linear chain one task at a time", () => {
    const p = new DagPlanner(deps({ a: [], b: ["a"], c: ["b"] }));
    assert.deepEqual(p.takeReady(), ["a"]);
    assert.deepEqual(p.takeReady(), [], "a task is handed out once");
    assert.equal(p.stateOf("b"), "PENDING");
    p.complete("a");
    assert.deepEqual(p.takeReady(), ["b"]);
    p.complete("b");
    assert.deepEqual(p.takeReady(), ["c"]);
    assert.equal(p.isFinished(), false);
    p.complete("c");
    assert.equal(p.isFinished(), true);
    assert.equal(p.summary().succeeded, true);
  });

  it("fans out: both children become ready together", () => {
    const p = new DagPlanner(deps({ task1: [], task2: ["task1"], task3: ["task2"], task4: ["task2"] }));
    assert.deepEqual(p.takeReady(), ["task1"]);
    p.complete("task1");
    assert.deepEqual(p.takeReady(), ["task2"]);
    assert.deepEqual(p.complete("task2"), ["task3", "task4"]);
    assert.deepEqual(p.takeReady(), ["task3", "task4"]);
  });

  it("fans in: the join runs once, only after BOTH parents completed", () => {
    const p = new DagPlanner(deps({ a: [], left: ["a"], right: ["a"], join: ["left", "right"] }));
    p.takeReady();
    p.complete("a");
    assert.deepEqual(p.takeReady(), ["left", "right"]);
    p.complete("left");
    assert.deepEqual(p.takeReady(), [], "join must wait for right");
    assert.equal(p.stateOf("join"), "PENDING");
    p.complete("right");
    assert.deepEqual(p.takeReady(), ["join"]);
    assert.deepEqual(p.takeReady(), []);
    p.complete("join");
    assert.equal(p.summary().completed, 4);
  });

  it("a failed diamond terminates: dependents SKIPPED, the independent branch completes", () => {
    // a -> {b, c} -> d, plus an independent x -> y
    const p = new DagPlanner(deps({ a: [], b: ["a"], c: ["a"], d: ["b", "c"], x: [], y: ["x"] }));
    assert.deepEqual(p.takeReady(), ["a", "x"]);
    p.complete("a");
    assert.deepEqual(p.takeReady(), ["b", "c"]);
    assert.deepEqual(p.fail("b"), ["d"]);
    assert.equal(p.stateOf("d"), "SKIPPED");
    p.complete("c");
    assert.deepEqual(p.takeReady(), [], "d must not start after its other parent completes");
    p.complete("x");
    assert.deepEqual(p.takeReady(), ["y"]);
    p.complete("y");
    assert.equal(p.isFinished(), true);
    const s = p.summary();
    assert.deepEqual([s.completed, s.failed, s.skipped, s.succeeded], [4, 1, 1, false]);
  });

  it("skips transitive dependents only once", () => {
    const p = new DagPlanner(deps({ a: [], b: ["a"], c: ["b"], d: ["b", "c"] }));
    p.takeReady();
    assert.deepEqual(p.fail("a"), ["b", "c", "d"]);
    assert.equal(p.isFinished(), true);
  });

  it("cancelPending cancels what has not started and leaves running tasks to the caller", () => {
    const p = new DagPlanner(deps({ a: [], b: ["a"], c: [] }));
    assert.deepEqual(p.takeReady(), ["a", "c"]);
    p.complete("c");
    assert.deepEqual(p.cancelPending(), ["b"]);
    assert.equal(p.isFinished(), false, "a is still running");
    assert.deepEqual(p.cancel("a"), []);
    assert.equal(p.isFinished(), true);
    assert.equal(p.summary().cancelled, 2);
  });

  it("rejects unknown dependencies, cycles and invalid transitions", () => {
    assert.throws(() => new DagPlanner(deps({ a: ["ghost"] })), /unknown task `ghost`/);
    assert.throws(
      () => new DagPlanner(deps({ a: ["c"], b: ["a"], c: ["b"] })),
      (e: unknown) =>
        e instanceof DagError && /cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)/.test(e.message),
    );
    const p = new DagPlanner(deps({ a: [], b: ["a"] }));
    assert.throws(() => p.complete("b"), /not RUNNING/);
    assert.throws(() => p.stateOf("nope"), /unknown task/);
  });

  it("handles 10,000 parallel tasks fanning into one join", () => {
    const spec: Record<string, string[]> = {};
    for (let i = 0; i < 10_000; i++) spec[`p${i}`] = [];
    spec.join = Object.keys(spec);
    const p = new DagPlanner(deps(spec));
    const first = p.takeReady();
    assert.equal(first.length, 10_000);
    for (const id of first) {
      assert.equal(p.stateOf("join"), "PENDING");
      p.complete(id);
    }
    assert.deepEqual(p.takeReady(), ["join"]);
    p.complete("join");
    assert.equal(p.isFinished(), true);
    assert.equal(topoOrder(deps(spec)).at(-1), "join");
  });

  it("an empty DAG is finished at once", () => {
    const p = new DagPlanner({});
    assert.equal(p.isFinished(), true);
    assert.deepEqual(p.takeReady(), []);
  });

  it("property: on random DAGs every task runs once after all its deps, or is skipped, and the plan terminates", () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    for (let round = 0; round < 300; round++) {
      const n = 1 + Math.floor(rand() * 15);
      const ids = Array.from({ length: n }, (_, i) => `t${i}`);
      const spec: Record<string, string[]> = {};
      // Edges only from lower to higher index: acyclic by construction. Shuffle key order.
      for (let i = 0; i < n; i++) spec[`t${i}`] = ids.slice(0, i).filter(() => rand() < 0.3);
      const shuffled = [...ids].sort(() => rand() - 0.5);
      const input = deps(Object.fromEntries(shuffled.map((id) => [id, spec[id] as string[]])));
      const failing = new Set(ids.filter(() => rand() < 0.2));
      const p = new DagPlanner(input);
      const started: string[] = [];
      const outcome = new Map<string, "ok" | "fail">();
      const running: string[] = [];
      let steps = 0;
      while (!p.isFinished()) {
        assert.ok(++steps < 1000, "planner must terminate");
        for (const id of p.takeReady()) {
          assert.ok(!started.includes(id), `${id} started twice`);
          for (const d of spec[id] ?? []) assert.equal(outcome.get(d), "ok", `${id} started before dep ${d} completed`);
          started.push(id);
          running.push(id);
        }
        assert.ok(running.length > 0, "not finished but nothing running: the plan is stuck");
        // finish a random running task
        const idx = Math.floor(rand() * running.length);
        const id = running.splice(idx, 1)[0] as string;
        if (failing.has(id)) {
          outcome.set(id, "fail");
          p.fail(id);
        } else {
          outcome.set(id, "ok");
          p.complete(id);
        }
      }
      // Every task either ran once or was skipped because some (transitive) dep failed.
      const failedOrSkipped = (id: string): boolean => p.stateOf(id) === "FAILED" || p.stateOf(id) === "SKIPPED";
      for (const id of ids) {
        const s = p.stateOf(id);
        if (s === "SKIPPED") {
          assert.ok(!started.includes(id));
          assert.ok((spec[id] ?? []).some(failedOrSkipped), `${id} skipped without a failed dep`);
        } else {
          assert.ok(started.includes(id), `${id} neither ran nor was skipped (${s})`);
          assert.equal(s, failing.has(id) ? "FAILED" : "COMPLETED");
        }
      }
    }
  });
});

describe("graph helpers", () => {
  it("findCycle returns the path of the cycle", () => {
    assert.deepEqual(findCycle(deps({ a: [], b: ["a", "c"], c: ["b"] })), ["b", "c", "b"]);
    assert.equal(findCycle(deps({ a: [], b: ["a"] })), null);
  });

  it("findCycle handles a 20,000-task chain without overflowing the stack", () => {
    const spec: Record<string, string[]> = { t0: [] };
    for (let i = 1; i < 20_000; i++) spec[`t${i}`] = [`t${i - 1}`];
    assert.equal(findCycle(deps(spec)), null);
    spec.t0 = ["t19999"];
    assert.equal(findCycle(deps(spec))?.length, 20_001);
  });

  it("topoOrder puts dependencies first and keeps input order on ties", () => {
    assert.deepEqual(topoOrder(deps({ d: ["b", "c"], c: ["a"], b: ["a"], a: [] })), ["a", "c", "b", "d"]);
    assert.throws(() => topoOrder(deps({ a: ["b"], b: ["a"] })), /cycle/);
  });

  it("renderDagTree draws the tree", () => {
    const text = renderDagTree(deps({ task1: [], task2: ["task1"], task3: ["task2"], task4: ["task2"] }));
    assert.equal(text, ["task1", "└── task2", "    ├── task3", "    └── task4"].join("\n"));
    const fanIn = renderDagTree(deps({ a: [], l: ["a"], r: ["a"], j: ["l", "r"], k: ["j"] }));
    assert.match(fanIn, /j \(see above\)/);
  });
});

describe("DagPlanner with tasks already done", () => {
  it("never hands out a done task and starts its dependents at once", () => {
    const p = new DagPlanner(deps({ a: [], b: ["a"], c: ["b"], d: [] }), { done: ["a", "d"] });
    assert.equal(p.stateOf("a"), "COMPLETED");
    assert.equal(p.stateOf("d"), "COMPLETED");
    assert.deepEqual(p.takeReady(), ["b"]);
    p.complete("b");
    assert.deepEqual(p.takeReady(), ["c"]);
    p.complete("c");
    assert.equal(p.isFinished(), true);
    assert.equal(p.summary().succeeded, true);
    assert.equal(p.summary().completed, 4);
  });

  it("waits for every dependency of a join, done or not", () => {
    const p = new DagPlanner(deps({ a: [], left: ["a"], right: ["a"], join: ["left", "right"] }), {
      done: ["a", "left"],
    });
    assert.deepEqual(p.takeReady(), ["right"]);
    assert.equal(p.stateOf("join"), "PENDING");
    p.complete("right");
    assert.deepEqual(p.takeReady(), ["join"]);
  });

  it("is finished at once when every task is done", () => {
    const p = new DagPlanner(deps({ a: [], b: ["a"] }), { done: ["b", "a"] });
    assert.deepEqual(p.takeReady(), []);
    assert.equal(p.isFinished(), true);
    assert.equal(p.summary().succeeded, true);
  });

  it("refuses an unknown done task", () => {
    assert.throws(() => new DagPlanner(deps({ a: [] }), { done: ["x"] }), DagError);
  });
});

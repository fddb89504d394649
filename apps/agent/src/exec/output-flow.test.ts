import { test } from "node:test";
import assert from "node:assert/strict";
import { allFlows } from "./output-flow.js";
import type { OutputFlowControl } from "./task-process.js";

/** A flow paused until `open()`. */
function gate(paused: boolean): OutputFlowControl & { open(): void } {
  let waiters: (() => void)[] = [];
  return {
    shouldPause: () => paused,
    whenWritable: () => (paused ? new Promise((r) => waiters.push(r)) : Promise.resolve()),
    open: () => {
      paused = false;
      for (const w of waiters) w();
      waiters = [];
    },
  };
}

test("allFlows pauses while any flow says so and resumes once every paused one is writable", async () => {
  const a = gate(true);
  const b = gate(true);
  const c = gate(false);
  const flow = allFlows(a, b, c);
  assert.equal(flow.shouldPause(), true);
  let resumed = false;
  void flow.whenWritable().then(() => (resumed = true));
  a.open();
  await new Promise((r) => setImmediate(r));
  assert.equal(resumed, false, "b still holds the reader");
  assert.equal(flow.shouldPause(), true);
  b.open();
  await new Promise((r) => setImmediate(r));
  assert.equal(resumed, true);
  assert.equal(flow.shouldPause(), false);
});

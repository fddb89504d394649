import { it } from "node:test";
import assert from "node:assert/strict";
import { PriorityQueue } from "./priority-queue.js";

it("PriorityQueue pops in order, ties by the comparator", () => {
  const q = new PriorityQueue<{ at: number; id: string }>((a, b) => a.at - b.at || a.id.localeCompare(b.id));
  const input = [5, 1, 9, 3, 3, 7, 0, 12, 4].map((at, i) => ({ at, id: `w${i}` }));
  for (const x of input) q.push(x);
  assert.equal(q.size, input.length);
  assert.equal(q.peek()?.at, 0);
  const out: number[] = [];
  for (let x = q.pop(); x !== undefined; x = q.pop()) out.push(x.at);
  assert.deepEqual(out, [0, 1, 3, 3, 4, 5, 7, 9, 12]);
  assert.equal(q.pop(), undefined);
});

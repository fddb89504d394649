import assert from "node:assert/strict";
import { test } from "node:test";
import { FAULT_KINDS, Prng, planChaos } from "./prng.js";

const timing = { gapMs: [2000, 6000], heartbeatTimeoutMs: 3000 } as const;

test("the same seed gives the same chaos plan; another seed another one", () => {
  assert.deepEqual(planChaos(42, 30, timing), planChaos(42, 30, timing));
  assert.notDeepEqual(planChaos(42, 30, timing), planChaos(43, 30, timing));
});

test("every bag of five faults holds each kind once, so five faults exercise every kind", () => {
  for (const seed of [1, 7, 1301, 99_999]) {
    const plan = planChaos(seed, 20, timing);
    for (let i = 0; i < 20; i += 5)
      assert.deepEqual(
        plan
          .slice(i, i + 5)
          .map((f) => f.kind)
          .sort(),
        [...FAULT_KINDS].sort(),
      );
  }
});

test("gaps and durations stay in their ranges; a stopped agent stays stopped past the heartbeat timeout", () => {
  for (const f of planChaos(5, 100, timing)) {
    assert.ok(f.gapMs >= 2000 && f.gapMs <= 6000, `gap ${f.gapMs}`);
    if (f.kind === "stop-agent") assert.ok(f.downMs >= 4000, `stop ${f.downMs}`);
    if (f.kind === "fill-spool") assert.equal(f.agent, 0);
    assert.ok(f.agent === 0 || f.agent === 1);
  }
});

test("the PRNG is uniform enough and in [0, 1)", () => {
  const rng = new Prng(123);
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const x = rng.next();
    assert.ok(x >= 0 && x < 1);
    const b = Math.floor(x * 10);
    buckets[b] = (buckets[b] ?? 0) + 1;
  }
  for (const n of buckets) assert.ok(n > 9000 && n < 11_000, `bucket ${n}`);
});

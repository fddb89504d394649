/**
 * Several principals on PostgreSQL under the soak's load, the leader killed (-9) five times in one
 * run: two principals, two agents, the scheduler firing every second, API and webhook triggers
 * with idempotency keys. Each time another principal must lead within the lease TTL + 2 s, and at
 * the end every soak invariant must hold: every acknowledged trigger ran exactly once to a
 * terminal state, no run CRASHED (those RUNNING at a kill completed), no scheduled occurrence duplicated or missed,
 * no log line of a completed task lost or duplicated. Needs PostgreSQL on 127.0.0.1:5432 (skips
 * without it, fails with `CI` set). `npm run soak -- --store postgres --principals 2` runs the
 * full mix of faults.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { requireServer } from "@cdktr/test-utils";
import { soakInTest } from "./test-run.js";

const SEED = 11;
const TTL_MS = 2000;
const KILLS = 5;

test(`two principals on PostgreSQL, the leader killed ${KILLS} times: a standby leads within TTL + 2 s each time and every invariant holds`, {
  timeout: 240_000,
}, async (t) => {
  const skip = await requireServer("PostgreSQL", 5432);
  if (skip !== undefined) {
    t.skip(skip);
    return;
  }
  const { report, why } = await soakInTest(t, {
    durationMs: 90_000,
    seed: SEED,
    store: "postgres",
    principals: 2,
    leaderTtlMs: TTL_MS,
    faults: ["kill-principal"],
    maxFaults: KILLS,
    gapMs: [1500, 3000],
    settleMs: 6_000,
  });
  assert.equal(report.faultsByKind["kill-principal"], KILLS, why);
  const failovers = report.details.failoversMs as number[];
  assert.equal(failovers.length, KILLS, why);
  for (const ms of failovers) assert.ok(ms <= TTL_MS + 2000, `a failover took ${ms} ms\n${why}`);
  const killed = report.details.killedLeaders as number[];
  for (let i = 1; i < killed.length; i++) assert.notEqual(killed[i], killed[i - 1], `the leader alternates\n${why}`);
  assert.ok(report.acked >= 20, `the load ran (${report.acked} triggers acknowledged)\n${why}`);
  // A failover alone must not crash a run: the runs RUNNING at a kill complete on their agents.
  const byStatus = report.details.runsByStatus as Record<string, number>;
  assert.equal(byStatus.CRASHED ?? 0, 0, `no run CRASHED by a failover\n${why}`);
  assert.equal(report.requeuedAfterCrash, 0, why);
  assert.equal(report.invariantsHeld, true, why);
});

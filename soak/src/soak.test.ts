/**
 * The soak in `npm test`: 60 s of load and chaos with a fixed seed whose plan exercises every
 * fault kind (kill -9 of the principal, an agent and the scheduler, an agent SIGSTOPped past the
 * heartbeat timeout, the agent's spool disk filled then freed), then the invariants. The table
 * is the failure message; `npm run soak -- --seed 7 --seconds 60` replays the same plan.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FAULT_KINDS } from "./prng.js";
import { soakInTest } from "./test-run.js";

const SEED = 7;

test(`60 s soak, seed ${SEED}: every fault kind injected, every invariant holds`, { timeout: 175_000 }, async (t) => {
  const { report, why } = await soakInTest(t, {
    durationMs: 60_000,
    seed: SEED,
    settleMs: 10_000,
  });
  const diskSkipped = report.faults.some((f) => f.kind === "fill-spool" && f.note.startsWith("skipped"));
  if (diskSkipped) t.diagnostic(`spool disk fault skipped: ${String(report.details.spoolDisk)}`);
  for (const kind of FAULT_KINDS) {
    if (kind === "fill-spool" && diskSkipped) continue;
    assert.ok(report.faultsByKind[kind] >= 1, `fault ${kind} never injected\n${why}`);
  }
  assert.ok(report.acked >= 20, `the load ran (${report.acked} triggers acknowledged)\n${why}`);
  assert.ok(report.principalRestarts >= 1, why);
  assert.ok(report.recoveryMsMax !== null && report.recoveryMsMax < 60_000, why);
  assert.equal(report.invariantsHeld, true, why);
});

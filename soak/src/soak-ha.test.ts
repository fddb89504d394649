/**
 * Several principals on PostgreSQL under the soak's load, the leader killed (-9) five times in one
 * run: two principals, two agents, the scheduler firing every second, API and webhook triggers
 * with idempotency keys. Each time another principal must lead within the lease TTL + 2 s, and at
 * the end every soak invariant must hold: every acknowledged trigger ran exactly once to a
 * terminal state, runs RUNNING at a kill completed, no scheduled occurrence duplicated or missed,
 * no log line of a completed task lost or duplicated. Needs PostgreSQL on 127.0.0.1:5432 (skips
 * without it, fails with `CI` set). `npm run soak -- --store postgres --principals 2` runs the
 * full mix of faults.
 */
import assert from "node:assert/strict";
import { createConnection } from "node:net";
import { test } from "node:test";
import { runSoak } from "./soak.js";
import { renderTable } from "./table.js";

const SEED = 11;
const TTL_MS = 2000;
const KILLS = 5;

async function postgresMissing(): Promise<string | undefined> {
  const up = await new Promise<boolean>((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port: 5432 });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
  if (up) return undefined;
  if (process.env.CI !== undefined && process.env.CI !== "")
    assert.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CI is set: the server is required");
  return "PostgreSQL is not reachable on 127.0.0.1:5432: skipped (start it, or set CI to make this a failure)";
}

test(`two principals on PostgreSQL, the leader killed ${KILLS} times: a standby leads within TTL + 2 s each time and every invariant holds`, {
  timeout: 240_000,
}, async (t) => {
  const skip = await postgresMissing();
  if (skip !== undefined) {
    t.skip(skip);
    return;
  }
  const progress: string[] = [];
  const report = await runSoak({
    durationMs: 90_000,
    seed: SEED,
    store: "postgres",
    principals: 2,
    leaderTtlMs: TTL_MS,
    faults: ["kill-principal"],
    maxFaults: KILLS,
    gapMs: [1500, 3000],
    settleMs: 6_000,
    log: (line) => {
      progress.push(line);
      if (process.env.CDKTR_TEST_VERBOSE) process.stderr.write(`${line}\n`);
    },
  });
  const table = renderTable(report);
  for (const line of table.split("\n")) t.diagnostic(line);
  const why = `${table}\n\nprogress:\n${progress.join("\n")}\n\ndetails: ${JSON.stringify(report.details, null, 2)}`;
  assert.equal(report.faultsByKind["kill-principal"], KILLS, why);
  const failovers = report.details.failoversMs as number[];
  assert.equal(failovers.length, KILLS, why);
  for (const ms of failovers) assert.ok(ms <= TTL_MS + 2000, `a failover took ${ms} ms\n${why}`);
  const killed = report.details.killedLeaders as number[];
  for (let i = 1; i < killed.length; i++) assert.notEqual(killed[i], killed[i - 1], `the leader alternates\n${why}`);
  assert.ok(report.acked >= 20, `the load ran (${report.acked} triggers acknowledged)\n${why}`);
  assert.equal(report.invariantsHeld, true, why);
});

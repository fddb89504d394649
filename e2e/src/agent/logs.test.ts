/**
 * High-volume output through a real principal and agent: every line stored once, in order.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { cleanup, workflowYaml } from "@cdktr/test-utils";
import { prepareCluster, startFastAgent } from "./helpers.js";

afterEach(cleanup);

const N = 100_000;

test(`200,000 lines on stdout and stderr interleaved: all stored, order kept per stream, no duplicates`, async () => {
  const script =
    `const o=[],e=[];for(let i=1;i<=${N};i++){process.stdout.write('out '+i+'\\n');process.stderr.write('err '+i+'\\n');}` +
    // a final line without a newline, and a very long line
    `process.stdout.write('L'.repeat(200000)+'\\n');process.stdout.write('tail-no-newline');`;
  const c = await prepareCluster({
    "loud.yml": workflowYaml({ tasks: { loud: { cmd: process.execPath, args: ["-e", script] } } }),
  });
  await c.start();
  await startFastAgent(c);
  const runId = await c.run("loud");
  const r = await c.waitForRun(runId, 100_000);
  assert.equal(r.run.status, "COMPLETED");
  // The run is reported only after its logs were acknowledged: everything is there now.
  const lines = await c.logs(runId, "loud");
  const seqs = lines.map((l) => l.seq);
  assert.equal(new Set(seqs).size, seqs.length, "no duplicate seq");
  const bySeq = [...lines].sort((a, b) => a.seq - b.seq);
  const out = bySeq.filter((l) => l.stream === "stdout").map((l) => l.line);
  const err = bySeq.filter((l) => l.stream === "stderr").map((l) => l.line);
  assert.equal(err.length, N);
  for (let i = 0; i < N; i++) {
    if (err[i] !== `err ${i + 1}`) assert.fail(`stderr line ${i + 1} is ${JSON.stringify(err[i])}`);
    if (out[i] !== `out ${i + 1}`) assert.fail(`stdout line ${i + 1} is ${JSON.stringify(out[i])}`);
  }
  // the 200,000-char line arrives in 64 KiB pieces, nothing lost
  const long = out.slice(N, -1);
  assert.equal(long.join(""), "L".repeat(200_000));
  assert.ok(long.length >= 4);
  assert.equal(out.at(-1), "tail-no-newline");
  assert.deepEqual(
    seqs.sort((a, b) => a - b),
    seqs.map((_, i) => i + 1),
  );
});

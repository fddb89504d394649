/**
 * `runWorkflows` against a real principal process: many triggers in one request, each item
 * authorised, validated, deduplicated and answered on its own; a refused item never fails the
 * others; only what concerns every item fails the request.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { isCdktrError, MAX_BATCH_TRIGGERS } from "@cdktr/protocol";
import { cleanup, helloWorkflowYaml, startPrincipal, workflowYaml } from "@cdktr/test-utils";
import { countRows } from "./helpers.js";

afterEach(cleanup);

const PARAMS = "params:\n  n:\n    type: number\n";

describe("runWorkflows (batch trigger)", () => {
  it("answers every item on its own, in order: runs, duplicates, unknown workflows, bad params, keys a role may not use", async () => {
    const p = await startPrincipal({
      workflows: { "hello.yml": helloWorkflowYaml(), "numbers.yml": workflowYaml({ header: PARAMS }) },
    });
    const hook = p.connect({ key: (await p.createKey("hook", "trigger", { workflows: ["numbers", "missing"] })).key });
    const { results } = await hook.runWorkflows([
      { workflowId: "numbers", params: { n: 1 }, idempotencyKey: "a" },
      { workflowId: "hello" }, // not on the key's allow-list
      { workflowId: "numbers", params: { n: "one" } },
      { workflowId: "missing" },
      { workflowId: "numbers", params: { n: 2 }, idempotencyKey: "a" }, // same key as item 0
      { workflowId: "numbers", idempotencyKey: "cron:numbers:2030-01-01T00:00:00.000Z" }, // reserved for schedulers
      { workflowId: "numbers", params: { n: 3 }, source: "batch" },
    ]);
    assert.deepEqual(
      results.map((r) => (r.ok ? (r.duplicate ? "duplicate" : r.status) : r.error.code)),
      [
        "QUEUED",
        "PERMISSION_DENIED",
        "INVALID_PARAMS",
        "WORKFLOW_NOT_FOUND",
        "IDEMPOTENCY_CONFLICT",
        "PERMISSION_DENIED",
        "QUEUED",
      ],
    );
    const first = results[0];
    const last = results[6];
    assert.ok(first?.ok === true && last?.ok === true);
    assert.notEqual(first.runId, last.runId);
    assert.equal(countRows(p.dbPath, "runs"), 2, "only the accepted items made runs");
    const run = (await p.client.getRun(last.runId)).run;
    assert.deepEqual([run.source, run.triggeredBy, run.params], ["batch", "hook", { n: 3 }]);

    // The same request again (a retry after a lost reply): nothing new, the same runs.
    const again = await hook.runWorkflows([{ workflowId: "numbers", params: { n: 1 }, idempotencyKey: "a" }]);
    assert.deepEqual(again.results, [
      { ok: true, runId: first.runId, duplicate: true, skipped: false, status: "QUEUED" },
    ]);
    assert.equal(countRows(p.dbPath, "runs"), 2);
  });

  it("a full batch of 1,000 is stored; what concerns the whole request fails it: an empty or oversized list, a role that may not trigger", async () => {
    const p = await startPrincipal();
    const items = Array.from({ length: MAX_BATCH_TRIGGERS }, (_, i) => ({
      workflowId: "hello",
      idempotencyKey: `k-${i}`,
    }));
    const { results } = await p.client.runWorkflows(items);
    assert.equal(results.filter((r) => r.ok && !r.duplicate).length, MAX_BATCH_TRIGGERS);
    assert.equal(countRows(p.dbPath, "runs"), MAX_BATCH_TRIGGERS);

    const badRequest = (e: unknown): boolean => isCdktrError(e, "BAD_REQUEST");
    await assert.rejects(p.client.runWorkflows([]), badRequest);
    await assert.rejects(p.client.runWorkflows([...items, { workflowId: "hello" }]), badRequest);
    const reader = p.connect({ key: (await p.createKey("audit", "reader")).key });
    await assert.rejects(reader.runWorkflows([{ workflowId: "hello" }]), (e: unknown) =>
      isCdktrError(e, "PERMISSION_DENIED"),
    );
    assert.equal(countRows(p.dbPath, "runs"), MAX_BATCH_TRIGGERS, "no run from a refused request");
  });

  it("a batch's triggers count against the key's requests in flight: past CDKTR_MAX_REQUESTS_IN_FLIGHT_PER_KEY it is refused whole, retryable", async () => {
    const p = await startPrincipal({ env: { CDKTR_MAX_REQUESTS_IN_FLIGHT_PER_KEY: "500" } });
    const items = (n: number, prefix: string) =>
      Array.from({ length: n }, (_, i) => ({ workflowId: "hello", idempotencyKey: `${prefix}-${i}` }));
    await assert.rejects(
      p.client.runWorkflows(items(501, "big"), { retry: false }),
      (e: unknown) => isCdktrError(e, "RESOURCE_EXHAUSTED") && (e as { retryable?: boolean }).retryable === true,
    );
    assert.equal(countRows(p.dbPath, "runs"), 0, "nothing of the refused batch ran");
    const { results } = await p.client.runWorkflows(items(500, "fits"));
    assert.equal(results.filter((r) => r.ok).length, 500);
    // The count is given back: the next full batch fits again.
    assert.equal((await p.client.runWorkflows(items(500, "again"))).results.filter((r) => r.ok).length, 500);
  });
});

import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Subscriber, isCdktrError, topics, type WorkflowsChangedEvent } from "@cdktr/protocol";
import { cleanup, startPrincipal, waitFor, workflowYaml } from "@cdktr/test-utils";

afterEach(cleanup);

describe("workflow hot reload (watcher; periodic scan set to 3600 s)", () => {
  it("new file listable, broken edit keeps the last good version and reports file:line, removal announced", async () => {
    const p = await startPrincipal({ env: { CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: "3600" } });
    const sub = new Subscriber({ endpoint: `tcp://127.0.0.1:${p.ports.publish}`, key: p.key() });
    const events: WorkflowsChangedEvent[] = [];
    try {
      sub.connect();
      sub.subscribe(topics.workflows());
      // Subscribed after workflows() on the same socket: once a run event arrives, the workflows
      // subscription has reached the publisher too (no fixed sleep for ZeroMQ's slow joiner).
      sub.subscribe(topics.runs("hello"));
      let runEvents = 0;
      void (async () => {
        for await (const m of sub) {
          if (m.topic.startsWith(topics.runs("hello"))) runEvents++;
          else events.push(m.body as WorkflowsChangedEvent);
        }
      })();
      const first = await p.client.listWorkflows();
      assert.equal(first.full, true);
      assert.deepEqual(
        first.workflows.map((w) => w.id),
        ["hello"],
      );
      const probes: string[] = [];
      await waitFor(
        async () => {
          if (runEvents > 0) return true;
          probes.push((await p.client.runWorkflow({ workflowId: "hello" })).runId);
          await new Promise((r) => setTimeout(r, 50));
          return runEvents > 0;
        },
        { timeoutMs: 10_000, what: "the subscription to reach the publisher" },
      );
      // The probe runs must not be handed out below (the test fetches the `nightly` run).
      for (const runId of probes) assert.equal((await p.client.cancelRun(runId)).status, "CANCELLED");

      writeFileSync(join(p.workflowDir, "nightly.yaml"), workflowYaml({ header: "description: first" }));
      await waitFor(async () => (await p.client.listWorkflows()).workflows.some((w) => w.id === "nightly"), {
        timeoutMs: 5000,
        what: "new workflow",
      });
      const v1 = await p.client.listWorkflows();
      const good = v1.workflows.find((w) => w.id === "nightly");
      assert.equal(good?.description, "first");
      const inc = await p.client.listWorkflows({ sinceVersion: first.version });
      assert.equal(inc.full, false);
      assert.deepEqual(
        inc.workflows.map((w) => w.id),
        ["nightly"],
        "only what changed since",
      );
      await waitFor(() => events.some((e) => e.changed.includes("nightly")), {
        timeoutMs: 5000,
        what: "WorkflowsChangedEvent",
      });

      // A broken edit: unknown dependency on line 8.
      writeFileSync(
        join(p.workflowDir, "nightly.yaml"),
        'name: Test\ndescription: second\ntasks:\n  only:\n    name: Only\n    config: !Subprocess\n      cmd: "true"\n    depends: [nope]\n',
      );
      const broken = await waitFor(
        async () => {
          const l = await p.client.listWorkflows();
          return l.errors.length > 0 ? l : undefined;
        },
        { timeoutMs: 5000, what: "load error" },
      );
      const err = broken.errors[0];
      assert.equal(err?.file, "nightly.yaml");
      assert.equal(typeof err?.line, "number");
      assert.match(err?.message ?? "", /nope/);
      const still = broken.workflows.find((w) => w.id === "nightly");
      assert.equal(still?.hash, good?.hash, "last valid version stays active");
      const run = await p.client.runWorkflow({ workflowId: "nightly" });
      assert.equal(run.status, "QUEUED", "the last good version can still be triggered");

      // Fixing it clears the error; removing it announces the removal.
      writeFileSync(join(p.workflowDir, "nightly.yaml"), workflowYaml({ header: "description: third" }));
      await waitFor(
        async () => (await p.client.listWorkflows()).workflows.find((w) => w.id === "nightly")?.description === "third",
        {
          timeoutMs: 5000,
          what: "fixed workflow",
        },
      );
      assert.deepEqual((await p.client.listWorkflows()).errors, []);
      const beforeRemove = (await p.client.listWorkflows()).version;
      rmSync(join(p.workflowDir, "nightly.yaml"));
      await waitFor(async () => !(await p.client.listWorkflows()).workflows.some((w) => w.id === "nightly"), {
        timeoutMs: 5000,
        what: "removal",
      });
      const removed = await p.client.listWorkflows({ sinceVersion: beforeRemove });
      assert.deepEqual(removed.removed, ["nightly"]);
      assert.deepEqual(removed.workflows, []);
      await assert.rejects(
        p.client.runWorkflow({ workflowId: "nightly" }),
        (e: unknown) => isCdktrError(e, "WORKFLOW_NOT_FOUND") && /cdktr workflows/.test((e as Error).message),
      );
      // The queued run of the removed workflow still carries its definition.
      await p.client.registerAgent({ agentId: "a", host: "h", capacity: 1, labels: [], version: "t", runningRuns: [] });
      const work = await p.client.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
      assert.equal(work.assignment?.run.runId, run.runId);
      assert.equal(work.assignment?.workflow.hash, good?.hash);
      // An unknown (e.g. pre-restart) version gets a full listing.
      const old = await p.client.listWorkflows({ sinceVersion: 5 });
      assert.equal(old.full, true);
    } finally {
      sub.close();
    }
  });
});

describe("triggers", () => {
  it("100 concurrent triggers with one key make exactly one run; a conflicting reuse is refused", async () => {
    const p = await startPrincipal({
      workflows: {
        "hello.yml": workflowYaml({ header: "params:\n  n:\n    type: number\n    default: 1\n" }),
        "other.yml": workflowYaml(),
      },
    });
    const replies = await Promise.all(
      Array.from({ length: 100 }, () =>
        p.client.runWorkflow({ workflowId: "hello", idempotencyKey: "once", params: { n: 3 } }),
      ),
    );
    const ids = new Set(replies.map((r) => r.runId));
    assert.equal(ids.size, 1);
    assert.equal(replies.filter((r) => !r.duplicate).length, 1);
    const runs = await p.client.listRuns({});
    assert.equal(runs.runs.length, 1);
    assert.deepEqual(runs.runs[0]?.params, { n: 3 });
    assert.equal(runs.runs[0]?.idempotencyKey, "once");

    await assert.rejects(
      p.client.runWorkflow({ workflowId: "hello", idempotencyKey: "once", params: { n: 4 } }),
      (e: unknown) =>
        isCdktrError(e, "IDEMPOTENCY_CONFLICT") &&
        (e as Error).message.includes("once") &&
        (e as Error).message.includes([...ids][0] ?? "?"),
    );
    await assert.rejects(p.client.runWorkflow({ workflowId: "other", idempotencyKey: "once" }), (e: unknown) =>
      isCdktrError(e, "IDEMPOTENCY_CONFLICT"),
    );
    await assert.rejects(
      p.client.runWorkflow({ workflowId: "hello", params: { n: "many" } }),
      (e: unknown) => isCdktrError(e, "INVALID_PARAMS") && /n/.test((e as Error).message),
    );
    await assert.rejects(p.client.runWorkflow({ workflowId: "hello", params: { bogus: 1 } }), (e: unknown) =>
      isCdktrError(e, "INVALID_PARAMS"),
    );
    await assert.rejects(p.client.runWorkflow({ workflowId: "nope" }), (e: unknown) =>
      isCdktrError(e, "WORKFLOW_NOT_FOUND"),
    );
    const coerced = await p.client.runWorkflow({
      workflowId: "hello",
      params: { n: "5" },
      scheduledFor: "2026-01-01T10:00:00.000Z",
      source: "scheduler",
    });
    const got = await p.client.getRun(coerced.runId);
    assert.deepEqual(got.run.params, { n: 5 });
    assert.equal(got.run.scheduledFor, "2026-01-01T10:00:00.000Z");
    assert.equal(got.run.source, "scheduler");
    const def = await p.client.runWorkflow({ workflowId: "hello" });
    assert.deepEqual((await p.client.getRun(def.runId)).run.params, { n: 1 }, "defaults applied");
    assert.equal((await p.client.getRun(def.runId)).run.source, "api");
    const sched = await p.client.listRuns({ workflowId: "hello", scheduledOnly: true, limit: 1 });
    assert.deepEqual(
      sched.runs.map((r) => r.runId),
      [coerced.runId],
    );
  });
});

import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Subscriber, isCdktrError, topics, type WorkflowsChangedEvent } from "@cdktr/protocol";
import { killAllServices, removeTempDirs, waitFor } from "@cdktr/test-utils";
import { clients, makeFixture, spawnPrincipal, workflowYaml } from "./helpers.js";

afterEach(async () => {
  await killAllServices();
});
after(() => removeTempDirs());

describe("workflow hot reload (watcher; periodic scan set to 3600 s)", () => {
  it("new file listable, broken edit keeps the last good version and reports file:line, removal announced", async () => {
    const f = await makeFixture(undefined, { CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: "3600" });
    await spawnPrincipal(f);
    const c = clients(f);
    const sub = new Subscriber({ endpoint: `tcp://127.0.0.1:${f.ports.publish}` });
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
      const first = await c.api.listWorkflows();
      assert.equal(first.full, true);
      assert.deepEqual(
        first.workflows.map((w) => w.id),
        ["hello"],
      );
      const probes: string[] = [];
      await waitFor(
        async () => {
          if (runEvents > 0) return true;
          probes.push((await c.api.runWorkflow({ workflowId: "hello" })).runId);
          await new Promise((r) => setTimeout(r, 50));
          return runEvents > 0;
        },
        { timeoutMs: 10_000, what: "the subscription to reach the publisher" },
      );
      // The probe runs must not be handed out below (the test fetches the `nightly` run).
      for (const runId of probes) assert.equal((await c.api.cancelRun(runId)).status, "CANCELLED");

      writeFileSync(join(f.workflowDir, "nightly.yaml"), workflowYaml("description: first"));
      await waitFor(async () => (await c.api.listWorkflows()).workflows.some((w) => w.id === "nightly"), {
        timeoutMs: 5000,
        what: "new workflow",
      });
      const v1 = await c.api.listWorkflows();
      const good = v1.workflows.find((w) => w.id === "nightly");
      assert.equal(good?.description, "first");
      const inc = await c.api.listWorkflows({ sinceVersion: first.version });
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
        join(f.workflowDir, "nightly.yaml"),
        'name: Test\ndescription: second\ntasks:\n  only:\n    name: Only\n    config: !Subprocess\n      cmd: "true"\n    depends: [nope]\n',
      );
      const broken = await waitFor(
        async () => {
          const l = await c.api.listWorkflows();
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
      const run = await c.api.runWorkflow({ workflowId: "nightly" });
      assert.equal(run.status, "QUEUED", "the last good version can still be triggered");

      // Fixing it clears the error; removing it announces the removal.
      writeFileSync(join(f.workflowDir, "nightly.yaml"), workflowYaml("description: third"));
      await waitFor(
        async () => (await c.api.listWorkflows()).workflows.find((w) => w.id === "nightly")?.description === "third",
        {
          timeoutMs: 5000,
          what: "fixed workflow",
        },
      );
      assert.deepEqual((await c.api.listWorkflows()).errors, []);
      const beforeRemove = (await c.api.listWorkflows()).version;
      rmSync(join(f.workflowDir, "nightly.yaml"));
      await waitFor(async () => !(await c.api.listWorkflows()).workflows.some((w) => w.id === "nightly"), {
        timeoutMs: 5000,
        what: "removal",
      });
      const removed = await c.api.listWorkflows({ sinceVersion: beforeRemove });
      assert.deepEqual(removed.removed, ["nightly"]);
      assert.deepEqual(removed.workflows, []);
      await assert.rejects(
        c.api.runWorkflow({ workflowId: "nightly" }),
        (e: unknown) => isCdktrError(e, "WORKFLOW_NOT_FOUND") && /cdktr workflows/.test((e as Error).message),
      );
      // The queued run of the removed workflow still carries its definition.
      await c.api.registerAgent({ agentId: "a", host: "h", capacity: 1, labels: [], version: "t", runningRuns: [] });
      const work = await c.api.fetchWork({ agentId: "a", waitMs: 0, freeSlots: 1 });
      assert.equal(work.assignment?.run.runId, run.runId);
      assert.equal(work.assignment?.workflow.hash, good?.hash);
      // An unknown (e.g. pre-restart) version gets a full listing.
      const old = await c.api.listWorkflows({ sinceVersion: 5 });
      assert.equal(old.full, true);
    } finally {
      sub.close();
      c.close();
    }
  });
});

describe("triggers", () => {
  it("100 concurrent triggers with one key make exactly one run; a conflicting reuse is refused", async () => {
    const f = await makeFixture({
      "hello.yml": workflowYaml("params:\n  n:\n    type: number\n    default: 1\n"),
      "other.yml": workflowYaml(),
    });
    await spawnPrincipal(f);
    const c = clients(f);
    try {
      const replies = await Promise.all(
        Array.from({ length: 100 }, () =>
          c.api.runWorkflow({ workflowId: "hello", idempotencyKey: "once", params: { n: 3 } }),
        ),
      );
      const ids = new Set(replies.map((r) => r.runId));
      assert.equal(ids.size, 1);
      assert.equal(replies.filter((r) => !r.duplicate).length, 1);
      const runs = await c.api.listRuns({});
      assert.equal(runs.runs.length, 1);
      assert.deepEqual(runs.runs[0]?.params, { n: 3 });
      assert.equal(runs.runs[0]?.idempotencyKey, "once");

      await assert.rejects(
        c.api.runWorkflow({ workflowId: "hello", idempotencyKey: "once", params: { n: 4 } }),
        (e: unknown) =>
          isCdktrError(e, "IDEMPOTENCY_CONFLICT") &&
          (e as Error).message.includes("once") &&
          (e as Error).message.includes([...ids][0] ?? "?"),
      );
      await assert.rejects(c.api.runWorkflow({ workflowId: "other", idempotencyKey: "once" }), (e: unknown) =>
        isCdktrError(e, "IDEMPOTENCY_CONFLICT"),
      );
      await assert.rejects(
        c.api.runWorkflow({ workflowId: "hello", params: { n: "many" } }),
        (e: unknown) => isCdktrError(e, "INVALID_PARAMS") && /n/.test((e as Error).message),
      );
      await assert.rejects(c.api.runWorkflow({ workflowId: "hello", params: { bogus: 1 } }), (e: unknown) =>
        isCdktrError(e, "INVALID_PARAMS"),
      );
      await assert.rejects(c.api.runWorkflow({ workflowId: "nope" }), (e: unknown) =>
        isCdktrError(e, "WORKFLOW_NOT_FOUND"),
      );
      const coerced = await c.api.runWorkflow({
        workflowId: "hello",
        params: { n: "5" },
        scheduledFor: "2026-01-01T10:00:00.000Z",
        source: "scheduler",
      });
      const got = await c.api.getRun(coerced.runId);
      assert.deepEqual(got.run.params, { n: 5 });
      assert.equal(got.run.scheduledFor, "2026-01-01T10:00:00.000Z");
      assert.equal(got.run.source, "scheduler");
      const def = await c.api.runWorkflow({ workflowId: "hello" });
      assert.deepEqual((await c.api.getRun(def.runId)).run.params, { n: 1 }, "defaults applied");
      assert.equal((await c.api.getRun(def.runId)).run.source, "api");
      const sched = await c.api.listRuns({ workflowId: "hello", scheduledOnly: true, limit: 1 });
      assert.deepEqual(
        sched.runs.map((r) => r.runId),
        [coerced.runId],
      );
    } finally {
      c.close();
    }
  });
});

/**
 * The store contract, authentication part: idempotency scopes, who triggered a run, leases held
 * by keys (reports and log lines need the key and the token) and the key table. Run per store by
 * `sqlite.test.ts` and `postgres.test.ts`.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ManualClock, isCdktrError, type LogLine } from "@cdktr/protocol";
import { UlidGenerator } from "../../ids.js";
import { definition } from "../workflow-fixture.js";
import { baseTrigger, logLine } from "./contract.js";
import type { StoreHarness } from "./harness.js";

const wf = definition("wf");

/** Register the authentication contract tests for the store of `h`. */
export function authContract(h: StoreHarness): void {
  describe(`Store contract, keys and leases: ${h.name}`, async () => {
    const skip = await h.unavailable();
    const opts = { skip: skip ?? false };
    after(() => h.dispose());

    it("idempotency keys are per scope; a run records who triggered it and a requeue keeps it", opts, async () => {
      const clock = new ManualClock();
      const store = await h.open(clock);
      const ids = new UlidGenerator(clock);
      const trig = (scope: string, by: string | null) =>
        store.createRun({
          ...baseTrigger,
          runId: ids.next(),
          workflow: wf,
          idempotencyKey: "same",
          idempotencyScope: scope,
          triggeredBy: by,
        });
      const a = await trig("sched", "sched-1");
      const b = await trig("sched", "sched-2");
      const c = await trig("hooks", "hook-1");
      assert.deepEqual([a.duplicate, b.duplicate, c.duplicate], [false, true, false]);
      assert.equal(b.run.runId, a.run.runId, "two keys of one scope dedupe");
      assert.equal(a.run.triggeredBy, "sched-1");
      assert.equal(b.run.triggeredBy, "sched-1", "the duplicate is the first run");
      await store.assignRun(a.run.runId, "ag", "tok", clock.now() + 10_000, "local-agent");
      await store.confirmAssignment(a.run.runId, "ag", "tok", ["only"], "local-agent");
      const crash = await store.crashRun(a.run.runId, "agent_lost", "gone", ids.next());
      assert.equal(crash?.requeued?.triggeredBy, "sched-1");
      const mine = await store.listRuns({}, { triggeredBy: "hook-1" });
      assert.deepEqual(
        mine.runs.map((r) => r.runId),
        [c.run.runId],
      );
      await store.close();
    });

    it(
      "a run's lease belongs to the key that fetched it: reports need that key and the run's token, also after the run ended",
      opts,
      async () => {
        const clock = new ManualClock();
        const store = await h.open(clock);
        const runId = new UlidGenerator(clock).next();
        await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: null });
        await store.assignRun(runId, "ag", "tok", clock.now() + 10_000, "agent-a");
        await assert.rejects(store.confirmAssignment(runId, "ag", "tok", ["only"], "agent-b"), (e: unknown) =>
          isCdktrError(e, "PERMISSION_DENIED"),
        );
        await store.confirmAssignment(runId, "ag", "tok", ["only"], "agent-a");
        const time = new Date(clock.now()).toISOString();
        const task = { agentId: "ag", runId, taskId: "only", attempt: 1, status: "RUNNING" as const, time };
        await assert.rejects(
          store.updateTaskStatus({ ...task, token: "tok" }, { keyName: "agent-b", token: "tok" }),
          (e: unknown) => isCdktrError(e, "PERMISSION_DENIED"),
        );
        await assert.rejects(store.updateTaskStatus(task, { keyName: "agent-a", token: undefined }), (e: unknown) =>
          isCdktrError(e, "STALE_ASSIGNMENT"),
        );
        await assert.rejects(store.updateTaskStatus(task, { keyName: "agent-a", token: "old" }), (e: unknown) =>
          isCdktrError(e, "STALE_ASSIGNMENT"),
        );
        assert.equal((await store.updateTaskStatus(task, { keyName: "agent-a", token: "tok" })).applied, true);
        const line: LogLine = logLine(clock, runId, 1);
        await assert.rejects(
          store.insertLogs([line], { keyName: "agent-b", tokens: { [runId]: "tok" } }),
          (e: unknown) => isCdktrError(e, "PERMISSION_DENIED"),
        );
        await assert.rejects(store.insertLogs([line], { keyName: "agent-a", tokens: {} }), (e: unknown) =>
          isCdktrError(e, "STALE_ASSIGNMENT"),
        );
        await assert.rejects(
          store.insertLogs([{ ...line, workflowId: "other" }], { keyName: "agent-a", tokens: { [runId]: "tok" } }),
          (e: unknown) => isCdktrError(e, "PERMISSION_DENIED"),
        );
        await assert.rejects(
          store.insertLogs([line, { ...line, runId: "nope" }], {
            keyName: "agent-a",
            tokens: { [runId]: "tok", nope: "tok" },
          }),
          (e: unknown) => isCdktrError(e, "RUN_NOT_FOUND"),
        );
        assert.equal((await store.counts()).logs, 0, "a refused batch stores nothing, not even its good lines");
        assert.equal((await store.insertLogs([line], { keyName: "agent-a", tokens: { [runId]: "tok" } })).stored, 1);
        const done = { agentId: "ag", runId, status: "COMPLETED" as const, time };
        assert.equal((await store.updateRunStatus(done, { keyName: "agent-a", token: "tok" })).applied, true);
        const late = await store.insertLogs([{ ...line, seq: 2 }], { keyName: "agent-a", tokens: { [runId]: "tok" } });
        assert.equal(late.stored, 1, "the token still checks after the run ended (spooled lines)");
        await store.close();
      },
    );

    it(
      "keys: enrol (a resend is a no-op), names unique among keys not revoked, a revoked pair never again, list and revoke",
      opts,
      async () => {
        const store = await h.open(new ManualClock());
        const k = (name: string, publicKey: string, role: "agent" | "trigger" = "agent") => ({
          name,
          role,
          scope: name,
          workflows: null,
          publicKey,
        });
        const pk = (c: string) => c.repeat(40);
        const first = await store.enrollKey(k("a", pk("A")));
        assert.equal(first.created, true);
        assert.deepEqual(await store.enrollKey(k("a", pk("A"))), { key: first.key, created: false });
        await assert.rejects(store.enrollKey(k("a", pk("B"))), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
        await assert.rejects(store.enrollKey(k("a", pk("A"), "trigger")), (e: unknown) =>
          isCdktrError(e, "KEY_IN_USE"),
        );
        await assert.rejects(store.enrollKey(k("b", pk("A"))), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
        const revoked = await store.revokeKey("a");
        assert.equal(revoked?.revoked, true);
        assert.ok(revoked?.key.revokedAt !== null);
        assert.equal((await store.revokeKey("a"))?.revoked, false, "idempotent");
        assert.equal(await store.revokeKey("nobody"), null);
        await assert.rejects(store.enrollKey(k("a", pk("A"))), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
        await assert.rejects(store.enrollKey(k("c", pk("A"))), (e: unknown) => isCdktrError(e, "KEY_IN_USE"));
        const reused = await store.enrollKey(k("a", pk("C")));
        assert.deepEqual([reused.created, reused.key.revokedAt, reused.key.publicKey], [true, null, pk("C")]);
        await store.enrollKey({ ...k("t", pk("D"), "trigger"), scope: "hooks", workflows: ["etl"] });
        const listed = await store.listKeys();
        assert.deepEqual(
          listed.map((x) => [x.name, x.role, x.scope, x.workflows, x.revokedAt === null]),
          [
            ["a", "agent", "a", null, true],
            ["t", "trigger", "hooks", ["etl"], true],
          ],
        );
        assert.ok(listed.every((x) => !("secretKey" in x)));
        await store.close();
      },
    );
  });
}

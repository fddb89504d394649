/**
 * The store contract: what every {@link Store} must do, run against each implementation by a
 * test file per store (`sqlite.test.ts`, `postgres.test.ts`), so the stores cannot drift apart.
 * Paged reads are in `read-contract.ts`.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ManualClock, isCdktrError, type LogLine } from "@cdktr/protocol";
import { UlidGenerator } from "../../ids.js";
import type { Store } from "../../store/store.js";
import { definition } from "../workflow-fixture.js";
import type { StoreHarness } from "./harness.js";

const wf = definition("wf");
/** The fields of a trigger the tests do not vary. */
export const baseTrigger = {
  params: {},
  requestParams: {},
  source: "test",
  scheduledFor: null,
  idempotencyScope: "",
  triggeredBy: null,
};

/** A log line of `runId` (workflow `wf`, task `only`) at the clock's time. */
export function logLine(clock: ManualClock, runId: string, seq: number): LogLine {
  return {
    time: new Date(clock.now()).toISOString(),
    runId,
    workflowId: "wf",
    taskId: "only",
    stream: "stdout",
    level: "info",
    seq,
    line: "x",
  };
}

/** Register the write-side contract tests for the store of `h`. */
export function storeContract(h: StoreHarness): void {
  describe(`Store contract: ${h.name}`, async () => {
    const skip = await h.unavailable();
    const opts = { skip: skip ?? false };
    after(() => h.dispose());

    let store: Store;
    let clock: ManualClock;
    let ids: UlidGenerator;
    const open = async (c = new ManualClock()): Promise<void> => {
      clock = c;
      store = await h.open(clock);
      ids = new UlidGenerator(clock);
    };
    it("migrates once (schema_version) and reopens an existing database", opts, async () => {
      await open();
      await store.close();
      const version = await h.rows("SELECT version FROM schema_version");
      assert.equal(version.length, 1);
      assert.ok(Number(version[0]?.version) >= 1);
      const again = await h.reopen(clock);
      await again.close();
      assert.deepEqual(await h.rows("SELECT version FROM schema_version"), version);
    });

    it(
      "group commit: same-tick triggers with one key dedupe inside the batch; a refused command does not undo the others",
      opts,
      async () => {
        await open();
        const a = ids.next();
        const results = await Promise.allSettled([
          store.createRun({ ...baseTrigger, runId: a, workflow: wf, idempotencyKey: "k" }),
          store.createRun({ ...baseTrigger, runId: ids.next(), workflow: wf, idempotencyKey: "k" }),
          store.createRun({
            ...baseTrigger,
            runId: ids.next(),
            workflow: wf,
            idempotencyKey: "k",
            requestParams: { x: 1 },
          }),
          store.createRun({ ...baseTrigger, runId: ids.next(), workflow: wf, idempotencyKey: "other" }),
        ]);
        const [r1, r2, r3, r4] = results;
        assert.ok(r1?.status === "fulfilled" && r1.value.duplicate === false && r1.value.run.runId === a);
        assert.ok(r2?.status === "fulfilled" && r2.value.duplicate === true && r2.value.run.runId === a);
        assert.ok(r3?.status === "rejected" && isCdktrError(r3.reason, "IDEMPOTENCY_CONFLICT"));
        assert.ok(r4?.status === "fulfilled" && r4.value.duplicate === false);
        const counts = await store.counts();
        assert.equal(counts.runs, 2);
        assert.equal(counts.idempotency_keys, 2);
        await store.close();
      },
    );

    it(
      "a batch of keyed triggers (keys looked up together): known keys answer their first run or a conflict, new ones insert once",
      opts,
      async () => {
        await open();
        const old = ids.next();
        await store.createRun({ ...baseTrigger, runId: old, workflow: wf, idempotencyKey: "old" });
        const n1 = ids.next();
        const n2 = ids.next();
        const results = await Promise.allSettled([
          store.createRun({ ...baseTrigger, runId: ids.next(), workflow: wf, idempotencyKey: "old" }),
          store.createRun({
            ...baseTrigger,
            runId: ids.next(),
            workflow: wf,
            idempotencyKey: "old",
            requestParams: { x: 2 },
          }),
          store.createRun({ ...baseTrigger, runId: n1, workflow: wf, idempotencyKey: "new-1" }),
          store.createRun({ ...baseTrigger, runId: n2, workflow: wf, idempotencyKey: "new-2" }),
          store.createRun({ ...baseTrigger, runId: ids.next(), workflow: wf, idempotencyKey: "new-1" }),
        ]);
        const value = (i: number) => {
          const r = results[i];
          assert.ok(r?.status === "fulfilled", `trigger ${i}: ${String(r?.status === "rejected" ? r.reason : "")}`);
          return [r.value.duplicate, r.value.run.runId];
        };
        assert.deepEqual(value(0), [true, old]);
        assert.ok(results[1]?.status === "rejected" && isCdktrError(results[1].reason, "IDEMPOTENCY_CONFLICT"));
        assert.deepEqual(value(2), [false, n1]);
        assert.deepEqual(value(3), [false, n2]);
        assert.deepEqual(value(4), [true, n1]);
        const counts = await store.counts();
        assert.equal(counts.runs, 3);
        assert.equal(counts.idempotency_keys, 3);
        await store.close();
      },
    );

    it("a resolved write is visible to every read, and survives a reopen", opts, async () => {
      await open();
      const runId = ids.next();
      await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: "durable" });
      assert.equal((await store.getRun(runId))?.run.status, "QUEUED");
      assert.equal((await store.listRuns({})).runs[0]?.runId, runId);
      await store.close();
      const again = await h.reopen(clock);
      assert.equal((await again.getRun(runId))?.run.status, "QUEUED");
      const dup = await again.createRun({ ...baseTrigger, runId: ids.next(), workflow: wf, idempotencyKey: "durable" });
      assert.deepEqual([dup.duplicate, dup.run.runId], [true, runId]);
      assert.deepEqual(
        (await again.loadActiveRuns()).map((r) => [r.run.runId, r.workflow.id]),
        [[runId, "wf"]],
      );
      await again.close();
    });

    it(
      "assigning a run whose lease ran out but whose expiry was never stored (a failed commit) expires it first",
      opts,
      async () => {
        await open();
        const runId = ids.next();
        await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: null });
        assert.ok(await store.assignRun(runId, "ag", "tok", clock.now() + 1000, null));
        await clock.advance(1001);
        const again = await store.assignRun(runId, "ag2", "tok2", clock.now() + 1000, null);
        assert.equal(again?.status, "ASSIGNED");
        assert.equal(again?.agentId, "ag2");
        await assert.rejects(store.confirmAssignment(runId, "ag", "tok", ["only"], null), (e: unknown) =>
          isCdktrError(e, "STALE_ASSIGNMENT"),
        );
        assert.equal((await store.confirmAssignment(runId, "ag2", "tok2", ["only"], null)).run.status, "RUNNING");
        await store.close();
      },
    );

    it(
      "a confirmation records the agent's start time as the run's start (its history line too); without one, the commit time",
      opts,
      async () => {
        await open();
        const [agentTimed, committed] = [ids.next(), ids.next()];
        for (const runId of [agentTimed, committed]) {
          await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: null });
          await store.assignRun(runId, "ag", `tok-${runId}`, clock.now() + 1000, null);
        }
        // The agent started the run 40 ms before its confirmation reached the principal.
        const startedAt = clock.now() - 40;
        const a = await store.confirmAssignment(agentTimed, "ag", `tok-${agentTimed}`, ["only"], null, startedAt);
        assert.equal(a.run.startedAt, new Date(startedAt).toISOString());
        const again = await store.confirmAssignment(
          agentTimed,
          "ag",
          `tok-${agentTimed}`,
          ["only"],
          null,
          startedAt + 5,
        );
        assert.equal(again.run.startedAt, new Date(startedAt).toISOString(), "a resent confirmation changes nothing");
        const c = await store.confirmAssignment(committed, "ag", `tok-${committed}`, ["only"], null);
        assert.equal(c.run.startedAt, new Date(clock.now()).toISOString());
        await store.close();
        const rows = await h.rows(
          "SELECT run_id, time, recorded_at FROM status_history WHERE to_status = 'RUNNING' AND task_id IS NULL ORDER BY id",
        );
        assert.deepEqual(
          rows.map((r) => [r.run_id, Number(r.time), Number(r.recorded_at)]),
          [
            [agentTimed, startedAt, clock.now()],
            [committed, clock.now(), clock.now()],
          ],
        );
      },
    );

    it("leases: an expired assignment goes back to the queue once; a stale token expires nothing", opts, async () => {
      await open();
      const runId = ids.next();
      await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: null });
      await store.assignRun(runId, "ag", "tok", clock.now() + 1000, "k1");
      assert.equal(await store.expireAssignment(runId, "other"), null);
      const back = await store.expireAssignment(runId, "tok");
      assert.deepEqual([back?.status, back?.agentId], ["QUEUED", null]);
      assert.equal(await store.expireAssignment(runId, "tok"), null, "only once");
      const active = await store.loadActiveRuns();
      assert.deepEqual(
        active.map((a) => [a.token, a.leaseKey, a.leaseExpiresAt]),
        [[null, null, null]],
      );
      await store.close();
    });

    it(
      "the history table is an append-only record of every transition, including refused late reports",
      opts,
      async () => {
        await open();
        const runId = ids.next();
        await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: null });
        assert.ok(await store.assignRun(runId, "ag", "tok", clock.now() + 1000, null));
        assert.equal(
          await store.assignRun(runId, "ag2", "tok2", clock.now() + 1000, null),
          null,
          "only a QUEUED run can be assigned",
        );
        await assert.rejects(store.confirmAssignment(runId, "ag", "wrong", ["only"], null), (e: unknown) =>
          isCdktrError(e, "STALE_ASSIGNMENT"),
        );
        const { run, tasks } = await store.confirmAssignment(runId, "ag", "tok", ["only"], null);
        assert.equal(run.status, "RUNNING");
        assert.deepEqual(
          tasks.map((t) => t.status),
          ["PENDING"],
        );
        const crash = await store.crashRun(runId, "agent_lost", "gone", null);
        assert.equal(crash?.run.status, "CRASHED");
        assert.deepEqual(
          crash?.tasks.map((t) => t.status),
          ["CRASHED"],
        );
        const late = await store.updateRunStatus(
          { agentId: "ag", runId, status: "COMPLETED", time: new Date(clock.now()).toISOString() },
          null,
        );
        assert.equal(late.applied, false);
        assert.equal(late.run.status, "CRASHED");
        await store.close();
        const rows = await h.rows(
          "SELECT from_status, to_status, applied FROM status_history WHERE task_id IS NULL ORDER BY id",
        );
        assert.deepEqual(rows, [
          { from_status: null, to_status: "QUEUED", applied: 1 },
          { from_status: "QUEUED", to_status: "ASSIGNED", applied: 1 },
          { from_status: "ASSIGNED", to_status: "RUNNING", applied: 1 },
          { from_status: "RUNNING", to_status: "CRASHED", applied: 1 },
          { from_status: "CRASHED", to_status: "COMPLETED", applied: 0 },
        ]);
      },
    );

    it(
      "task reports move tasks; a cancel of a RUNNING run asks the agent, whose CANCELLED closes the open tasks",
      opts,
      async () => {
        await open();
        const runId = ids.next();
        await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: null });
        await store.assignRun(runId, "ag", "tok", clock.now() + 1000, null);
        await store.confirmAssignment(runId, "ag", "tok", ["a", "b"], null);
        const time = new Date(clock.now()).toISOString();
        const t = { agentId: "ag", runId, attempt: 1, time };
        assert.equal((await store.updateTaskStatus({ ...t, taskId: "a", status: "RUNNING" }, null)).applied, true);
        const done = await store.updateTaskStatus({ ...t, taskId: "a", status: "COMPLETED", exitCode: 0 }, null);
        assert.deepEqual([done.applied, done.task?.status, done.task?.exitCode], [true, "COMPLETED", 0]);
        assert.equal((await store.updateTaskStatus({ ...t, taskId: "a", status: "COMPLETED" }, null)).applied, false);
        const cancel = await store.cancelRun(runId);
        assert.deepEqual([cancel.cancelled, cancel.agentMustStop, cancel.run.status], [true, true, "RUNNING"]);
        const reported = await store.updateRunStatus({ agentId: "ag", runId, status: "CANCELLED", time }, null);
        assert.deepEqual(
          reported.tasks.map((x) => [x.taskId, x.status]),
          [["b", "CANCELLED"]],
        );
        const got = await store.getRun(runId);
        assert.deepEqual(
          got?.tasks.map((x) => [x.taskId, x.status]),
          [
            ["a", "COMPLETED"],
            ["b", "CANCELLED"],
          ],
        );
        assert.equal((await store.cancelRun(runId)).cancelled, false, "a finished run is left alone");
        const queued = ids.next();
        await store.createRun({ ...baseTrigger, runId: queued, workflow: wf, idempotencyKey: null });
        assert.equal((await store.cancelRun(queued)).run.status, "CANCELLED");
        await assert.rejects(store.cancelRun("nope"), (e: unknown) => isCdktrError(e, "RUN_NOT_FOUND"));
        await store.close();
      },
    );

    it(
      "a cancel of an ASSIGNED run asks its agent: confirmed, it is the agent's to cancel (its tasks recorded); never started, it ends CANCELLED instead of going back to the queue",
      opts,
      async () => {
        await open();
        const time = new Date(clock.now()).toISOString();
        const started = ids.next();
        await store.createRun({ ...baseTrigger, runId: started, workflow: wf, idempotencyKey: null });
        await store.assignRun(started, "ag", "tok", clock.now() + 1000, null);
        const asked = await store.cancelRun(started);
        assert.deepEqual([asked.cancelled, asked.agentMustStop, asked.run.status], [true, true, "ASSIGNED"]);
        // The agent had started it: its confirmation and reports are accepted.
        await store.confirmAssignment(started, "ag", "tok", ["a", "b"], null);
        const t = { agentId: "ag", runId: started, attempt: 1, time };
        assert.equal((await store.updateTaskStatus({ ...t, taskId: "a", status: "RUNNING" }, null)).applied, true);
        assert.equal((await store.updateTaskStatus({ ...t, taskId: "a", status: "CANCELLED" }, null)).applied, true);
        await store.updateRunStatus({ agentId: "ag", runId: started, status: "CANCELLED", time }, null);
        assert.deepEqual(
          (await store.getRun(started))?.tasks.map((x) => [x.taskId, x.status]),
          [
            ["a", "CANCELLED"],
            ["b", "CANCELLED"],
          ],
        );
        // Never started (its agent says so, or its lease ends): CANCELLED, not QUEUED.
        const unstarted = ids.next();
        await store.createRun({ ...baseTrigger, runId: unstarted, workflow: wf, idempotencyKey: null });
        await store.assignRun(unstarted, "ag", "tok2", clock.now() + 1000, null);
        await store.cancelRun(unstarted);
        const ended = await store.expireAssignment(unstarted, "tok2");
        assert.deepEqual(
          [ended?.status, ended?.reason, ended?.message],
          ["CANCELLED", "cancelled", "cancelled by request before its agent started it"],
        );
        assert.equal(ended?.finishedAt !== null, true);
        await assert.rejects(
          store.confirmAssignment(unstarted, "ag", "tok2", ["a", "b"], null),
          (e: unknown) => isCdktrError(e, "STALE_ASSIGNMENT"),
          "its token is refused from then on",
        );
        await store.close();
      },
    );

    it("overlap skip: a trigger beyond max_active_runs is stored SKIPPED", opts, async () => {
      await open();
      const limited = { ...definition("lim"), overlap: "skip" as const, maxActiveRuns: 1 };
      const first = await store.createRun({
        ...baseTrigger,
        runId: ids.next(),
        workflow: limited,
        idempotencyKey: null,
      });
      const second = await store.createRun({
        ...baseTrigger,
        runId: ids.next(),
        workflow: limited,
        idempotencyKey: null,
      });
      assert.deepEqual([first.run.status, second.run.status, second.run.reason], ["QUEUED", "SKIPPED", "overlap_skip"]);
      await store.close();
    });

    it(
      "retention deletes finished runs with their tasks, history, logs and keys; keys also expire on their own",
      opts,
      async () => {
        await open(new ManualClock(Date.UTC(2026, 0, 1)));
        const day = 86_400_000;
        const oldRun = ids.next();
        await store.createRun({ ...baseTrigger, runId: oldRun, workflow: wf, idempotencyKey: "old" });
        await store.cancelRun(oldRun);
        await store.insertLogs([logLine(clock, oldRun, 1)], null);
        await clock.advance(10 * day);
        const activeRun = ids.next();
        await store.createRun({ ...baseTrigger, runId: activeRun, workflow: wf, idempotencyKey: "recent" });
        await store.insertLogs([logLine(clock, activeRun, 1)], null);
        await clock.advance(25 * day);
        const pruned = await store.prune({ runDays: 30, logDays: 30, idempotencyDays: 7 });
        assert.deepEqual(pruned, { runs: 1, logs: 1, idempotencyKeys: 2 });
        assert.equal(await store.getRun(oldRun), null);
        assert.equal((await store.getRun(activeRun))?.run.status, "QUEUED", "active runs are never pruned");
        const counts = await store.counts();
        assert.equal(counts.logs, 1);
        assert.equal(counts.status_history, 1);
        await store.close();
      },
    );

    it("log lines are stored once per (run, task, seq): a resent batch counts duplicates", opts, async () => {
      await open();
      const runId = ids.next();
      const lines = [1, 2, 3].map((seq) => logLine(clock, runId, seq));
      assert.deepEqual(await store.insertLogs([...lines, lines[0] as LogLine], null), {
        stored: 3,
        duplicates: 1,
        inserted: lines,
      });
      const again = await store.insertLogs([lines[1] as LogLine, logLine(clock, runId, 4)], null);
      assert.deepEqual([again.stored, again.duplicates, again.inserted.map((l) => l.seq)], [1, 1, [4]]);
      assert.equal((await store.counts()).logs, 4);
      await store.close();
    });

    it(
      "each run keeps the definition it was triggered with, even for two files with identical text",
      opts,
      async () => {
        await open();
        const a = definition("same");
        const b = { ...a, id: "copy", path: "copy.yml" };
        const v2 = definition("same", "description: v2");
        for (const w of [a, b, v2])
          await store.createRun({ ...baseTrigger, runId: ids.next(), workflow: w, idempotencyKey: null });
        const active = await store.loadActiveRuns();
        assert.deepEqual(
          active.map((x) => [x.run.workflowId, x.workflow.id, x.workflow.description]),
          [
            ["same", "same", null],
            ["copy", "copy", null],
            ["same", "same", "v2"],
          ],
        );
        await store.close();
      },
    );
  });
}

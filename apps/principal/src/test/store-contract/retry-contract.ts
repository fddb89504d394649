/**
 * The store contract of retries ("re-run from the failed tasks"): a retry's run and its tasks
 * taken as done in one transaction, served by every read, refusing task reports, surviving a
 * confirmation, a requeue and a restart. Run against each store like `contract.ts`.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ManualClock, isCdktrError, type TaskRunRecord } from "@cdktr/protocol";
import { UlidGenerator } from "../../ids.js";
import type { ReusedTask, Store } from "../../store/store.js";
import { definition } from "../workflow-fixture.js";
import { baseTrigger } from "./contract.js";
import type { StoreHarness } from "./harness.js";

const wf = definition("wf", "", ["a", "b", "c", "d"]);

/** Register the retry contract tests for the store of `h`. */
export function retryContract(h: StoreHarness): void {
  describe(`Store contract, retries: ${h.name}`, async () => {
    const skip = await h.unavailable();
    const opts = { skip: skip ?? false };
    after(() => h.dispose());

    const reusedA: ReusedTask = {
      taskId: "a",
      reusedFrom: "SOURCE",
      attempt: 2,
      exitCode: 0,
      startedAt: "2026-01-01T00:00:00.000Z",
      finishedAt: "2026-01-01T00:00:05.000Z",
    };
    const reusedD: ReusedTask = { ...reusedA, taskId: "d", reusedFrom: "ORIGINAL", attempt: 1 };
    const byTask = (tasks: readonly TaskRunRecord[]) => Object.fromEntries(tasks.map((t) => [t.taskId, t]));

    /** A retry of `SOURCE` taking a and d as done, assigned to `ag` with token `tok`. */
    const retryRun = async (store: Store, ids: UlidGenerator, clock: ManualClock): Promise<string> => {
      const runId = ids.next();
      const { run } = await store.createRun({
        ...baseTrigger,
        runId,
        workflow: wf,
        idempotencyKey: null,
        params: { day: "mon" },
        retry: { retryOf: "SOURCE", reused: [reusedA, reusedD] },
      });
      assert.equal(run.retryOf, "SOURCE");
      assert.ok(await store.assignRun(runId, "ag", "tok", clock.now() + 60_000, null));
      return runId;
    };

    it(
      "a retry's run and its reused tasks are written together; reads return retryOf and reusedFrom; confirmation keeps them",
      opts,
      async () => {
        const clock = new ManualClock();
        const store = await h.open(clock);
        const ids = new UlidGenerator(clock);
        const plain = ids.next();
        await store.createRun({ ...baseTrigger, runId: plain, workflow: wf, idempotencyKey: null });
        const runId = await retryRun(store, ids, clock);

        const created = await store.getRun(runId);
        assert.equal(created?.run.retryOf, "SOURCE");
        assert.equal(created?.run.status, "ASSIGNED");
        assert.deepEqual(created?.tasks, [
          {
            runId,
            taskId: "a",
            status: "COMPLETED",
            attempt: 2,
            startedAt: reusedA.startedAt,
            finishedAt: reusedA.finishedAt,
            exitCode: 0,
            signal: null,
            reason: null,
            message: null,
            reusedFrom: "SOURCE",
          },
          {
            runId,
            taskId: "d",
            status: "COMPLETED",
            attempt: 1,
            startedAt: reusedD.startedAt,
            finishedAt: reusedD.finishedAt,
            exitCode: 0,
            signal: null,
            reason: null,
            message: null,
            reusedFrom: "ORIGINAL",
          },
        ]);
        const plainRead = await store.getRun(plain);
        assert.equal(plainRead?.run.retryOf, null);
        assert.deepEqual(plainRead?.tasks, []);

        const listed = await store.listRuns({ order: "asc" });
        assert.deepEqual(
          listed.runs.map((r) => [r.runId, r.retryOf]),
          [
            [plain, null],
            [runId, "SOURCE"],
          ],
        );
        const active = await store.loadActiveRuns();
        assert.deepEqual(
          active.map((a) => [a.run.runId, a.reusedTasks]),
          [
            [plain, []],
            [runId, ["a", "d"]],
          ],
        );

        const { tasks } = await store.confirmAssignment(runId, "ag", "tok", ["a", "b", "c", "d"], null);
        const t = byTask(tasks);
        assert.equal(t.a?.status, "COMPLETED");
        assert.equal(t.a?.reusedFrom, "SOURCE");
        assert.equal(t.a?.attempt, 2);
        assert.equal(t.d?.status, "COMPLETED");
        assert.equal(t.b?.status, "PENDING");
        assert.equal(t.b?.reusedFrom, null);
        assert.equal(t.c?.status, "PENDING");
        await store.close();
        // One creation line per reused task, and no PENDING line for them at confirmation.
        const history = await h.rows(
          `SELECT task_id, from_status, to_status FROM status_history WHERE task_id IS NOT NULL AND run_id = '${runId}' ORDER BY task_id, id`,
        );
        assert.deepEqual(history, [
          { task_id: "a", from_status: null, to_status: "COMPLETED" },
          { task_id: "b", from_status: null, to_status: "PENDING" },
          { task_id: "c", from_status: null, to_status: "PENDING" },
          { task_id: "d", from_status: null, to_status: "COMPLETED" },
        ]);
      },
    );

    it("an agent's report about a reused task is refused and changes nothing", opts, async () => {
      const clock = new ManualClock();
      const store = await h.open(clock);
      const ids = new UlidGenerator(clock);
      const runId = await retryRun(store, ids, clock);
      await store.confirmAssignment(runId, "ag", "tok", ["a", "b", "c", "d"], null);
      const time = new Date(clock.now()).toISOString();
      for (const status of ["RUNNING", "FAILED", "COMPLETED"] as const) {
        await assert.rejects(
          store.updateTaskStatus({ agentId: "ag", runId, taskId: "a", attempt: 3, status, time, exitCode: 1 }, null),
          (e: unknown) => isCdktrError(e, "INVALID_TRANSITION") && /taken as done from run SOURCE/.test(e.message),
        );
      }
      // The other tasks take reports as usual.
      const b = await store.updateTaskStatus(
        { agentId: "ag", runId, taskId: "b", attempt: 1, status: "RUNNING", time },
        null,
      );
      assert.equal(b.applied, true);
      const t = byTask((await store.getRun(runId))?.tasks ?? []);
      assert.deepEqual(
        { status: t.a?.status, attempt: t.a?.attempt, exitCode: t.a?.exitCode, reusedFrom: t.a?.reusedFrom },
        { status: "COMPLETED", attempt: 2, exitCode: 0, reusedFrom: "SOURCE" },
      );
      assert.equal(t.b?.status, "RUNNING");
      await store.close();
    });

    it(
      "a crash keeps the reused tasks, and its requeue is a retry of the same source with the same tasks taken as done",
      opts,
      async () => {
        const clock = new ManualClock();
        const store = await h.open(clock);
        const ids = new UlidGenerator(clock);
        const runId = await retryRun(store, ids, clock);
        await store.confirmAssignment(runId, "ag", "tok", ["a", "b", "c", "d"], null);
        const requeueId = ids.next();
        const crash = await store.crashRun(runId, "agent_lost", "gone", requeueId);
        assert.deepEqual(crash?.tasks.map((t) => t.taskId).sort(), ["b", "c"], "only the open tasks crash");
        const crashed = byTask((await store.getRun(runId))?.tasks ?? []);
        assert.equal(crashed.a?.status, "COMPLETED");
        assert.equal(crashed.d?.reusedFrom, "ORIGINAL");
        assert.equal(crash?.requeued?.retryOf, "SOURCE");
        assert.deepEqual(crash?.requeued?.params, { day: "mon" });
        const requeued = await store.getRun(requeueId);
        assert.deepEqual(
          requeued?.tasks.map((t) => [t.taskId, t.status, t.reusedFrom, t.attempt]),
          [
            ["a", "COMPLETED", "SOURCE", 2],
            ["d", "COMPLETED", "ORIGINAL", 1],
          ],
        );
        await store.close();
        // And after a restart, the queue is rebuilt with them.
        const again = await h.reopen(clock);
        const active = await again.loadActiveRuns();
        assert.deepEqual(
          active.map((a) => [a.run.runId, a.run.retryOf, a.reusedTasks]),
          [[requeueId, "SOURCE", ["a", "d"]]],
        );
        await again.close();
      },
    );

    it("a retry created SKIPPED by the overlap policy has no task rows", opts, async () => {
      const clock = new ManualClock();
      const store = await h.open(clock);
      const ids = new UlidGenerator(clock);
      const limited = { ...definition("lim", "", ["a", "b"]), overlap: "skip" as const, maxActiveRuns: 1 };
      await store.createRun({ ...baseTrigger, runId: ids.next(), workflow: limited, idempotencyKey: null });
      const runId = ids.next();
      const { run } = await store.createRun({
        ...baseTrigger,
        runId,
        workflow: limited,
        idempotencyKey: null,
        retry: { retryOf: "SOURCE", reused: [reusedA] },
      });
      assert.equal(run.status, "SKIPPED");
      assert.equal(run.retryOf, "SOURCE");
      assert.deepEqual((await store.getRun(runId))?.tasks, []);
      await store.close();
    });
  });
}

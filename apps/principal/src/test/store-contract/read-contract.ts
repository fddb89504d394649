/**
 * The store contract, paged reads: `listRuns` and `queryLogs` filters, order, default page sizes
 * (documented in docs/protocol.md), byte-bounded log pages, opaque cursors and bound parameters.
 * Run per store by `sqlite.test.ts` and `postgres.test.ts`.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { LOG_LEVELS, ManualClock, isCdktrError, type LogLine } from "@cdktr/protocol";
import { UlidGenerator } from "../../ids.js";
import { DEFAULT_LOG_PAGE, DEFAULT_RUN_PAGE, MAX_LOG_PAGE_BYTES } from "../../store/rows.js";
import type { Store } from "../../store/store.js";
import { definition } from "../workflow-fixture.js";
import { baseTrigger } from "./contract.js";
import type { StoreHarness } from "./harness.js";

interface Row {
  run: string;
  task: string;
  seq: number;
  time: number;
  level: number;
  line: string;
}

const toLine = (r: Row): LogLine => ({
  time: new Date(r.time).toISOString(),
  runId: r.run,
  workflowId: "wf",
  taskId: r.task,
  stream: "stdout",
  level: LOG_LEVELS[r.level] ?? "info",
  seq: r.seq,
  line: r.line,
});

const iso = (ms: number): string => new Date(ms).toISOString();

/** Register the read contract tests for the store of `h`. */
export function readContract(h: StoreHarness): void {
  describe(`Store contract, paged reads: ${h.name}`, async () => {
    const skip = await h.unavailable();
    const opts = { skip: skip ?? false };
    after(() => h.dispose());

    const withLogs = async (rows: Row[]): Promise<Store> => {
      const store = await h.open(new ManualClock());
      await store.insertLogs(rows.map(toLine), null);
      return store;
    };

    it(
      "queryLogs filters by run, task, time range and minimum level; pages both ways without gaps or repeats",
      opts,
      async () => {
        const rows = Array.from({ length: 30 }, (_, i) => ({
          run: i % 2 === 0 ? "r1" : "r2",
          task: `t${i % 3}`,
          seq: i + 1,
          time: 1000 + Math.floor(i / 2),
          level: i % 4,
          line: `l${i}`,
        }));
        const store = await withLogs(rows);
        const r = await store.queryLogs({ runId: "r1", since: iso(1002), until: iso(1010), level: "warn" });
        const expected = rows
          .filter((x) => x.run === "r1" && x.time >= 1002 && x.time < 1010 && x.level >= 2)
          .map((x) => x.line);
        assert.deepEqual(
          r.lines.map((l) => l.line),
          expected,
        );
        for (const order of ["asc", "desc"] as const) {
          const seen: string[] = [];
          let cursor: string | undefined;
          do {
            const page = await store.queryLogs({ order, limit: 7, ...(cursor === undefined ? {} : { cursor }) });
            seen.push(...page.lines.map((l) => l.line));
            cursor = page.nextCursor ?? undefined;
          } while (cursor !== undefined);
          const all = rows.map((x) => x.line);
          assert.deepEqual(seen, order === "asc" ? all : [...all].reverse());
        }
        assert.deepEqual(
          (await store.queryLogs({ taskId: "t1", limit: 1000 })).lines.map((l) => l.taskId),
          Array(10).fill("t1"),
        );
        await store.close();
      },
    );

    it("queryLogs bounds a page in bytes so very long lines still fit in one reply", opts, async () => {
      const long = "x".repeat(1024 * 1024);
      const store = await withLogs(
        Array.from({ length: 6 }, (_, i) => ({ run: "r", task: "t", seq: i + 1, time: i, level: 1, line: long })),
      );
      const first = await store.queryLogs({ runId: "r", limit: 1000 });
      assert.ok(first.lines.length < 6 && first.lines.length >= 1);
      assert.ok(first.lines.length * long.length * 3 <= MAX_LOG_PAGE_BYTES + long.length * 3);
      assert.ok(first.nextCursor !== null);
      let total = first.lines.length;
      let cursor: string | null = first.nextCursor;
      while (cursor !== null) {
        const page = await store.queryLogs({ runId: "r", limit: 1000, cursor });
        total += page.lines.length;
        cursor = page.nextCursor;
      }
      assert.equal(total, 6);
      await store.close();
    });

    it("queryLogs without order or limit: oldest first, 1000 lines a page", opts, async () => {
      assert.equal(DEFAULT_LOG_PAGE, 1000);
      // Inserted newest first, so storage order alone would give the wrong answer.
      const store = await withLogs(
        Array.from({ length: 1005 }, (_, i) => ({
          run: "r",
          task: "t",
          seq: 1005 - i,
          time: 5000 - i,
          level: 1,
          line: `l${1005 - i}`,
        })),
      );
      const page = await store.queryLogs({});
      assert.equal(page.lines.length, 1000);
      assert.equal(page.lines[0]?.line, "l1");
      assert.equal(page.lines[999]?.line, "l1000");
      assert.ok(page.nextCursor !== null);
      const rest = await store.queryLogs({ cursor: page.nextCursor });
      assert.deepEqual(
        rest.lines.map((l) => l.line),
        ["l1001", "l1002", "l1003", "l1004", "l1005"],
      );
      assert.equal(rest.nextCursor, null);
      await store.close();
    });

    it(
      "listRuns without order or limit: newest first, 100 runs a page; filters and cursors page without gaps",
      opts,
      async () => {
        assert.equal(DEFAULT_RUN_PAGE, 100);
        const clock = new ManualClock();
        const store = await h.open(clock);
        const ids = new UlidGenerator(clock);
        const wf = definition("wf");
        const created: string[] = [];
        for (let i = 0; i < 105; i++) {
          const runId = ids.next();
          created.push(runId);
          await store.createRun({
            ...baseTrigger,
            runId,
            workflow: wf,
            idempotencyKey: null,
            source: i % 2 === 0 ? "even" : "odd",
          });
        }
        const page = await store.listRuns({});
        assert.deepEqual(
          page.runs.map((r) => r.runId),
          [...created].reverse().slice(0, 100),
        );
        assert.ok(page.nextCursor !== null);
        const rest = await store.listRuns({ cursor: page.nextCursor });
        assert.deepEqual(
          rest.runs.map((r) => r.runId),
          created.slice(0, 5).reverse(),
        );
        assert.equal(rest.nextCursor, null);
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const p = await store.listRuns({
            source: "odd",
            order: "asc",
            limit: 10,
            ...(cursor === undefined ? {} : { cursor }),
          });
          seen.push(...p.runs.map((r) => r.runId));
          cursor = p.nextCursor ?? undefined;
        } while (cursor !== undefined);
        assert.deepEqual(
          seen,
          created.filter((_, i) => i % 2 === 1),
        );
        assert.equal((await store.listRuns({ status: ["QUEUED"], limit: 1000 })).runs.length, 105);
        assert.equal((await store.listRuns({ status: ["RUNNING"] })).runs.length, 0);
        await assert.rejects(store.listRuns({ cursor: "garbage!" }), (e: unknown) => isCdktrError(e, "BAD_REQUEST"));
        await assert.rejects(store.queryLogs({ cursor: "WyJ4Il0" }), (e: unknown) => isCdktrError(e, "BAD_REQUEST"));
        await store.close();
      },
    );

    it(
      "listRuns finishedSince: finished runs only, ordered by finishedAt, paged without gaps; upstream is stored",
      opts,
      async () => {
        const clock = new ManualClock();
        const store = await h.open(clock);
        const ids = new UlidGenerator(clock);
        const wf = definition("wf");
        const runIds: string[] = [];
        for (let i = 0; i < 12; i++) {
          const runId = ids.next();
          runIds.push(runId);
          await store.createRun({ ...baseTrigger, runId, workflow: wf, idempotencyKey: null });
        }
        // Finish them in another order than created, at distinct and equal instants.
        const order = [5, 2, 9, 0, 11, 7, 3, 1, 10, 4, 8];
        const finishedAt = new Map<string, number>();
        for (const [k, i] of order.entries()) {
          if (k % 3 !== 2) await clock.advance(10);
          const runId = runIds[i] as string;
          const { run } = await store.cancelRun(runId);
          finishedAt.set(runId, Date.parse(run.finishedAt ?? "invalid"));
        }
        const since = finishedAt.get(runIds[0] as string) as number;
        const expected = [...finishedAt.entries()]
          .filter(([, t]) => t >= since)
          .sort(([a, ta], [b, tb]) => ta - tb || (a < b ? -1 : 1))
          .map(([id]) => id);
        for (const direction of ["asc", "desc"] as const) {
          const seen: string[] = [];
          let cursor: string | undefined;
          do {
            const page = await store.listRuns({
              finishedSince: iso(since),
              order: direction,
              limit: 2,
              ...(cursor === undefined ? {} : { cursor }),
            });
            seen.push(...page.runs.map((r) => r.runId));
            cursor = page.nextCursor ?? undefined;
          } while (cursor !== undefined);
          assert.deepEqual(seen, direction === "asc" ? expected : [...expected].reverse(), direction);
        }
        assert.ok(!expected.includes(runIds[6] as string), "a run that has not finished is not listed");

        const upstream = { runId: runIds[0] as string, workflowId: "wf", status: "CANCELLED" as const };
        const chained = ids.next();
        const created = await store.createRun({
          ...baseTrigger,
          runId: chained,
          workflow: wf,
          idempotencyKey: null,
          upstream,
        });
        assert.deepEqual(created.run.upstream, upstream);
        assert.deepEqual((await store.getRun(chained))?.run.upstream, upstream);
        assert.equal((await store.getRun(runIds[0] as string))?.run.upstream, null);
        await store.close();
      },
    );

    it(
      "filters are bound parameters: quotes and SQL in filter values match literally and change nothing",
      opts,
      async () => {
        const evil = "r' OR '1'='1";
        const store = await withLogs([
          { run: "r", task: "t", seq: 1, time: 1, level: 1, line: "plain" },
          { run: evil, task: "t'; DROP TABLE logs; --", seq: 1, time: 2, level: 1, line: "quoted" },
        ]);
        assert.deepEqual(
          (await store.queryLogs({ runId: evil })).lines.map((l) => l.line),
          ["quoted"],
        );
        assert.deepEqual(
          (await store.queryLogs({ taskId: "t'; DROP TABLE logs; --" })).lines.map((l) => l.line),
          ["quoted"],
        );
        assert.deepEqual((await store.queryLogs({ workflowId: "wf' --" })).lines, []);
        assert.deepEqual((await store.listRuns({ workflowId: "x'; DROP TABLE runs; --", source: "'" })).runs, []);
        assert.equal((await store.counts()).logs, 2);
        await store.close();
      },
    );
  });
}

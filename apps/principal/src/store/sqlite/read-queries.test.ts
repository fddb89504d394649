import { describe, it } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { migrate } from "./migrations.js";
import { listRuns, queryLogs, DEFAULT_LOG_PAGE, DEFAULT_RUN_PAGE, MAX_LOG_PAGE_BYTES } from "./read-queries.js";

function db(): Database.Database {
  const d = new Database(":memory:");
  migrate(d);
  return d;
}

function insert(
  d: Database.Database,
  rows: { run: string; task: string; seq: number; time: number; level: number; line: string }[],
): void {
  const st = d.prepare(
    "INSERT INTO logs (run_id, workflow_id, task_id, seq, time, level, stream, line) VALUES (?, 'wf', ?, ?, ?, ?, 'stdout', ?)",
  );
  for (const r of rows) st.run(r.run, r.task, r.seq, r.time, r.level, r.line);
}

describe("queryLogs", () => {
  it("filters by run, task, time range and minimum level; pages both ways without gaps or repeats", () => {
    const d = db();
    const rows = Array.from({ length: 30 }, (_, i) => ({
      run: i % 2 === 0 ? "r1" : "r2",
      task: `t${i % 3}`,
      seq: i + 1,
      time: 1000 + Math.floor(i / 2),
      level: i % 4,
      line: `l${i}`,
    }));
    insert(d, rows);
    const iso = (ms: number): string => new Date(ms).toISOString();
    const r = queryLogs(d, { runId: "r1", since: iso(1002), until: iso(1010), level: "warn" });
    const expected = rows
      .filter((x) => x.run === "r1" && x.time >= 1002 && x.time < 1010 && x.level >= 2)
      .map((x) => x.line);
    assert.deepEqual(
      r.lines.map((l) => l.line),
      expected,
    );
    assert.ok(r.lines.every((l) => l.level === "warn" || l.level === "error"));
    for (const order of ["asc", "desc"] as const) {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = queryLogs(d, { order, limit: 7, ...(cursor === undefined ? {} : { cursor }) });
        seen.push(...page.lines.map((l) => l.line));
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
      const all = rows.map((x) => x.line);
      assert.deepEqual(seen, order === "asc" ? all : [...all].reverse());
    }
    assert.deepEqual(
      queryLogs(d, { taskId: "t1", limit: 1000 }).lines.map((l) => l.taskId),
      Array(10).fill("t1"),
    );
  });

  it("bounds a page in bytes so very long lines still fit in one reply", () => {
    const d = db();
    const long = "x".repeat(1024 * 1024);
    insert(
      d,
      Array.from({ length: 6 }, (_, i) => ({ run: "r", task: "t", seq: i + 1, time: i, level: 1, line: long })),
    );
    const first = queryLogs(d, { runId: "r", limit: 1000 });
    assert.ok(first.lines.length < 6 && first.lines.length >= 1);
    assert.ok(first.lines.length * long.length * 3 <= MAX_LOG_PAGE_BYTES + long.length * 3);
    assert.ok(first.nextCursor !== null);
    const rest = queryLogs(d, { runId: "r", limit: 1000, cursor: first.nextCursor });
    assert.equal(
      first.lines.length +
        rest.lines.length +
        (rest.nextCursor === null ? 0 : queryLogs(d, { runId: "r", cursor: rest.nextCursor }).lines.length),
      6,
    );
  });
});

describe("query defaults (documented in docs/protocol.md)", () => {
  it("queryLogs without order or limit: oldest first, 1000 lines a page", () => {
    const d = db();
    assert.equal(DEFAULT_LOG_PAGE, 1000);
    // Inserted newest first, so storage order alone would give the wrong answer.
    insert(
      d,
      Array.from({ length: 1005 }, (_, i) => ({
        run: "r",
        task: "t",
        seq: 1005 - i,
        time: 5000 - i,
        level: 1,
        line: `l${1005 - i}`,
      })),
    );
    const page = queryLogs(d, {});
    assert.equal(page.lines.length, 1000);
    assert.equal(page.lines[0]?.line, "l1");
    assert.equal(page.lines[999]?.line, "l1000");
    assert.ok(page.nextCursor !== null);
    const rest = queryLogs(d, { cursor: page.nextCursor });
    assert.deepEqual(
      rest.lines.map((l) => l.line),
      ["l1001", "l1002", "l1003", "l1004", "l1005"],
    );
    assert.equal(rest.nextCursor, null);
  });

  it("listRuns without order or limit: newest first, 100 runs a page", () => {
    const d = db();
    assert.equal(DEFAULT_RUN_PAGE, 100);
    d.prepare(
      "INSERT INTO workflow_snapshots (hash, workflow_id, definition, created_at) VALUES ('h', 'wf', '{}', 0)",
    ).run();
    const st = d.prepare(
      "INSERT INTO runs (run_id, workflow_id, workflow_hash, status, source, params, created_at, updated_at) VALUES (?, 'wf', 'h', 'QUEUED', 'test', '{}', ?, ?)",
    );
    const ids = Array.from({ length: 105 }, (_, i) => `run-${String(i).padStart(4, "0")}`);
    for (const [i, id] of ids.entries()) st.run(id, 1000 + i, 1000 + i);
    const page = listRuns(d, {});
    assert.equal(page.runs.length, 100);
    assert.deepEqual(
      page.runs.map((r) => r.runId),
      [...ids].reverse().slice(0, 100),
    );
    assert.ok(page.nextCursor !== null);
    const rest = listRuns(d, { cursor: page.nextCursor });
    assert.deepEqual(
      rest.runs.map((r) => r.runId),
      ids.slice(0, 5).reverse(),
    );
    assert.equal(rest.nextCursor, null);
  });
});

describe("filters are bound parameters (the original interpolated SQL: a `'` crashed it)", () => {
  it("quotes and SQL in filter values match literally and change nothing", () => {
    const d = db();
    const evil = "r' OR '1'='1";
    insert(d, [
      { run: "r", task: "t", seq: 1, time: 1, level: 1, line: "plain" },
      { run: evil, task: "t'; DROP TABLE logs; --", seq: 1, time: 2, level: 1, line: "quoted" },
    ]);
    assert.deepEqual(
      queryLogs(d, { runId: evil }).lines.map((l) => l.line),
      ["quoted"],
    );
    assert.deepEqual(
      queryLogs(d, { taskId: "t'; DROP TABLE logs; --" }).lines.map((l) => l.line),
      ["quoted"],
    );
    assert.deepEqual(queryLogs(d, { workflowId: "wf' --" }).lines, []);
    assert.deepEqual(listRuns(d, { workflowId: "x'; DROP TABLE runs; --", source: "'" }).runs, []);
    assert.equal((d.prepare("SELECT count(*) AS n FROM logs").get() as { n: number }).n, 2);
  });
});

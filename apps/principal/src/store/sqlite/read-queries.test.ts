import { describe, it } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { migrate } from "./migrations.js";
import { queryLogs, MAX_LOG_PAGE_BYTES } from "./read-queries.js";

function db(): Database.Database {
  const d = new Database(":memory:");
  migrate(d);
  return d;
}

function insert(d: Database.Database, rows: { run: string; task: string; seq: number; time: number; level: number; line: string }[]): void {
  const st = d.prepare("INSERT INTO logs (run_id, workflow_id, task_id, seq, time, level, stream, line) VALUES (?, 'wf', ?, ?, ?, ?, 'stdout', ?)");
  for (const r of rows) st.run(r.run, r.task, r.seq, r.time, r.level, r.line);
}

describe("queryLogs", () => {
  it("filters by run, task, time range and minimum level; pages both ways without gaps or repeats", () => {
    const d = db();
    const rows = Array.from({ length: 30 }, (_, i) => ({ run: i % 2 === 0 ? "r1" : "r2", task: `t${i % 3}`, seq: i + 1, time: 1000 + Math.floor(i / 2), level: i % 4, line: `l${i}` }));
    insert(d, rows);
    const iso = (ms: number): string => new Date(ms).toISOString();
    const r = queryLogs(d, { runId: "r1", since: iso(1002), until: iso(1010), level: "warn" });
    const expected = rows.filter((x) => x.run === "r1" && x.time >= 1002 && x.time < 1010 && x.level >= 2).map((x) => x.line);
    assert.deepEqual(r.lines.map((l) => l.line), expected);
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
    assert.deepEqual(queryLogs(d, { taskId: "t1", limit: 1000 }).lines.map((l) => l.taskId), Array(10).fill("t1"));
  });

  it("bounds a page in bytes so very long lines still fit in one reply", () => {
    const d = db();
    const long = "x".repeat(1024 * 1024);
    insert(d, Array.from({ length: 6 }, (_, i) => ({ run: "r", task: "t", seq: i + 1, time: i, level: 1, line: long })));
    const first = queryLogs(d, { runId: "r", limit: 1000 });
    assert.ok(first.lines.length < 6 && first.lines.length >= 1);
    assert.ok(first.lines.length * long.length * 3 <= MAX_LOG_PAGE_BYTES + long.length * 3);
    assert.ok(first.nextCursor !== null);
    const rest = queryLogs(d, { runId: "r", limit: 1000, cursor: first.nextCursor });
    assert.equal(first.lines.length + rest.lines.length + (rest.nextCursor === null ? 0 : queryLogs(d, { runId: "r", cursor: rest.nextCursor }).lines.length), 6);
  });
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { percentile, summarize } from "./stats.js";
import { row } from "./result.js";
import { fmt, renderTable } from "./table.js";
import { moduleOf } from "../profile-summary.js";

test("percentile uses the nearest rank", () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(sorted, 50), 50);
  assert.equal(percentile(sorted, 99), 99);
  assert.equal(percentile(sorted, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test("summarize does not depend on sample order", () => {
  const s = summarize([5, 1, 4, 2, 3]);
  assert.deepEqual({ n: s.n, p50: s.p50, max: s.max, mean: s.mean }, { n: 5, p50: 3, max: 5, mean: 3 });
});

test("a row's ratio is ours / baseline, and absent without a baseline", () => {
  assert.equal(row({ scenario: "x", metric: "m", unit: "/s", ours: 60, baseline: 100, better: "higher" }).ratio, 0.6);
  assert.equal(row({ scenario: "x", metric: "m", unit: "/s", ours: 60, better: "higher" }).ratio, null);
  assert.equal(row({ scenario: "x", metric: "m", unit: "/s", ours: 60, baseline: 0, better: "higher" }).ratio, null);
});

test("the table marks missed targets and unmeasured figures", () => {
  const t = renderTable([
    row({
      scenario: "1",
      metric: "m",
      unit: "/s",
      ours: 1234.5,
      baseline: 2000,
      better: "higher",
      target: "ratio >= 0.60",
      pass: true,
    }),
    row({ scenario: "2", metric: "p", unit: "ms", ours: 9, baseline: 3, better: "lower", target: "<= 5", pass: false }),
  ]);
  assert.match(t, /\| 1,235 +\| 2,000 +\| 0\.62x/);
  assert.match(t, /\*\*NO\*\*/);
  assert.equal(fmt(null), "n/a");
  assert.equal(fmt(0.123), "0.12");
});

test("profile modules group by package and workspace file", () => {
  assert.equal(moduleOf("file:///w/node_modules/better-sqlite3/lib/methods/wrappers.js"), "better-sqlite3");
  assert.equal(moduleOf("file:///w/node_modules/@scope/pkg/x.js"), "@scope/pkg");
  assert.equal(
    moduleOf("file:///w/apps/principal/dist/store/sqlite/sqlite-store.js"),
    "apps/principal/store/sqlite/sqlite-store.js",
  );
  assert.equal(moduleOf("node:internal/streams/writable"), "node internals");
  assert.equal(moduleOf(""), "(native / V8)");
});

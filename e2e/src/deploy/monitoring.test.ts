/**
 * The monitoring files in deploy/: the Prometheus alert rules (checked and unit-tested by
 * promtool), the example Prometheus configuration, and the Grafana dashboard (valid JSON whose
 * every query is valid PromQL, checked by promtool too). Every cdktr metric they name is one the
 * processes serve (the metric tables of docs/operations.md, whose names the metrics tests scrape).
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTempDir } from "@cdktr/test-utils";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const PROMETHEUS = join(REPO, "deploy", "prometheus");
const DASHBOARD = join(REPO, "deploy", "grafana", "cdktr-dashboard.json");

/** Whether promtool can run; skips (or fails, under CI) when it cannot. */
function havePromtool(t: TestContext): boolean {
  const r = spawnSync("promtool", ["--version"], { encoding: "utf8" });
  if (r.status === 0) return true;
  const why = "promtool not found: install Debian's `prometheus` package (.ci/run does)";
  if (process.env.CI !== undefined && process.env.CI !== "") assert.fail(`${why} (CI is set: not skipping)`);
  t.skip(why);
  return false;
}

/** Run promtool; fails the test with its output when it fails. */
function promtool(args: string[], cwd: string): string {
  const r = spawnSync("promtool", args, { cwd, encoding: "utf8" });
  assert.equal(r.status, 0, `promtool ${args.join(" ")}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
}

function dashboardQueries(): { title: string; expr: string }[] {
  const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { uid?: string; panels?: Panel[] };
  assert.equal(dash.uid, "cdktr-overview");
  const out: { title: string; expr: string }[] = [];
  for (const p of dash.panels ?? []) {
    assert.ok(typeof p.title === "string" && p.title !== "", "every panel has a title");
    assert.ok((p.targets ?? []).length > 0, `panel ${p.title} has queries`);
    for (const t of p.targets ?? []) {
      assert.ok(typeof t.expr === "string" && t.expr !== "", `panel ${p.title}: every query has an expression`);
      out.push({ title: p.title, expr: t.expr });
    }
  }
  return out;
}

/** The cdktr metric names in `text` (histogram series reduced to their metric). */
function metricNames(text: string): Set<string> {
  return new Set([...text.matchAll(/\bcdktr_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, "")));
}

test("alert rules: promtool checks them and their unit tests pass; the example config loads them", (t) => {
  if (!havePromtool(t)) return;
  assert.match(promtool(["check", "rules", "alerts.yml"], PROMETHEUS), /SUCCESS: 7 rules found/);
  promtool(["test", "rules", "alerts.test.yml"], PROMETHEUS);
  promtool(["check", "config", "prometheus.yml"], PROMETHEUS);
});

test("dashboard: valid JSON, every panel has queries, and every query is valid PromQL", (t) => {
  const queries = dashboardQueries();
  assert.ok(queries.length >= 20, `${queries.length} queries`);
  if (!havePromtool(t)) return;
  // Each query as a recording rule: promtool parses them all (the dashboard's variable made concrete).
  const dir = makeTempDir("cdktr-dashboard-");
  const rules = queries
    .map(
      (q, i) =>
        `      - record: cdktr:dashboard_query_${i}\n        expr: ${JSON.stringify(q.expr.replaceAll("$workflow", ".*"))}`,
    )
    .join("\n");
  writeFileSync(join(dir, "queries.yml"), `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
  assert.match(promtool(["check", "rules", "queries.yml"], dir), new RegExp(`SUCCESS: ${queries.length} rules found`));
});

test("every cdktr metric the alerts and the dashboard use is one the processes serve (docs/operations.md)", () => {
  const operations = readFileSync(join(REPO, "docs", "operations.md"), "utf8");
  const documented = metricNames(operations.slice(operations.indexOf("## Metrics and health")));
  documented.add("cdktr_ready");
  const used = new Set([
    ...metricNames(readFileSync(join(PROMETHEUS, "alerts.yml"), "utf8")),
    ...metricNames(
      dashboardQueries()
        .map((q) => q.expr)
        .join("\n"),
    ),
  ]);
  const unknown = [...used].filter((m) => !documented.has(m));
  assert.deepEqual(unknown, [], "metrics used but not served");
  assert.ok(used.size >= 15, `${used.size} metrics used`);
});

test("promtool is the one .ci/run installs", () => {
  assert.match(readFileSync(join(REPO, ".ci", "run"), "utf8"), /command -v promtool .*need_apt\+=\(prometheus\)/);
});

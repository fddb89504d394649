#!/usr/bin/env node
// Runs every compiled test of every workspace in ONE node:test invocation, so the output ends
// with node's own summary (`# pass N` / `# fail N`). Files run one at a time: many suites start
// real processes, and the machine has two cores.
import { readdirSync, existsSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { spawn } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const groups = ["packages", "apps"];
const files = [];

function walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) walk(p);
    else if (entry.name.endsWith(".test.js")) files.push(p);
  }
}
for (const g of groups) {
  const gd = join(root, g);
  if (!existsSync(gd)) continue;
  for (const ws of readdirSync(gd)) {
    const dist = join(gd, ws, "dist");
    if (existsSync(dist) && statSync(dist).isDirectory()) walk(dist);
  }
}
for (const extra of ["bench/dist", "e2e/dist"]) {
  const d = join(root, extra);
  if (existsSync(d)) walk(d);
}
// Optional filter: `npm test -- principal` runs only files whose path contains "principal".
const filters = process.argv.slice(2);
const selected = files.filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (selected.length === 0) {
  console.error("no test files found: run `npm run build` first");
  process.exit(1);
}
console.error(`running ${selected.length} test files:\n  ${selected.map((f) => relative(root, f)).join("\n  ")}`);
const child = spawn(
  process.execPath,
  ["--test", "--test-concurrency=1", "--test-timeout=180000", "--test-reporter=tap", ...selected],
  { stdio: "inherit", env: { ...process.env, CDKTR_TEST: "1" } },
);
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
for (const s of ["SIGINT", "SIGTERM"]) process.on(s, () => child.kill(s));

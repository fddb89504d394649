#!/usr/bin/env node
// The one place that runs compiled tests, with one set of node:test flags (tap reporter, two
// files at a time (CDKTR_TEST_CONCURRENCY, 1 to debug one at a time), 300 s per test file and per
// test: many suites start real processes, the machine has two cores, and the release test
// compiles better-sqlite3 from source in its npm install; each file's process exits when its tests
// are done, see --test-force-exit below). Two at a time: most files wait on processes, sockets and
// timers, so on two cores the whole suite takes ~560 s instead of ~870 s one at a time (two full
// runs at two at a time here, 2026-12-01, all passing).
//
//   node scripts/test.mjs                 every workspace (packages, apps, bench, soak, e2e) in ONE
//                                         node:test run, ending with node's own `# pass N` /
//                                         `# fail N` summary (what `npm test` runs)
//   node scripts/test.mjs --dir <ws>      one workspace (its `npm test`, and `turbo run test`)
//   node scripts/test.mjs principal       only files whose path contains "principal"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { spawn } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const dirAt = args.indexOf("--dir");
const only = dirAt === -1 ? undefined : args[dirAt + 1];
if (dirAt !== -1 && only === undefined) {
  console.error("--dir needs a workspace directory, e.g. `node scripts/test.mjs --dir packages/workflow`");
  process.exit(2);
}
const filters = args.filter((_, i) => dirAt === -1 || (i !== dirAt && i !== dirAt + 1));

/** Workspace directories, from the root package.json's `workspaces` globs (`dir/*` or `dir`). */
function workspaces() {
  const globs = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).workspaces ?? [];
  const out = [];
  for (const g of globs) {
    if (!g.endsWith("/*")) {
      out.push(join(root, g));
      continue;
    }
    const parent = join(root, g.slice(0, -2));
    if (!existsSync(parent)) continue;
    for (const e of readdirSync(parent, { withFileTypes: true })) if (e.isDirectory()) out.push(join(parent, e.name));
  }
  return out;
}

/** Compiled tests of one workspace (`dist/**\/*.test.js`; builds start from an empty dist/). */
function testsOf(ws) {
  const dist = join(ws, "dist");
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith(".test.js")) found.push(p);
    }
  };
  if (existsSync(dist) && statSync(dist).isDirectory()) walk(dist);
  return found;
}

const dirs = only === undefined ? workspaces() : [resolve(only)];
const files = dirs.flatMap(testsOf);
const selected = files.filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (selected.length === 0) {
  // A built workspace without tests (test-base, test-utils) passes; nothing built is an error.
  const built = dirs.some((d) => existsSync(join(d, "dist")));
  if (only !== undefined && built && filters.length === 0) {
    console.error(`no tests in ${relative(root, dirs[0]) || "."}`);
    process.exit(0);
  }
  const why = files.length > 0 ? `none matches ${filters.join(", ")}` : "build first (`npm run build`)";
  console.error(`no test files found in ${only ?? "any workspace"}: ${why}`);
  process.exit(1);
}
console.error(`running ${selected.length} test files:\n  ${selected.map((f) => relative(root, f)).join("\n  ")}`);
// No test may use the developer's real keys (~/.cdktr/keys) by accident: the runner's own keys
// directory does not exist, and no key file is named. Tests take keys from the fixture.
const env = { ...process.env, CDKTR_TEST: "1", CDKTR_KEYS_DIR: join(tmpdir(), `cdktr-test-no-keys-${process.pid}`) };
delete env.CDKTR_KEY_FILE;
delete env.CDKTR_AUTH;
// --test-force-exit: each test file's process exits once its tests are done, instead of waiting
// for its event loop to drain. Seen once on Node 26.12.1 (CI, 2026-12-01): after every test of
// e2e/src/postgres/principal-postgres.test.ts had passed, its process spun at 100% CPU forever in
// node::Environment::CleanupHandles (uv_run at exit, a libuv request that never completed; zeromq's
// threads and io_uring fds still open), and the whole run hung. A test that leaks a handle still
// shows in its own cleanup checks; a hang at exit no longer stops the suite.
const concurrency = Number(process.env.CDKTR_TEST_CONCURRENCY ?? "2");
const child = spawn(
  process.execPath,
  [
    "--test",
    `--test-concurrency=${concurrency}`,
    "--test-timeout=300000",
    "--test-force-exit",
    "--test-reporter=tap",
    ...selected,
  ],
  { stdio: "inherit", env },
);
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
for (const s of ["SIGINT", "SIGTERM"]) process.on(s, () => child.kill(s));

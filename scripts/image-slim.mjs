#!/usr/bin/env node
// Trims the Docker image's /app to what the apps need at run time (Dockerfile, build stage).
//
//   node scripts/image-slim.mjs workspaces   # before `npm prune --omit=dev`
//   node scripts/image-slim.mjs native       # after it
//
// It refuses to run unless CDKTR_IMAGE_BUILD=1 (the Dockerfile's build stage sets it).
//
// `workspaces`: keeps only the published workspaces (those without `"private": true`: the apps and
// the libraries they import) in package.json's `workspaces` and deletes the private ones (bench,
// soak, e2e, test fixtures), so the prune that follows drops their dependencies (bullmq, ioredis,
// pg-boss, amqplib's test peers...) with them.
// `native`: keeps only this platform's native binaries: zeromq ships prebuilt addons for every
// platform, better-sqlite3 keeps SQLite's sources and the compiler's objects next to its addon.
// Prints what it removed and how much; exits non-zero if an expected file is missing, so a change
// in either package's layout fails the image build instead of shipping a broken image.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = process.cwd();

function sizeOf(path) {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of readdirSync(path)) total += sizeOf(join(path, name));
  return total;
}

let removedBytes = 0;
function remove(path) {
  const full = join(root, path);
  if (!existsSync(full)) return;
  removedBytes += sizeOf(full);
  rmSync(full, { recursive: true, force: true });
  console.log(`image-slim: removed ${path}`);
}

function fail(message) {
  console.error(`image-slim: ${message}`);
  process.exit(1);
}

/** Expand the root package's workspace globs of the form `dir/*` or `dir`. */
function workspaceDirs(patterns) {
  const dirs = [];
  for (const pattern of patterns) {
    if (pattern.endsWith("/*")) {
      const parent = pattern.slice(0, -2);
      for (const name of readdirSync(join(root, parent)).sort()) {
        if (existsSync(join(root, parent, name, "package.json"))) dirs.push(`${parent}/${name}`);
      }
    } else if (existsSync(join(root, pattern, "package.json"))) {
      dirs.push(pattern);
    }
  }
  return dirs;
}

function slimWorkspaces() {
  const pkgPath = join(root, "package.json");
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
  const keep = [];
  for (const dir of workspaceDirs(pkg.workspaces ?? [])) {
    const ws = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));
    if (ws.private === true) remove(dir);
    else keep.push(dir);
  }
  if (keep.length === 0) fail("no published workspace found");
  pkg.workspaces = keep;
  writeFileSync(pkgPath, `${JSON.stringify(pkg, null, 2)}\n`);
  console.log(`image-slim: workspaces kept: ${keep.join(", ")}`);
}

/** The zeromq addon this Node loads (read from the process's memory maps), relative to `root`. */
function loadedZeromqAddon() {
  const script =
    'require("zeromq"); const m = require("fs").readFileSync("/proc/self/maps", "utf8");' +
    'const hit = m.split("\\n").find((l) => l.includes("/node_modules/zeromq/build/") && l.endsWith(".node"));' +
    'process.stdout.write(hit ? hit.slice(hit.indexOf("/")) : "")';
  const path = execFileSync(process.execPath, ["-e", script], { cwd: root, encoding: "utf8" }).trim();
  if (path === "") fail("zeromq loaded no addon from node_modules/zeromq/build (its layout changed?)");
  return path.slice(path.indexOf("node_modules/zeromq/build/"));
}

/** Load both native modules in a fresh process: the trimmed image must still work. */
function checkNativeModulesLoad() {
  const script = 'require("zeromq"); new (require("better-sqlite3"))(":memory:").prepare("select 1").get();';
  try {
    execFileSync(process.execPath, ["-e", script], { cwd: root, stdio: "pipe" });
  } catch (e) {
    fail(`the native modules no longer load after trimming: ${String(e.stderr ?? e)}`);
  }
}

function slimNative() {
  // zeromq: build/<platform>/<arch>/node/<variant>/addon.node, chosen by its loader among several
  // (libc and ABI variants of every platform): keep the one this Node loads, and manifest.json.
  const addon = loadedZeromqAddon();
  const [, , , platform, arch, , variant] = addon.split("/");
  const zmqBuild = "node_modules/zeromq/build";
  for (const p of readdirSync(join(root, zmqBuild))) {
    if (!statSync(join(root, zmqBuild, p)).isDirectory()) continue;
    if (p !== platform) {
      remove(`${zmqBuild}/${p}`);
      continue;
    }
    for (const a of readdirSync(join(root, zmqBuild, p))) if (a !== arch) remove(`${zmqBuild}/${p}/${a}`);
    for (const v of readdirSync(join(root, zmqBuild, p, arch, "node"))) {
      if (v !== variant) remove(`${zmqBuild}/${p}/${arch}/node/${v}`);
    }
  }
  for (const p of ["src", "script", "CMakeLists.txt", "vcpkg.json"]) remove(`node_modules/zeromq/${p}`);

  // better-sqlite3: `bindings` finds build/Release/better_sqlite3.node; nothing else is read.
  const sqlite = "node_modules/better-sqlite3";
  const sqliteAddon = `${sqlite}/build/Release/better_sqlite3.node`;
  if (!existsSync(join(root, sqliteAddon))) fail(`no ${sqliteAddon}`);
  for (const p of ["deps", "src", "binding.gyp"]) remove(`${sqlite}/${p}`);
  for (const p of readdirSync(join(root, sqlite, "build"))) if (p !== "Release") remove(`${sqlite}/build/${p}`);
  for (const p of readdirSync(join(root, sqlite, "build/Release"))) {
    if (p !== "better_sqlite3.node") remove(`${sqlite}/build/Release/${p}`);
  }

  // Scope directories `npm prune` emptied (@biomejs, @typescript...).
  for (const name of readdirSync(join(root, "node_modules"))) {
    const dir = join(root, "node_modules", name);
    if (name.startsWith("@") && readdirSync(dir).length === 0) rmSync(dir, { recursive: true });
  }
  checkNativeModulesLoad();
  console.log(`image-slim: zeromq addon kept: ${addon}`);
}

// It deletes workspaces and files: only where the Dockerfile asks for it, never in a checkout.
if (process.env.CDKTR_IMAGE_BUILD !== "1") {
  fail(
    "this deletes workspaces and native build files: it runs in the Dockerfile's build stage only (CDKTR_IMAGE_BUILD=1)",
  );
}
const step = process.argv[2];
if (step === "workspaces") slimWorkspaces();
else if (step === "native") slimNative();
else fail(`usage: node scripts/image-slim.mjs workspaces|native (got '${step ?? ""}')`);
console.log(`image-slim: ${step}: ${(removedBytes / 1048576).toFixed(1)} MiB removed`);

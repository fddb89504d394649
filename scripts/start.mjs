#!/usr/bin/env node
// `npm start`: from a fresh clone after `npm install`, build what is needed (the CLI and the apps
// it depends on, the dashboard's browser app included) and run principal, agent, scheduler and
// dashboard locally (`cdktr start all`, which prints the dashboard's URL) on the example
// workflows, with the embedded SQLite store in ~/.cdktr/. Your environment and ./.env win over
// these defaults.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
process.chdir(root);

// 1. Build. turbo caches: when nothing changed this takes a moment.
process.stderr.write("[start] building (npx turbo run build; cached when nothing changed)...\n");
const build = spawnSync("npx", ["turbo", "run", "build", "--filter=@cdktr/cli...", "--output-logs=errors-only"], {
  stdio: ["ignore", "inherit", "inherit"],
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1" },
});
if (build.status !== 0) {
  process.stderr.write("[start] build failed: fix the errors above (or run `npm install` first)\n");
  process.exit(build.status ?? 1);
}

// 2. Defaults that `.env` or the environment may override.
function dotEnvSets(name) {
  const file = join(root, ".env");
  if (!existsSync(file)) return false;
  return new RegExp(`^\\s*(export\\s+)?${name}\\s*=`, "m").test(readFileSync(file, "utf8"));
}
if (process.env.CDKTR_WORKFLOW_DIR === undefined && !dotEnvSets("CDKTR_WORKFLOW_DIR")) {
  process.env.CDKTR_WORKFLOW_DIR = join(root, "examples", "workflows");
}
// CDKTR_DB_PATH defaults to ~/.cdktr/cdktr.db in the principal itself.

// 3. Run `cdktr start all` in this process, so Ctrl-C reaches it once and it stops the apps.
process.argv = [process.argv[0] ?? "node", join(root, "apps/cli/bin/cdktr.js"), "start", "all"];
await import(pathToFileURL(join(root, "apps/cli/dist/main.js")).href);

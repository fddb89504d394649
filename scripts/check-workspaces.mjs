#!/usr/bin/env node
// Layering and manifest rules that no linter checks (run by `npm run lint`):
// - a package (packages/*) never depends on an app (apps/*): apps build on packages, not back;
// - internal dependencies are pinned to the exact version of the workspace they name (npm has no
//   `workspace:*`, and a range in a packed package would pull whatever the registry has);
// - no workspace reaches into another one by a relative path (`../../apps/x/dist/main.js`): import
//   it by package name (Biome's noRestrictedImports covers import statements; this covers paths
//   built from strings, such as `new URL("../../../principal/dist/main.js", import.meta.url)`).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const rootPkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const dirs = rootPkg.workspaces.flatMap((w) =>
  w.endsWith("/*")
    ? readdirSync(join(root, w.slice(0, -2)))
        .map((d) => join(w.slice(0, -2), d))
        .filter((d) => statSync(join(root, d)).isDirectory())
    : [w],
);
const workspaces = new Map();
for (const dir of dirs) {
  const pkg = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));
  workspaces.set(pkg.name, { dir, pkg });
}

const problems = [];
const kinds = ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"];
for (const { dir, pkg } of workspaces.values()) {
  for (const kind of kinds) {
    for (const [name, range] of Object.entries(pkg[kind] ?? {})) {
      const target = workspaces.get(name);
      if (target === undefined) continue;
      if (dir.startsWith("packages/") && target.dir.startsWith("apps/")) {
        problems.push(`${dir}/package.json: ${kind} names the app ${name}; a package never depends on an app`);
      }
      if (range !== target.pkg.version) {
        problems.push(
          `${dir}/package.json: ${kind}.${name} is "${range}"; pin it to the workspace version "${target.pkg.version}"`,
        );
      }
    }
  }
}

const reach = /(?:\.\.\/)+(?:[\w@.-]+\/)+(?:dist|src)\//g;
function walk(dir, workspaceDir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) walk(p, workspaceDir);
    else if (/\.(ts|mts|js|mjs)$/.test(entry.name)) {
      readFileSync(p, "utf8")
        .split("\n")
        .forEach((line, i) => {
          if (/^\s*(\/\/|\*|\/\*)/.test(line)) return;
          for (const m of line.matchAll(reach)) {
            // Sources compile to dist/ at the same depth, so resolving from the source file tells
            // where the path lands from the compiled one too.
            const target = resolve(dirname(p), m[0]);
            if (!target.startsWith(`${workspaceDir}/`)) {
              problems.push(
                `${relative(root, p)}:${i + 1}: ${m[0]} reaches into another workspace by path; resolve it by package name`,
              );
            }
          }
        });
    }
  }
}
for (const { dir } of workspaces.values()) {
  try {
    walk(join(root, dir, "src"), join(root, dir));
  } catch (e) {
    if (e.code !== "ENOENT") throw e;
  }
}

if (problems.length > 0) {
  console.error(`workspace rules: ${problems.length} problem(s)\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`workspace rules: ${workspaces.size} workspaces ok`);

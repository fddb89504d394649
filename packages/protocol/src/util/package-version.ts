import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The `version` of the package a module belongs to: the nearest `package.json` above the module
 * (`import.meta.url`), read once at start-up, so that `ping`, agent registration and
 * `cdktr --version` report what is installed instead of a constant that drifts.
 *
 * @example
 * export const PRINCIPAL_VERSION = packageVersion(import.meta.url);
 * @returns the version, or `"0.0.0"` when no `package.json` with a version is found.
 */
export function packageVersion(moduleUrl: string | URL): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: unknown };
      if (typeof pkg.version === "string") return pkg.version;
    } catch {
      // no package.json here (or unreadable): keep looking upwards
    }
    const parent = dirname(dir);
    if (parent === dir) return "0.0.0";
    dir = parent;
  }
}

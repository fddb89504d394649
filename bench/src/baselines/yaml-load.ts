/**
 * Baseline for the footprint scenario: a bare node process that reads and YAML-parses every
 * `.yml` file under a directory (recursively) and keeps the parsed documents, then reports its
 * time and RSS: `{"message":"ready","files":n,"loadMs":...,"rss":...}`. Stays up until SIGTERM.
 *
 *   node yaml-load.js <dir>
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

const dir = process.argv[2] ?? ".";
const t0 = performance.now();
const docs: unknown[] = [];
const walk = (d: string): void => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith(".yml") || e.name.endsWith(".yaml")) {
      // The loader's tags are plain maps here.
      docs.push(
        parse(readFileSync(p, "utf8"), {
          customTags: [{ tag: "!Subprocess", collection: "map", identify: () => false }],
        }),
      );
    }
  }
};
walk(dir);
const loadMs = performance.now() - t0;
process.stdout.write(
  `${JSON.stringify({ message: "ready", files: docs.length, loadMs, rss: process.memoryUsage().rss })}\n`,
);
process.on("SIGTERM", () => process.exit(0));
setInterval(() => undefined, 1 << 30);

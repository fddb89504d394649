/**
 * Compile the documentation's TypeScript blocks with the workspace's TypeScript, in one temp
 * project whose `node_modules` is the repository's: `@cdktr/*` resolve to the real, built
 * workspaces, with the repository's strict `tsconfig.base.json`.
 */
import { spawnSync } from "node:child_process";
import { symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { makeTempDir } from "@cdktr/test-utils";
import { assemble, type CodeBlock, REPO_ROOT } from "./markdown.js";

const TSC = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc");

/** The outcome of {@link compileBlocks}. */
export interface CompiledProject {
  /** The temp project (its `node_modules` links to the repository's). */
  dir: string;
  /** The compiled `.js` of each block, in the order given. */
  outputs: Map<CodeBlock, string>;
  /** tsc's errors, each located in the markdown file (`docs/x.md:12:7: error TS...`). */
  errors: string[];
}

/**
 * Write each block (inside its fragment template, if any) as one module of a temp project and
 * compile them all with one `tsc` run.
 */
export function compileBlocks(blocks: CodeBlock[]): CompiledProject {
  const dir = makeTempDir("cdktr-doc-ts-");
  symlinkSync(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "cdktr-doc-blocks", private: true, type: "module" }));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      extends: join(REPO_ROOT, "tsconfig.base.json"),
      compilerOptions: { rootDir: ".", outDir: "out", declaration: false, declarationMap: false, sourceMap: false },
      include: ["*.ts"],
    }),
  );
  const outputs = new Map<CodeBlock, string>();
  const byName = new Map<string, { block: CodeBlock; offset: number }>();
  blocks.forEach((block, i) => {
    const name = `block${i}`;
    const { text, offset } = assemble(block);
    // `export {}` makes every block a module (its own scope, top-level await allowed)
    writeFileSync(join(dir, `${name}.ts`), `${text}\nexport {};\n`);
    outputs.set(block, join(dir, "out", `${name}.js`));
    byName.set(name, { block, offset });
  });
  const r = spawnSync(process.execPath, [TSC, "-p", dir, "--pretty", "false"], { encoding: "utf8", cwd: dir });
  const errors: string[] = [];
  for (const line of `${r.stdout}${r.stderr}`.split("\n")) {
    if (line.trim() === "") continue;
    const m = /^(block\d+)\.ts\((\d+),(\d+)\): (.*)$/.exec(line);
    const found = m?.[1] === undefined ? undefined : byName.get(m[1]);
    if (m === null || found === undefined) {
      errors.push(line);
      continue;
    }
    const mdLine = found.block.line + Number(m[2]) - found.offset;
    errors.push(`${found.block.file}:${mdLine}:${m[3]}: ${m[4]}`);
  }
  if (r.status !== 0 && errors.length === 0) errors.push(`tsc exited ${String(r.status)}`);
  return { dir, outputs, errors };
}

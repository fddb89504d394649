/**
 * Every fenced block of the documentation says what it is (a language the doc tests check, or
 * `text`), and every marker comment before a block is one the doc tests understand.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { allBlocks, assemble, docFiles, FENCE_LANGUAGES, parseBlocks, REPO_ROOT, where } from "./markdown.js";

describe("documentation code blocks", () => {
  const blocks = allBlocks();

  it("are found in docs/, every README.md and the changelog", () => {
    const files = docFiles();
    for (const f of ["README.md", "docs/protocol.md", "clients/python/README.md", "apps/cli/README.md", "CHANGELOG.md"])
      assert.ok(files.includes(f), `${f} is checked (found: ${files.join(", ")})`);
    assert.ok(blocks.length > 100, `only ${blocks.length} blocks found`);
  });

  it("each name their language: one the doc tests check, or text", () => {
    const bad = blocks
      .filter((b) => !Object.hasOwn(FENCE_LANGUAGES, b.lang))
      .map((b) => `${where(b)}: \`\`\`${b.lang}`);
    assert.deepEqual(
      bad,
      [],
      `tag these fences with one of ${Object.keys(FENCE_LANGUAGES).join(", ")} (text for output and synopses)`,
    );
  });

  it("carry only markers the doc tests understand, each before a block it fits", () => {
    const problems: string[] = [];
    for (const b of blocks) {
      const m = b.marker;
      if (m === undefined) continue;
      if (m.kind === "unknown")
        problems.push(`${where(b)}: unknown marker <!-- ${m.text} --> (use <!-- fragment --> or a fragment template)`);
      if (m.kind === "example" && b.lang !== "json")
        problems.push(`${where(b)}: an example marker on a non-JSON block`);
      if (m.kind === "fragment" && b.lang === "text")
        problems.push(`${where(b)}: a text block needs no fragment marker`);
      try {
        assemble(b);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    assert.deepEqual(problems, []);
  });

  it("fragment templates put the block in place of {{block}}, indented like it", () => {
    const [b] = parseBlocks(
      "t.md",
      "<!-- fragment\nname: T\ntasks:\n  t:\n    name: T\n    {{block}}\n-->\n```yaml\nconfig: !Subprocess\n  cmd: echo\n```\n",
    );
    assert.ok(b !== undefined);
    assert.equal(b.lang, "yaml");
    assert.deepEqual(assemble(b), {
      text: "name: T\ntasks:\n  t:\n    name: T\n    config: !Subprocess\n      cmd: echo\n",
      offset: 4,
    });
    const [plain] = parseBlocks("t.md", "<!-- fragment -->\n\n   ```ts\n   const x = 1;\n   ```\n");
    assert.deepEqual(plain?.marker, { kind: "fragment", template: undefined });
    assert.equal(plain?.code, "const x = 1;\n");
    const [unmarked] = parseBlocks("t.md", "<!-- fragment -->\ntext between\n```sh\nls\n```\n");
    assert.equal(unmarked?.marker, undefined, "a marker applies only to the block right after it");
  });

  it("link and name only files that exist", () => {
    const missing: string[] = [];
    for (const f of docFiles()) {
      const text = readFileSync(join(REPO_ROOT, f), "utf8");
      // relative markdown links, resolved from the file's folder
      for (const m of text.matchAll(/\]\(([^)#:\s]+)(#[^)]*)?\)/g))
        if (m[1] !== undefined && !existsSync(join(REPO_ROOT, dirname(f), m[1]))) missing.push(`${f}: link ${m[1]}`);
      // repository paths in backticks, from the root (generated bench results aside)
      for (const m of text.matchAll(/`((?:apps|packages|e2e|docs|examples|clients|bench|scripts|deploy)\/[\w./-]+)`/g))
        if (m[1] !== undefined && !m[1].startsWith("bench/results/") && !existsSync(join(REPO_ROOT, m[1])))
          missing.push(`${f}: ${m[1]}`);
    }
    assert.deepEqual(missing, []);
  });
});

/**
 * The documentation's YAML, JSON, shell and SQL blocks are checked by the real parsers: workflow
 * files load with `@cdktr/workflow` without an error or warning, listener files load with the
 * listeners app's config loader, compose files pass `docker-compose config`, shell passes
 * `bash -n`, JSON parses, and SQL runs on PostgreSQL (rolled back). Each checker is first shown
 * to reject a broken snippet, so that a pass means something.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { removeTempDirs } from "@cdktr/test-utils";
import {
  checkCompose,
  checkJson,
  checkListeners,
  checkShell,
  checkSql,
  checkWorkflow,
  checkYaml,
  postgresReachable,
  yamlKind,
} from "./checkers.js";
import { allBlocks, assemble, type CodeBlock, where } from "./markdown.js";

const blocks = allBlocks();

/** The problems of every block of a language, located in the markdown files. */
function problemsOf(lang: string, check: (text: string, label: string) => string[]): string[] {
  return blocks
    .filter((b) => b.lang === lang)
    .flatMap((b: CodeBlock) => {
      const { text, offset } = assemble(b);
      // a checker's `@doc:<line>` (line in the checked text) becomes the line in the markdown file
      return check(text, "@doc").map((p) =>
        p.includes("@doc")
          ? p.replace(/@doc:(\d+)/g, (_m, n: string) => `${b.file}:${b.line + Number(n) - offset}`)
          : `${where(b)}: ${p}`,
      );
    });
}

/** Skip the SQL checks when PostgreSQL is down, unless CI is set (then it is required). */
function sqlSkip(): string | undefined {
  if (postgresReachable()) return undefined;
  const msg = "PostgreSQL is not reachable on 127.0.0.1:5432 (see README.md, Tests)";
  if (process.env.CI !== undefined && process.env.CI !== "") throw new Error(`${msg}; CI is set: it is required`);
  return msg;
}

after(() => removeTempDirs());

describe("the checkers reject what is broken", () => {
  it("a workflow with an unknown key, a listeners file with a typo, bad shell and bad JSON", () => {
    const wf = checkWorkflow("name: X\ntasks:\n  a:\n    name: A\n    dependencies: []\n", "x.yml");
    assert.match(wf.join("\n"), /x\.yml:5:5: .*unknown key `dependencies`/);
    const ls = checkListeners("listeners:\n  - type: webhook\n    prot: 8080\n", "l.yml");
    assert.match(ls.join("\n"), /l\.yml:3:5: .*prot/);
    assert.notDeepEqual(checkShell("if then fi\n"), []);
    assert.notDeepEqual(checkJson("{ trailing: 1, }"), []);
    assert.match(checkYaml("just: a map\n", "u.yml").join("\n"), /fragment template/);
    assert.equal(yamlKind("services:\n  a:\n    image: x\n"), "compose");
  });

  it("a compose file with an unknown service key", () => {
    assert.notDeepEqual(checkCompose("services:\n  a:\n    image: x\n    imagex: y\n"), []);
    assert.deepEqual(checkCompose('services:\n  a:\n    image: node:20\n    command: ["true"]\n'), []);
  });

  it("SQL that PostgreSQL refuses", { skip: sqlSkip() }, () => {
    assert.notDeepEqual(checkSql("NOTIFY;"), []);
    assert.deepEqual(checkSql("SELECT 1;"), []);
  });
});

describe("documentation blocks", () => {
  it("YAML: workflows load without errors or warnings; listener and compose files are valid", () => {
    assert.ok(
      blocks.some((b) => b.lang === "yaml" && yamlKind(assemble(b).text) === "listeners"),
      "listener files found",
    );
    assert.deepEqual(problemsOf("yaml", checkYaml), []);
  });

  it("shell blocks pass bash -n", () => {
    assert.deepEqual(problemsOf("sh", checkShell), []);
  });

  it("JSON blocks parse", () => {
    assert.deepEqual(problemsOf("json", checkJson), []);
  });

  it("SQL blocks run on PostgreSQL", { skip: sqlSkip() }, () => {
    assert.ok(blocks.some((b) => b.lang === "sql"));
    assert.deepEqual(problemsOf("sql", checkSql), []);
  });
});

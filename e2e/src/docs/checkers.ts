/**
 * Checkers for the documentation's non-program blocks, each the real thing: workflow YAML through
 * `@cdktr/workflow`'s parser, listener YAML through the listeners app's config loader, compose
 * files through `docker-compose config`, shell through `bash -n`, SQL through PostgreSQL. Each
 * returns the problems found (empty when the text is fine).
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseListenersConfig } from "@cdktr/listeners";
import { ConfigError, errorMessage } from "@cdktr/protocol";
import { makeTempDir } from "@cdktr/test-utils";
import { formatLoadError, parseWorkflowText } from "@cdktr/workflow";

/** What a YAML text is, from its top-level keys. */
export type YamlKind = "workflow" | "listeners" | "compose" | "unknown";

/** A workflow has `tasks:`, a listeners file `listeners:`, a compose file `services:`. */
export function yamlKind(text: string): YamlKind {
  if (/^tasks:/m.test(text)) return "workflow";
  if (/^listeners:/m.test(text)) return "listeners";
  if (/^services:/m.test(text)) return "compose";
  return "unknown";
}

/** A workflow file: load errors and warnings, as `cdktr validate` prints them. */
export function checkWorkflow(text: string, label: string): string[] {
  const r = parseWorkflowText(text, { file: label, id: "doc-example" });
  return [...r.errors, ...r.warnings].map((e) => formatLoadError(e));
}

/** A listeners YAML file, with every `*_env` variable it names set. */
export function checkListeners(text: string, label: string): string[] {
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/_env:\s*([A-Z_][A-Z0-9_]*)/g)) if (m[1] !== undefined) env[m[1]] = "set-for-the-check";
  try {
    parseListenersConfig(text, label, env);
    return [];
  } catch (e) {
    return e instanceof ConfigError ? e.problems : [errorMessage(e)];
  }
}

function run(cmd: string, args: string[], input?: string): string[] {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", timeout: 60_000 });
  if (r.error !== undefined) return [`${cmd}: ${r.error.message}`];
  return r.status === 0 ? [] : [`${cmd} exited ${String(r.status)}: ${(r.stderr || r.stdout).trim()}`];
}

/** A docker-compose file: `docker-compose config -q` (no daemon needed). */
export function checkCompose(text: string): string[] {
  const dir = makeTempDir("cdktr-doc-compose-");
  const file = join(dir, "docker-compose.yml");
  writeFileSync(file, text);
  return run("docker-compose", ["-f", file, "config", "-q"]);
}

/** Any YAML block: by kind; an unknown kind is a problem (wrap a fragment in a template). */
export function checkYaml(text: string, label: string): string[] {
  switch (yamlKind(text)) {
    case "workflow":
      return checkWorkflow(text, label);
    case "listeners":
      return checkListeners(text, label);
    case "compose":
      return checkCompose(text);
    default:
      return [
        "not a workflow (tasks:), listeners (listeners:) or compose (services:) file: wrap it in a fragment template",
      ];
  }
}

/** Shell: `bash -n`. */
export function checkShell(text: string): string[] {
  return run("bash", ["-n"], text);
}

/** JSON: `JSON.parse`. */
export function checkJson(text: string): string[] {
  try {
    JSON.parse(text);
    return [];
  } catch (e) {
    return [errorMessage(e)];
  }
}

/** The PostgreSQL the tests use (trust auth), as for the PostgreSQL listener's tests. */
export const PG_URL = process.env.CDKTR_TEST_PG_URL ?? "postgresql://postgres@127.0.0.1:5432/test";

/** Whether `psql` reaches {@link PG_URL}. */
export function postgresReachable(): boolean {
  return run("psql", [PG_URL, "-X", "-q", "-c", "SELECT 1"]).length === 0;
}

/** SQL: executed by PostgreSQL in a transaction that is rolled back (a NOTIFY is never delivered). */
export function checkSql(text: string): string[] {
  return run("psql", [PG_URL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"], `BEGIN;\n${text}\nROLLBACK;\n`);
}

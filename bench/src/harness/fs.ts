import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];

/** A fresh directory under the OS temp dir, removed by {@link removeTempDirs}. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `cdktr-bench-${prefix}-`));
  made.push(dir);
  return dir;
}

/** Remove every directory made by {@link makeTempDir}. */
export function removeTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Options of a generated one-task (or n-task) workflow file. */
export interface WorkflowSpec {
  cron?: string;
  /** argv of the single task. */
  cmd: string;
  args: string[];
  /** Extra top-level YAML lines, e.g. `max_active_runs: 1`. */
  extra?: string[];
  description?: string;
}

/** YAML text of a one-task workflow. */
export function workflowYaml(name: string, spec: WorkflowSpec): string {
  const lines = [`name: ${JSON.stringify(name)}`];
  if (spec.description !== undefined) lines.push(`description: ${JSON.stringify(spec.description)}`);
  if (spec.cron !== undefined) lines.push(`cron: ${JSON.stringify(spec.cron)}`);
  lines.push(...(spec.extra ?? []));
  lines.push(
    "tasks:",
    "  t:",
    "    name: t",
    "    config: !Subprocess",
    `      cmd: ${JSON.stringify(spec.cmd)}`,
    `      args: [${spec.args.map((a) => JSON.stringify(a)).join(", ")}]`,
  );
  return `${lines.join("\n")}\n`;
}

/** Write `<dir>/<id>.yml` (id may contain `/` for sub-directories). */
export function writeWorkflow(dir: string, id: string, spec: WorkflowSpec): string {
  const file = join(dir, `${id}.yml`);
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, workflowYaml(id, spec));
  return file;
}

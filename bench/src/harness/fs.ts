/**
 * Temp directories and generated workflow files of the benchmarks, on top of the test fixture's
 * (`@cdktr/test-utils`): the same temp-dir registry, the same workflow YAML builder.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { makeTempDir as makeFixtureTempDir, workflowYaml } from "@cdktr/test-utils";

export { removeTempDirs } from "@cdktr/test-utils";

/** A fresh directory under the OS temp dir, removed by `removeTempDirs`. */
export function makeTempDir(prefix: string): string {
  return makeFixtureTempDir(`cdktr-bench-${prefix}-`);
}

/** Options of a generated one-task workflow file. */
export interface WorkflowSpec {
  cron?: string;
  /** argv of the single task. */
  cmd: string;
  args: string[];
  /** Extra top-level YAML lines, e.g. `max_active_runs: 1`. */
  extra?: string[];
  description?: string;
}

/** YAML text of a one-task workflow (task `t`) named `name`. */
export function oneTaskWorkflow(name: string, spec: WorkflowSpec): string {
  return workflowYaml({
    name: JSON.stringify(name),
    ...(spec.description === undefined ? {} : { description: spec.description }),
    ...(spec.cron === undefined ? {} : { cron: spec.cron }),
    ...(spec.extra === undefined ? {} : { header: spec.extra }),
    tasks: { t: { cmd: spec.cmd, args: spec.args } },
  });
}

/** Write `<dir>/<id>.yml` (id may contain `/` for sub-directories). */
export function writeWorkflow(dir: string, id: string, spec: WorkflowSpec): string {
  const file = join(dir, `${id}.yml`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, oneTaskWorkflow(id, spec));
  return file;
}

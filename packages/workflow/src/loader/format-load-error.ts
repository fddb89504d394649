import type { WorkflowLoadError } from "@cdktr/protocol";

/**
 * Formats a load error the way compilers do, e.g.
 * `etl/daily.yml:7:5: tasks.load.depends[0]: task \`load\` depends on unknown task \`extrct\``.
 */
export function formatLoadError(e: WorkflowLoadError): string {
  const where = e.line === null ? e.file : `${e.file}:${e.line}:${e.column ?? 1}`;
  return e.path === null ? `${where}: ${e.message}` : `${where}: ${e.path}: ${e.message}`;
}

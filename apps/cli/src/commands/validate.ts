import { isAbsolute, join, relative, resolve } from "node:path";
import { existsSync, statSync } from "node:fs";
import { loadWorkflowDir } from "@cdktr/workflow";
import type { CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { formatLoadError } from "./workflows.js";

/**
 * `cdktr validate [dir]`: load every workflow file the way the principal would, without one.
 * Prints `file:line:column: message` per problem (warnings too) and exits 1 when any file is
 * invalid, so it can gate a CI pipeline.
 */
export async function validateCommand(
  ctx: CommandContext,
  dirArg: string | undefined,
  opts: { json?: boolean },
): Promise<number> {
  const dir = dirArg ?? ctx.io.env.CDKTR_WORKFLOW_DIR ?? "workflows";
  const abs = resolve(ctx.io.cwd, dir);
  if (!existsSync(abs))
    throw new CliError(
      `${dir}: no such directory (pass the workflow directory: \`cdktr validate path/to/workflows\`)`,
      1,
    );
  if (!statSync(abs).isDirectory()) throw new CliError(`${dir}: not a directory (pass the workflow directory)`, 1);
  const result = await loadWorkflowDir(abs);
  const shown = (file: string): string => {
    const full = isAbsolute(file) ? file : join(abs, file);
    const rel = relative(ctx.io.cwd, full);
    return rel.startsWith("..") ? full : rel;
  };
  const workflows = [...result.workflows.values()];
  if (opts.json === true) {
    ctx.out(JSON.stringify({ workflows, errors: result.errors, warnings: result.warnings }, null, 2));
    return result.errors.length > 0 ? 1 : 0;
  }
  for (const w of result.warnings) ctx.err(`${formatLoadError(w, shown(w.file))} ${ctx.style.yellow("(warning)")}`);
  for (const e of result.errors) ctx.err(formatLoadError(e, shown(e.file)));
  const badFiles = new Set(result.errors.map((e) => e.file)).size;
  if (badFiles > 0) {
    ctx.err(
      ctx.style.red(
        `${badFiles} invalid file${badFiles === 1 ? "" : "s"}, ${result.errors.length} error${result.errors.length === 1 ? "" : "s"}`,
      ),
    );
    return 1;
  }
  ctx.out(`${ctx.style.green("ok")}: ${workflows.length} workflow${workflows.length === 1 ? "" : "s"} valid in ${dir}`);
  return 0;
}

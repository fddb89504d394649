import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { CommandContext } from "../context.js";
import { renderDotEnv } from "../settings.js";

/** The example workflow `cdktr init` writes (two chained tasks). */
export const EXAMPLE_WORKFLOW = `# An example cdktr workflow. Reference: docs/workflows.md
name: Hello
description: Two chained tasks; runs every day at 09:00 in the given timezone.
cron: "0 0 9 * * *"
timezone: UTC
tasks:
  greet:
    name: Say hello
    config: !Subprocess
      cmd: echo
      args: ["hello from cdktr"]
  done:
    name: Say done
    depends: [greet]
    config: !Subprocess
      cmd: echo
      args: ["done"]
`;

/**
 * \`cdktr init [dir]\`: scaffold \`workflows/hello.yml\` and a \`.env\` listing every setting
 * (commented). Existing files are kept unless \`--force\`.
 */
export function initCommand(ctx: CommandContext, dirArg: string | undefined, opts: { force?: boolean }): number {
  const dir = resolve(ctx.io.cwd, dirArg ?? ".");
  const files: [string, string][] = [
    [join(dir, "workflows", "hello.yml"), EXAMPLE_WORKFLOW],
    [join(dir, ".env"), renderDotEnv()],
  ];
  for (const [path, text] of files) {
    const shown = relative(ctx.io.cwd, path) || path;
    if (existsSync(path) && opts.force !== true) {
      ctx.out(`kept     ${shown} (exists; --force overwrites)`);
      continue;
    }
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, text);
    ctx.out(`created  ${shown}`);
  }
  const rel = relative(ctx.io.cwd, dir);
  const cd = rel === "" ? "" : `cd ${rel} && `;
  ctx.out("");
  ctx.out("next:");
  const steps: [string, string][] = [
    [`${cd}cdktr validate workflows`, "check the files"],
    [`${cd}cdktr start all`, "principal, agent and scheduler"],
    ["cdktr run hello --wait", "in another terminal"],
  ];
  const width = Math.max(...steps.map(([c]) => c.length));
  for (const [c, why] of steps) ctx.out(`  ${c.padEnd(width)}  # ${why}`);
  return 0;
}

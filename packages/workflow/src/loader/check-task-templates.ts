/**
 * Load-time check of the task templates of one workflow file (see `template/task-template.ts`):
 * every `{{ ... }}` where templates are expanded names something the run will have, and no
 * template sits where the agent does not expand one.
 */
import type { TaskConfig } from "@cdktr/protocol";
import { TEMPLATE_ESCAPE, checkTaskTemplate, hasTemplate } from "../template/task-template.js";
import type { ProblemCollector } from "./problem-collector.js";
import type { PathSeg } from "./yaml-reader.js";
import type { WorkflowYaml } from "./yaml-schema.js";

/**
 * Reports, at the file, line and column of the offending `{{`, each bad template of `y`: in
 * `args`, `env` values and `working_directory` (the templated fields), a `{{` in an `env` key, and
 * a `{{` in `cmd`, `script_path`, `packages` or `uv_path` (what a task runs is never templated).
 * `configs` are the task configs that parsed, by task id.
 */
export function checkTaskTemplates(
  y: WorkflowYaml,
  configs: ReadonlyMap<string, TaskConfig>,
  problems: ProblemCollector,
): void {
  const paramNames = Object.keys(y.params ?? {});
  const templated = (path: PathSeg[], text: string | null | undefined): void => {
    if (text === null || text === undefined) return;
    for (const p of checkTaskTemplate(text, paramNames)) problems.errorInValue(path, p.index, p.message);
  };
  const env = (base: PathSeg[], vars: Readonly<Record<string, string>> | null | undefined): void => {
    for (const [name, value] of Object.entries(vars ?? {})) {
      if (hasTemplate(name)) {
        problems.errorInValue(
          [...base, name],
          name.indexOf("{{"),
          `env variable names are not templated (only their values are): rename \`${name}\``,
          true,
        );
      }
      templated([...base, name], value);
    }
  };
  const fixed = (path: PathSeg[], field: string, text: string | null): void => {
    if (text === null || !hasTemplate(text)) return;
    problems.errorInValue(
      path,
      text.indexOf("{{"),
      `templates are not expanded in \`${field}\`: what a task runs is fixed by its workflow file, never chosen by a run's params; pass values in ${field === "cmd" ? "`args`" : "`env`"} (templates work in args, env values and working_directory; a literal \`{{\` there is written \`${TEMPLATE_ESCAPE}\`)`,
    );
  };

  env(["env"], y.env);
  for (const [taskId, t] of Object.entries(y.tasks)) {
    const base: PathSeg[] = ["tasks", taskId];
    env([...base, "env"], t.env);
    templated([...base, "working_directory"], t.working_directory);
    const config = configs.get(taskId);
    const at = (...rest: PathSeg[]): PathSeg[] => [...base, "config", ...rest];
    if (config?.type === "subprocess") {
      fixed(at("cmd"), "cmd", config.cmd);
      for (const [i, arg] of config.args.entries()) templated(at("args", i), arg);
    } else if (config?.type === "uvPython") {
      fixed(at("script_path"), "script_path", config.scriptPath);
      for (const [i, pkg] of config.packages.entries()) fixed(at("packages", i), "packages", pkg);
      fixed(at("uv_path"), "uv_path", config.uvPath);
      templated(at("working_directory"), config.workingDirectory);
    }
  }
}

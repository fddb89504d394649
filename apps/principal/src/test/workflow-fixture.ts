import type { WorkflowDefinition } from "@cdktr/protocol";
import { parseWorkflowText } from "@cdktr/workflow";

/** A real definition parsed from YAML (`extra` lines go before `tasks:`), for unit tests. */
export function definition(id: string, extra = "", tasks = ["only"]): WorkflowDefinition {
  const taskYaml = tasks.map((t) => `  ${t}:\n    name: ${t}\n    config: !Subprocess\n      cmd: "true"\n`).join("");
  const text = `name: ${id}\n${extra}${extra === "" || extra.endsWith("\n") ? "" : "\n"}tasks:\n${taskYaml}`;
  const r = parseWorkflowText(text, { file: `${id}.yml`, id });
  if (r.workflow === null) throw new Error(`fixture ${id} invalid: ${JSON.stringify(r.errors)}`);
  return r.workflow;
}

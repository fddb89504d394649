import type { WorkflowDefinition } from "@cdktr/protocol";
import type { CreateRunInput } from "../store/store.js";
import { workflowYaml } from "@cdktr/test-utils";
import { parseWorkflowText } from "@cdktr/workflow";

/** A real definition parsed from YAML (`extra` lines go before `tasks:`), for unit tests. */
export function definition(id: string, extra = "", tasks = ["only"]): WorkflowDefinition {
  const text = workflowYaml({ name: id, header: extra, tasks: Object.fromEntries(tasks.map((t) => [t, {}])) });
  const r = parseWorkflowText(text, { file: `${id}.yml`, id });
  if (r.workflow === null) throw new Error(`fixture ${id} invalid: ${JSON.stringify(r.errors)}`);
  return r.workflow;
}

/** What `Store.createRun` needs for a plain trigger of `workflow` (no key, no params, source `t`). */
export function runInput(
  runId: string,
  workflow: WorkflowDefinition,
  fields: Partial<CreateRunInput> = {},
): CreateRunInput {
  return {
    runId,
    workflow,
    params: {},
    requestParams: {},
    idempotencyKey: null,
    idempotencyScope: "",
    source: "t",
    triggeredBy: null,
    scheduledFor: null,
    ...fields,
  };
}

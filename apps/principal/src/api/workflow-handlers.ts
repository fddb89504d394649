import type { API_VERBS } from "@cdktr/protocol";
import { workflowNotFound } from "../errors.js";
import type { HandlerRegistry } from "../leader/leader-gate.js";
import type { ApiContext } from "./api-context.js";

/** Register `listWorkflows` and `getWorkflow` (answered from the workflow registry). */
export function registerWorkflowHandlers(server: HandlerRegistry<typeof API_VERBS>, ctx: ApiContext): void {
  server
    .handle("listWorkflows", (req) => ctx.workflows.list(req.sinceVersion))
    .handle("getWorkflow", (req) => {
      const wf = ctx.workflows.get(req.workflowId);
      if (wf === undefined) throw workflowNotFound(req.workflowId);
      return { workflow: wf };
    });
}

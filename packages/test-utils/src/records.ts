/**
 * Complete wire records with neutral defaults, for unit tests that talk to fakes instead of a
 * principal: name only the fields the test is about.
 */
import type { RunRecord, WorkflowDefinition } from "@cdktr/protocol";

/** A `RunRecord` (QUEUED, created now, no agent) with `fields` over the defaults. */
export function runRecord(fields: Partial<RunRecord> & Pick<RunRecord, "runId">): RunRecord {
  return {
    workflowId: "wf",
    status: "QUEUED",
    source: "test",
    triggeredBy: null,
    idempotencyKey: null,
    params: {},
    scheduledFor: null,
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
    agentId: null,
    reason: null,
    message: null,
    ...fields,
  };
}

/**
 * A parsed `WorkflowDefinition` (no schedule, no tasks, UTC, overlap queue) with `fields` over the
 * defaults. For a definition parsed from real YAML, use `workflowYaml` with `@cdktr/workflow`.
 */
export function workflowDefinition(
  fields: Partial<WorkflowDefinition> & Pick<WorkflowDefinition, "id">,
): WorkflowDefinition {
  return {
    name: fields.id,
    description: null,
    path: `${fields.id}.yml`,
    cron: null,
    schedule: null,
    timezone: "UTC",
    startTime: null,
    params: {},
    maxActiveRuns: null,
    overlap: "queue",
    onAgentLost: "fail",
    catchUp: { policy: "skip", max: 1 },
    jitterMs: 0,
    agentLabels: [],
    tasks: {},
    hash: `${fields.id}-hash`,
    ...fields,
  };
}

/**
 * Topics of the publish channel (port 5563). Every topic ends with `|`, and ids never contain
 * `|`, so a subscription prefix is exact: subscribing to `logs|etl|` never receives `etl2`.
 *
 * | topic                               | body                                  |
 * |-------------------------------------|---------------------------------------|
 * | `logs|<workflowId>|<runId>|<taskId>|` | a {@link LogLine}                   |
 * | `runs|<workflowId>|<runId>|`        | a {@link RunEvent}                    |
 * | `tasks|<workflowId>|<runId>|`       | a {@link TaskEvent}                   |
 * | `workflows|`                        | a {@link WorkflowsChangedEvent}       |
 */
import { z } from "zod";
import { UsageError } from "./errors.js";
import { RunRecordSchema, TaskRunRecordSchema } from "./records.js";

const SEP = "|";

function join(parts: readonly string[]): string {
  for (const p of parts) {
    if (p.includes(SEP)) throw new UsageError("INVALID_ARGUMENT", `topic part ${JSON.stringify(p)} contains '|'`);
  }
  return parts.map((p) => p + SEP).join("");
}

/** Topic builders. Pass fewer ids for a broader (but still exact) prefix. */
export const topics = {
  /** Log lines; `logs()` = every line, `logs(wf)` = one workflow, `logs(wf, run)` = one run. */
  logs(workflowId?: string, runId?: string, taskId?: string): string {
    return join(["logs", ...defined(workflowId, runId, taskId)]);
  },
  /** Run state changes. */
  runs(workflowId?: string, runId?: string): string {
    return join(["runs", ...defined(workflowId, runId)]);
  },
  /** Task state changes. */
  tasks(workflowId?: string, runId?: string): string {
    return join(["tasks", ...defined(workflowId, runId)]);
  },
  /** The workflow store changed. */
  workflows(): string {
    return join(["workflows"]);
  },
} as const;

function defined(...ids: (string | undefined)[]): string[] {
  const out: string[] = [];
  for (const id of ids) {
    if (id === undefined) break;
    out.push(id);
  }
  return out;
}

/** Published on `topics.runs(workflowId, runId)` for every run state change. */
export const RunEventSchema = z.object({ run: RunRecordSchema });
/** Type of {@link RunEventSchema}. */
export type RunEvent = z.infer<typeof RunEventSchema>;

/** Published on `topics.tasks(workflowId, runId)` for every task state change. */
export const TaskEventSchema = z.object({ workflowId: z.string(), task: TaskRunRecordSchema });
/** Type of {@link TaskEventSchema}. */
export type TaskEvent = z.infer<typeof TaskEventSchema>;

/** Published on `topics.workflows()` when workflow files change: the new store version, changed and removed ids (fetch them with `listWorkflows({ sinceVersion })`). */
export const WorkflowsChangedEventSchema = z.object({
  version: z.number().int().min(0),
  changed: z.array(z.string()),
  removed: z.array(z.string()),
});
/** Type of {@link WorkflowsChangedEventSchema}. */
export type WorkflowsChangedEvent = z.infer<typeof WorkflowsChangedEventSchema>;

/**
 * `@cdktr/workflow`: the workflow YAML schema, the directory loader and the DAG planner.
 *
 * - {@link WorkflowDirectory} / {@link loadWorkflowDir} / {@link parseWorkflowText}: YAML ->
 *   `WorkflowDefinition` (from `@cdktr/protocol`), with file:line:column errors.
 * - {@link resolveParams}: typed run parameters on trigger.
 * - {@link expandTaskTemplate} / {@link checkTaskTemplate}: `{{ params.date }}` in task args,
 *   env values and working directories (checked at load, expanded by the agent).
 * - {@link DagPlanner}: which tasks of a run may start now.
 * - {@link reusableTasks}: which tasks a retry of a run takes as done.
 * - {@link normaliseCron}: cron validation and normalisation to croner's 6-field form.
 */
export { WorkflowDirectory, loadWorkflowDir, isWorkflowFile } from "./loader/workflow-directory.js";
export type { ScanResult, WorkflowDirectoryOptions, WorkflowLogger } from "./loader/workflow-directory.js";
export { parseWorkflowText, workflowIdFromPath, DEFAULT_CATCH_UP_MAX } from "./loader/parse-workflow-text.js";
export { formatFieldPath } from "./loader/yaml-reader.js";
export type { ParseWorkflowOptions, ParseWorkflowResult } from "./loader/parse-workflow-text.js";
export { formatLoadError } from "./loader/format-load-error.js";
export { resolveParams, coerceParam, withParamDefaults } from "./params/resolve-params.js";
export type { ResolveParamsResult } from "./params/resolve-params.js";
export {
  TASK_TEMPLATE_NAMES,
  TEMPLATE_ESCAPE,
  checkTaskTemplate,
  expandTaskTemplate,
  hasTemplate,
  parseTaskTemplate,
  taskTemplateNames,
  taskTemplateValues,
  templateValueText,
} from "./template/task-template.js";
export type {
  ParsedTemplate,
  TaskTemplateContext,
  TemplatePart,
  TemplateProblem,
} from "./template/task-template.js";
export { DagPlanner } from "./dag/dag-planner.js";
export { DagError, type DagErrorCode } from "./errors.js";
export type { DagInput, DagSummary, PlannedTaskState } from "./dag/dag-planner.js";
export { findCycle, topoOrder, renderDagTree } from "./dag/graph.js";
export { reusableTasks } from "./dag/reusable-tasks.js";
export type { SourceTaskState } from "./dag/reusable-tasks.js";
export { normaliseCron, CRON_OPTIONS } from "./cron/normalise-cron.js";
export type { CronDialect, NormaliseCronResult } from "./cron/normalise-cron.js";
/** The duration grammar of workflow fields (one grammar for the whole project, from `@cdktr/protocol`). */
export { parseDurationWithUnit as parseDuration } from "@cdktr/protocol";

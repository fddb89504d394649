/**
 * Errors raised by `@cdktr/workflow` itself. Problems in workflow files are never thrown: they
 * are {@link WorkflowLoadError} records with file, line, column and field path.
 */
import { CodedError } from "@cdktr/protocol";
import type { Node as YamlNode } from "yaml";

/** Codes of {@link DagError}. */
export type DagErrorCode = "DAG_INVALID" | "DAG_UNKNOWN_TASK" | "DAG_BAD_TRANSITION";

/**
 * Thrown by the {@link DagPlanner} constructor and by `topoOrder` for an unknown dependency or
 * a cycle (`DAG_INVALID`), and by the planner's methods for an unknown task id
 * (`DAG_UNKNOWN_TASK`) or a transition that breaks the plan, e.g. completing a task never started
 * (`DAG_BAD_TRANSITION`).
 */
export class DagError extends CodedError<DagErrorCode> {
  constructor(message: string, code: DagErrorCode = "DAG_INVALID") {
    super(code, message);
  }
}

/**
 * A YAML node the workflow reader cannot turn into a plain value (a non-string key, a tag on a
 * scalar, a document nested too deeply). Internal to the loader, which reports it as a load
 * error at the node's line and column.
 */
export class NodeError extends CodedError<"UNSUPPORTED_YAML"> {
  /** The offending node (its range gives the position), or null when unknown. */
  readonly node: YamlNode | null;

  constructor(node: YamlNode | null, message: string) {
    super("UNSUPPORTED_YAML", message);
    this.node = node;
  }
}

/**
 * SQL fragments rendered from the state machine's status constants (never typed by hand), with
 * their values bound as parameters.
 */
import { TERMINAL_RUN_STATUSES } from "@cdktr/protocol";
import { ACTIVE_RUN_STATUSES } from "../../runs/state-machine.js";

/** A SQL condition and the values to bind for its `?` placeholders, in order. */
export interface SqlCondition {
  sql: string;
  params: readonly string[];
}

/** `column IN (?, ?, ...)` with one placeholder per value. */
export function sqlIn(column: string, values: readonly string[]): SqlCondition {
  return { sql: `${column} IN (${values.map(() => "?").join(", ")})`, params: values };
}

/** `status IN (...)` of {@link ACTIVE_RUN_STATUSES} on `runs` (alias it with `column`). */
export function activeRunCondition(column = "status"): SqlCondition {
  return sqlIn(column, ACTIVE_RUN_STATUSES);
}

/** `status IN (...)` of `TERMINAL_RUN_STATUSES` (runs that retention may delete). */
export function finishedRunCondition(column = "status"): SqlCondition {
  return sqlIn(column, TERMINAL_RUN_STATUSES);
}

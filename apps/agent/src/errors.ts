/**
 * Errors of the agent process itself (wire errors use `CdktrError` from `@cdktr/protocol`). Every
 * class extends `CodedError`: guards compare `code`, the message says what to do.
 */
import { CodedError } from "@cdktr/protocol";

/** Stable codes of {@link AgentStartError}. */
export type AgentStartErrorCode = "DATA_DIR_LOCKED" | "DATA_DIR_UNUSABLE" | "CONTAINMENT_UNAVAILABLE";

/** The agent cannot start; `main` prints the message and exits with code 2. */
export class AgentStartError extends CodedError<AgentStartErrorCode> {}

/**
 * Stable codes of {@link TaskCommandError}: `UV_NOT_FOUND` (no `uv` for a `!UvPython` task),
 * `TEMPLATE_INVALID` (a task template the loader would refuse, e.g. from an older principal).
 */
export type TaskCommandErrorCode = "UV_NOT_FOUND" | "TEMPLATE_INVALID";

/** A command could not be prepared: the task fails with `spawn_error` and this message. */
export class TaskCommandError extends CodedError<TaskCommandErrorCode> {}

/** Stable codes of {@link AgentStateError}. */
export type AgentStateErrorCode = "AGENT_ALREADY_STARTED" | "TASK_PLAN_STUCK";

/**
 * The agent was used in a way its state does not allow (a programming error, not an outage):
 * `start()` called twice, or a run's task plan with nothing running and nothing ready.
 */
export class AgentStateError extends CodedError<AgentStateErrorCode> {}

/** Stable codes of {@link SpawnerError}. */
export type SpawnerErrorCode = "SPAWNER_UNAVAILABLE";

/** The agent's spawner process cannot be started or reached: spawns fail with `spawn_error`. */
export class SpawnerError extends CodedError<SpawnerErrorCode> {}

/**
 * `@cdktr/agent`: pulls runs from the principal and executes each workflow's task DAG as real
 * process groups, streaming their output back.
 */
export { createAgent, AGENT_VERSION, type Agent, type AgentDeps, type AgentReadyInfo } from "./app.js";
export { loadConfig, AgentEnvSchema, type AgentConfig } from "./config.js";
export { AgentStartError, TaskCommandError, type AgentStartErrorCode } from "./errors.js";
export { acquireDataDirLock, type DataDirLock } from "./data-dir/data-dir-lock.js";
export {
  buildTaskCommand,
  buildTaskEnv,
  findExecutable,
  paramEnvName,
  type TaskCommand,
  type TaskRunContext,
} from "./exec/task-command.js";
export {
  runTaskProcess,
  killGroup,
  type AttemptResult,
  type RunTaskProcessOptions,
  type OutputStream,
  type OutputFlowControl,
  type GroupRecorder,
} from "./exec/task-process.js";
export { LineSplitter, type LineSplitterOptions } from "./exec/line-splitter.js";
export { ProcessGroupRegistry } from "./exec/process-group-registry.js";
export { LogShipper, type LogShipperOptions, type LogSink } from "./logs/log-shipper.js";
export { StatusOutbox, type StatusOutboxOptions, type StatusSink, type StatusUpdate } from "./status/status-outbox.js";
export { RunExecution, type RunExecutionOptions, type CancelReason } from "./run/run-execution.js";

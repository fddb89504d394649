/**
 * `@cdktr/agent`: pulls runs from the principal and executes each workflow's task DAG as real
 * process groups, streaming their output back. Everything not exported here is internal (unit
 * tests import it by relative path).
 */
export { createAgent, AGENT_VERSION, type Agent, type AgentDeps, type AgentReadyInfo } from "./app.js";
export { loadConfig, AgentEnvSchema, type AgentConfig } from "./config.js";
export { AgentStartError, type AgentStartErrorCode } from "./errors.js";

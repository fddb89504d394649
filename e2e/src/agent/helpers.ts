/**
 * Settings and small helpers of the agent suites: a real principal and real agents from the
 * `@cdktr/test-utils` fixture, tuned to notice failures within seconds.
 */
import { readFileSync } from "node:fs";
import {
  preparePrincipal,
  startAgent,
  type AgentOptions,
  type PrincipalFixture,
  type PrincipalOptions,
  type ServiceHandle,
  type TaskSpec,
} from "@cdktr/test-utils";

/** The principal of these suites: agents heartbeat every 200 ms and are lost after 5 s. */
const PRINCIPAL_ENV = {
  CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: "200",
  CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "5000",
  CDKTR_LOG_LEVEL: "info",
};

/** The agents of these suites: short heartbeat, fetch wait and grace periods. */
const AGENT_ENV = {
  CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: "200",
  CDKTR_AGENT_FETCH_WAIT_MS: "2000",
  CDKTR_TASK_KILL_GRACE_MS: "500",
  CDKTR_AGENT_SHUTDOWN_GRACE_MS: "5000",
  CDKTR_LOG_LEVEL: "info",
};

/** A principal (not started yet) with these suites' settings; `env` and the other options win. */
export function prepareCluster(
  workflows: Readonly<Record<string, string>> = {},
  options: Omit<PrincipalOptions, "workflows"> = {},
): Promise<PrincipalFixture> {
  return preparePrincipal({ ...options, workflows, env: { ...PRINCIPAL_ENV, ...options.env } });
}

/** Start an agent with these suites' settings on `principal`; `env` wins over them. */
export function startFastAgent(principal: PrincipalFixture, options: AgentOptions = {}): Promise<ServiceHandle> {
  return startAgent(principal, { ...options, env: { ...AGENT_ENV, ...options.env } });
}

/** A task that appends its id to `file` (to count executions), then exits with `code`. */
export function countingTask(file: string, depends: string[] = [], code = 0): TaskSpec {
  return { cmd: "sh", args: ["-c", `echo "$CDKTR_TASK_ID" >> '${file}'; exit ${code}`], depends };
}

/** Lines of a file, or [] when it does not exist. */
export function readLines(file: string): string[] {
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l !== "");
  } catch {
    return [];
  }
}

/**
 * Helpers of the agent's multi-process tests: a real principal (`apps/principal/dist/main.js`)
 * and real agents (`apps/agent/dist/main.js`), each with its own temp HOME, data directory,
 * database and free ports, driven through the real `PrincipalClient`.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PrincipalClient, TERMINAL_RUN_STATUSES, type LogLine, type ReplyOf, type ApiVerbs } from "@cdktr/protocol";
import { freePorts, makeTempDir, spawnService, waitFor, type ServiceHandle } from "@cdktr/test-utils";

/** Built entry points. */
export const AGENT_MAIN = fileURLToPath(new URL("../main.js", import.meta.url));
export const PRINCIPAL_MAIN = fileURLToPath(new URL("../../../principal/dist/main.js", import.meta.url));

/** A task line of a workflow YAML. */
export interface TaskSpec {
  cmd: string;
  args?: string[];
  depends?: string[];
  /** Extra YAML lines of the task (indented by the helper). */
  extra?: string[];
}

/** A workflow YAML from task specs. */
export function workflowYaml(tasks: Record<string, TaskSpec>, header: string[] = []): string {
  const out = ["name: Test", ...header, "tasks:"];
  for (const [id, t] of Object.entries(tasks)) {
    out.push(`  ${id}:`, `    name: ${id}`);
    if (t.depends !== undefined && t.depends.length > 0) out.push(`    depends: ${JSON.stringify(t.depends)}`);
    for (const e of t.extra ?? []) out.push(`    ${e}`);
    out.push(
      "    config: !Subprocess",
      `      cmd: ${JSON.stringify(t.cmd)}`,
      `      args: ${JSON.stringify(t.args ?? [])}`,
    );
  }
  return `${out.join("\n")}\n`;
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

/** One principal with its files and ports, plus agents started on it. */
export class Cluster {
  readonly home: string;
  readonly workflowDir: string;
  readonly dbPath: string;
  readonly ports: { api: number; logs: number; publish: number };
  readonly principalEnv: Record<string, string>;
  principal: ServiceHandle | null = null;
  readonly api: PrincipalClient;

  private constructor(
    home: string,
    ports: { api: number; logs: number; publish: number },
    principalEnv: Record<string, string>,
  ) {
    this.home = home;
    this.workflowDir = join(home, "workflows");
    this.dbPath = join(home, "data", "cdktr.db");
    this.ports = ports;
    this.principalEnv = {
      HOME: home,
      CDKTR_PRINCIPAL_PORT: String(ports.api),
      CDKTR_LOGS_LISTENING_PORT: String(ports.logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(ports.publish),
      CDKTR_WORKFLOW_DIR: this.workflowDir,
      CDKTR_DB_PATH: this.dbPath,
      CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: "200",
      CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "5000",
      CDKTR_LOG_LEVEL: "info",
      ...principalEnv,
    };
    this.api = new PrincipalClient({ port: ports.api, timeoutMs: 5000, env: {} });
  }

  /** Fresh temp HOME with the given workflow files; the principal is not started yet. */
  static async create(workflows: Record<string, string>, principalEnv: Record<string, string> = {}): Promise<Cluster> {
    const home = makeTempDir("cdktr-agent-it-");
    const [api, logs, publish] = await freePorts(3);
    const c = new Cluster(home, { api: api ?? 0, logs: logs ?? 0, publish: publish ?? 0 }, principalEnv);
    mkdirSync(c.workflowDir, { recursive: true });
    for (const [name, text] of Object.entries(workflows)) writeFileSync(join(c.workflowDir, name), text);
    return c;
  }

  /** Start (or restart, same db and ports) the principal. */
  async startPrincipal(): Promise<ServiceHandle> {
    this.principal = await spawnService({
      script: PRINCIPAL_MAIN,
      name: "principal",
      cwd: this.home,
      env: this.principalEnv,
    });
    return this.principal;
  }

  /** Environment of an agent on this cluster using data directory `dataDir`. */
  agentEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      HOME: this.home,
      CDKTR_PRINCIPAL_PORT: String(this.ports.api),
      CDKTR_LOGS_LISTENING_PORT: String(this.ports.logs),
      CDKTR_AGENT_DATA_DIR: dataDir,
      CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: "200",
      CDKTR_AGENT_FETCH_WAIT_MS: "2000",
      CDKTR_TASK_KILL_GRACE_MS: "500",
      CDKTR_AGENT_SHUTDOWN_GRACE_MS: "5000",
      CDKTR_LOG_LEVEL: "info",
      ...extra,
    };
  }

  /** Start an agent (waits for its `ready` line). */
  startAgent(
    dataDir = join(this.home, "agent-data"),
    extra: Record<string, string> = {},
    waitReady = true,
  ): Promise<ServiceHandle> {
    return spawnService({
      script: AGENT_MAIN,
      name: "agent",
      cwd: this.home,
      env: this.agentEnv(dataDir, extra),
      waitReady,
    });
  }

  /** Trigger a run; returns its id. */
  async run(workflowId: string, params?: Record<string, string | number | boolean>): Promise<string> {
    const r = await this.api.runWorkflow({ workflowId, source: "test", ...(params === undefined ? {} : { params }) });
    return r.runId;
  }

  /** Wait until the run is in a terminal state; returns the run and its tasks. */
  async finished(runId: string, timeoutMs = 30_000): Promise<ReplyOf<ApiVerbs, "getRun">> {
    return waitFor(
      async () => {
        const r = await this.api.getRun(runId, { timeoutMs: 2000, retry: false });
        return TERMINAL_RUN_STATUSES.includes(r.run.status) ? r : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `run ${runId} to finish` },
    );
  }

  /** Every stored log line of a run (optionally one task), following pagination. */
  async logs(runId: string, taskId?: string): Promise<LogLine[]> {
    const out: LogLine[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await this.api.queryLogs({
        runId,
        ...(taskId === undefined ? {} : { taskId }),
        since: "2000-01-01T00:00:00.000Z",
        order: "asc",
        limit: 1000,
        ...(cursor === undefined ? {} : { cursor }),
      });
      out.push(...page.lines);
      if (page.nextCursor === null) return out;
      cursor = page.nextCursor;
    }
  }

  close(): void {
    this.api.close();
  }
}

/** Task states by task id. */
export function taskStates(r: ReplyOf<ApiVerbs, "getRun">): Record<string, string> {
  return Object.fromEntries(r.tasks.map((t) => [t.taskId, t.status]));
}

/** Whether a process group still has members. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A real principal process for a test: its own temp HOME, workflow directory and database, ports
 * chosen by the OS (read back from its `ready` line) or reserved up front, clients ready to use,
 * and restarts on the same ports and database.
 */
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { CodedError, LogClient, PrincipalClient, type LogLine, type RunRecord } from "@cdktr/protocol";
import { freePorts, makeTempDir, spawnService, type ServiceExit, type ServiceHandle } from "@cdktr/test-base";
import { appMain, type ServiceTuning } from "./apps.js";
import { closeAtCleanup } from "./cleanup.js";
import {
  runLogs,
  triggerRun,
  waitForRun,
  workflowRuns,
  type RunWithTasks,
  type WorkflowRunsOptions,
} from "./run-queries.js";
import { helloWorkflowYaml, writeWorkflows } from "./workflow-yaml.js";

/** The principal's three ports. */
export interface PrincipalPorts {
  api: number;
  logs: number;
  publish: number;
}

/** Options of {@link preparePrincipal} and {@link startPrincipal}. */
export interface PrincipalOptions {
  /**
   * Workflow files written before the start: file name (may contain `/`) -> YAML.
   * @default { "hello.yml": helloWorkflowYaml() }, or none with `copyWorkflowsFrom`
   */
  workflows?: Readonly<Record<string, string>>;
  /** Copy this directory (e.g. examples/workflows) into the workflow directory first. */
  copyWorkflowsFrom?: string;
  /** Use this existing directory as the workflow directory. @default `<home>/workflows` */
  workflowDir?: string;
  /** Database file (reuse one to measure a restart). @default `<home>/data/cdktr.db` */
  dbPath?: string;
  /** Settings of the process (`CDKTR_*`), over the fixture's. */
  env?: Readonly<Record<string, string>>;
  /**
   * `"os"`: port 0, the OS picks and the `ready` line tells; `"reserved"`: free ports picked now,
   * for tests that point agents, schedulers or listeners at the principal before it runs.
   * @default "os"
   */
  ports?: "os" | "reserved";
  /** Request timeout of {@link PrincipalFixture.client}. @default 5000 */
  clientTimeoutMs?: number;
  /** Process options (node flags, line listener, ready timeout, lines kept). */
  service?: ServiceTuning;
}

/** Options of one {@link PrincipalFixture.start}. */
export interface PrincipalStartOptions {
  /** Settings for this start only (e.g. an invalid value), over the fixture's. */
  env?: Readonly<Record<string, string>>;
  /** Return at once instead of waiting for `ready` (a start expected to fail). @default true */
  waitReady?: boolean;
}

/** The principal cannot be used that way (not started yet, started twice). */
export class PrincipalFixtureError extends CodedError<"PORTS_UNKNOWN" | "ALREADY_RUNNING"> {}

const portOf = (endpoint: unknown): number => Number(String(endpoint).split(":").pop());

/** One principal under test; make it with {@link startPrincipal} or {@link preparePrincipal}. */
export class PrincipalFixture {
  /** Temp HOME and working directory of the process (removed at clean-up). */
  readonly home: string;
  readonly workflowDir: string;
  readonly dbPath: string;
  /** The process running now, or null. */
  service: ServiceHandle | null = null;
  private readonly baseEnv: Record<string, string>;
  private readonly settings: Readonly<Record<string, string>>;
  private known: PrincipalPorts | null;
  private readonly clientTimeoutMs: number;
  private readonly tuning: ServiceTuning;
  private apiClient: PrincipalClient | null = null;
  private logsClient: LogClient | null = null;
  private readonly extraClients: PrincipalClient[] = [];

  private constructor(options: PrincipalOptions, home: string, ports: PrincipalPorts | null) {
    this.home = home;
    this.workflowDir = options.workflowDir ?? join(home, "workflows");
    this.dbPath = options.dbPath ?? join(home, "data", "cdktr.db");
    this.known = ports;
    this.clientTimeoutMs = options.clientTimeoutMs ?? 5000;
    this.tuning = options.service ?? {};
    this.baseEnv = {
      HOME: home,
      CDKTR_PRINCIPAL_HOST: "127.0.0.1",
      CDKTR_WORKFLOW_DIR: this.workflowDir,
      CDKTR_DB_PATH: this.dbPath,
    };
    this.settings = options.env ?? {};
    closeAtCleanup(() => this.closeClients());
  }

  /** Create the directories, write the workflows and (with `ports: "reserved"`) pick the ports. */
  static async prepare(options: PrincipalOptions = {}): Promise<PrincipalFixture> {
    const home = makeTempDir("cdktr-principal-");
    let ports: PrincipalPorts | null = null;
    if (options.ports === "reserved") {
      const [api = 0, logs = 0, publish = 0] = await freePorts(3);
      ports = { api, logs, publish };
    }
    const f = new PrincipalFixture(options, home, ports);
    mkdirSync(f.workflowDir, { recursive: true });
    if (options.copyWorkflowsFrom !== undefined) cpSync(options.copyWorkflowsFrom, f.workflowDir, { recursive: true });
    const defaults = options.copyWorkflowsFrom === undefined ? { "hello.yml": helloWorkflowYaml() } : {};
    writeWorkflows(f.workflowDir, options.workflows ?? defaults);
    return f;
  }

  /**
   * Environment of the principal process: HOME, ports (the real ones once known, else 0),
   * workflow directory, database, then the options' settings (which win).
   */
  get env(): Record<string, string> {
    const p = this.known;
    return {
      ...this.baseEnv,
      CDKTR_PRINCIPAL_PORT: String(p?.api ?? 0),
      CDKTR_LOGS_LISTENING_PORT: String(p?.logs ?? 0),
      CDKTR_LOGS_PUBLISHING_PORT: String(p?.publish ?? 0),
      ...this.settings,
    };
  }

  /**
   * The ports: reserved ones, or those of the first start (restarts reuse them).
   * @throws PrincipalFixtureError before the first start of an `"os"`-port principal.
   */
  get ports(): PrincipalPorts {
    if (this.known === null)
      throw new PrincipalFixtureError(
        "PORTS_UNKNOWN",
        "the principal's ports are known once it started: call start() first, or prepare it with ports: 'reserved'",
      );
    return this.known;
  }

  /** `tcp://127.0.0.1:<port>` of the API, log ingest and publish sockets. */
  get endpoints(): { api: string; logs: string; publish: string } {
    const p = this.ports;
    const at = (port: number): string => `tcp://127.0.0.1:${port}`;
    return { api: at(p.api), logs: at(p.logs), publish: at(p.publish) };
  }

  /** Environment that points another process (agent, scheduler, listeners, the CLI) at this principal. */
  get clientEnv(): Record<string, string> {
    const p = this.ports;
    return {
      HOME: this.home,
      CDKTR_PRINCIPAL_HOST: "127.0.0.1",
      CDKTR_PRINCIPAL_PORT: String(p.api),
      CDKTR_LOGS_LISTENING_PORT: String(p.logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(p.publish),
    };
  }

  /** A `PrincipalClient` on the API port (one per fixture, closed at clean-up; it survives restarts). */
  get client(): PrincipalClient {
    this.apiClient ??= new PrincipalClient({ port: this.ports.api, timeoutMs: this.clientTimeoutMs, env: {} });
    return this.apiClient;
  }

  /** A `LogClient` on the log-ingest port (closed at clean-up), for tests acting as an agent. */
  get logClient(): LogClient {
    this.logsClient ??= new LogClient({ endpoint: this.endpoints.logs, timeoutMs: this.clientTimeoutMs });
    return this.logsClient;
  }

  /** Another `PrincipalClient` (own connection and timeout), closed at clean-up. */
  connect(options: { timeoutMs?: number } = {}): PrincipalClient {
    const c = new PrincipalClient({
      port: this.ports.api,
      timeoutMs: options.timeoutMs ?? this.clientTimeoutMs,
      env: {},
    });
    this.extraClients.push(c);
    return c;
  }

  /**
   * Start the process (again: same ports and database) and wait for `ready`; the first start of
   * an `"os"`-port principal learns its ports from that line.
   * @throws PrincipalFixtureError when it is already running; Error with its output when it exits before `ready`.
   */
  async start(options: PrincipalStartOptions = {}): Promise<ServiceHandle> {
    if (this.service !== null && this.service.child.exitCode === null && this.service.child.signalCode === null)
      throw new PrincipalFixtureError("ALREADY_RUNNING", "the principal is running: stop() or kill() it first");
    const service = await spawnService({
      ...this.tuning,
      script: appMain("principal"),
      name: "principal",
      cwd: this.home,
      env: { ...this.env, ...options.env },
      ...(options.waitReady === undefined ? {} : { waitReady: options.waitReady }),
    });
    this.service = service;
    const endpoints = service.ready.endpoints as Record<string, unknown> | undefined;
    if (this.known === null && endpoints !== undefined)
      this.known = { api: portOf(endpoints.api), logs: portOf(endpoints.logs), publish: portOf(endpoints.publish) };
    return service;
  }

  /** SIGTERM (or `signal`) the process and resolve with its exit; SIGKILL after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs?: number): Promise<ServiceExit> {
    if (this.service === null) return { code: null, signal: null };
    const exit = await this.service.stop(signal, timeoutMs);
    return exit;
  }

  /** SIGKILL the process group now (a crash). */
  async kill(): Promise<void> {
    await this.service?.kill();
  }

  /** Write (or overwrite) workflow files: file name -> YAML. */
  writeWorkflows(files: Readonly<Record<string, string>>): void {
    writeWorkflows(this.workflowDir, files);
  }

  /** Trigger a run (`source: "test"`); resolves with its id. */
  run(workflowId: string, params?: Record<string, string | number | boolean>): Promise<string> {
    return triggerRun(this.client, workflowId, params);
  }

  /** Wait until the run is in a terminal state; resolves with the run and its tasks. */
  waitForRun(runId: string, timeoutMs?: number): Promise<RunWithTasks> {
    return waitForRun(this.client, runId, timeoutMs);
  }

  /** Every stored log line of a run (optionally one task), oldest first. */
  logs(runId: string, taskId?: string): Promise<LogLine[]> {
    return runLogs(this.client, runId, taskId);
  }

  /** Every run of `workflowId`, oldest first. */
  runs(workflowId: string, options?: WorkflowRunsOptions): Promise<RunRecord[]> {
    return workflowRuns(this.client, workflowId, options);
  }

  /** Close the fixture's clients (the process is left to {@link cleanup}). */
  closeClients(): void {
    this.apiClient?.close();
    this.logsClient?.close();
    for (const c of this.extraClients.splice(0)) c.close();
    this.apiClient = null;
    this.logsClient = null;
  }
}

/** Make a principal fixture without starting it (call `start()`); see {@link PrincipalOptions}. */
export function preparePrincipal(options: PrincipalOptions = {}): Promise<PrincipalFixture> {
  return PrincipalFixture.prepare(options);
}

/** Make a principal fixture and start it; resolves once it logged `ready`. */
export async function startPrincipal(options: PrincipalOptions = {}): Promise<PrincipalFixture> {
  const f = await PrincipalFixture.prepare(options);
  await f.start();
  return f;
}

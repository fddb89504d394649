/**
 * A real principal process for a test: its own temp HOME, workflow directory and database, ports
 * chosen by the OS (read back from its `ready` line) or reserved up front, clients ready to use
 * (with the principal's `local-operator` key: authentication is on unless `auth: "off"`), extra
 * keys of any role, and restarts on the same ports and database.
 */
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  LogClient,
  PrincipalClient,
  type ClientKey,
  type KeyRole,
  type LogLine,
  type RunRecord,
} from "@cdktr/protocol";
import { freePorts, makeTempDir, spawnService, type ServiceExit, type ServiceHandle } from "@cdktr/test-base";
import { appMain, type ServiceTuning } from "./apps.js";
import { closeAtCleanup } from "./cleanup.js";
import { keysDirOf, provisionLocalKeys, readClientKey, writeClientKey } from "./principal-keys.js";
import {
  PrincipalFixtureError,
  type CreateKeyOptions,
  type CreatedKey,
  type PrincipalOptions,
  type PrincipalPorts,
  type PrincipalStartOptions,
} from "./principal-options.js";
import {
  runLogs,
  triggerRun,
  waitForRun,
  workflowRuns,
  type RunWithTasks,
  type WorkflowRunsOptions,
} from "./run-queries.js";
import { helloWorkflowYaml, writeWorkflows } from "./workflow-yaml.js";

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
  private readonly extraClients: (PrincipalClient | LogClient)[] = [];
  /** Whether the principal runs with authentication (`auth` option). */
  readonly auth: boolean;
  /** The principal's keys directory (`CDKTR_KEYS_DIR` of its settings, else `<home>/.cdktr/keys`). */
  readonly keysDir: string;
  private readonly keys = new Map<string, ClientKey>();

  private constructor(options: PrincipalOptions, home: string, ports: PrincipalPorts | null) {
    this.home = home;
    this.workflowDir = options.workflowDir ?? join(home, "workflows");
    this.dbPath = options.dbPath ?? join(home, "data", "cdktr.db");
    this.known = ports;
    this.clientTimeoutMs = options.clientTimeoutMs ?? 5000;
    this.tuning = options.service ?? {};
    this.auth = options.auth !== "off";
    this.baseEnv = {
      HOME: home,
      CDKTR_PRINCIPAL_HOST: "127.0.0.1",
      CDKTR_WORKFLOW_DIR: this.workflowDir,
      CDKTR_DB_PATH: this.dbPath,
      ...(this.auth ? {} : { CDKTR_AUTH: "off" }),
    };
    this.settings = options.env ?? {};
    this.keysDir = keysDirOf(home, this.settings.CDKTR_KEYS_DIR);
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
    if (ports !== null && f.auth) f.provisionKeys();
    return f;
  }

  /**
   * Write the key files the principal would make on its first start (its pair and the local
   * client keys), so that processes started before it find their keys; the principal enrols the
   * local keys when it starts. Files that exist are kept.
   */
  provisionKeys(): void {
    provisionLocalKeys(this.keysDir);
  }

  /**
   * The client key `name` of the principal's keys directory (`local-operator`, `local-agent`,
   * `local-scheduler`, `local-listeners`, or one written there by a test); null with `auth: "off"`.
   * @throws PrincipalFixtureError NO_KEY before the principal made its keys (start it first, or
   *   prepare it with `ports: "reserved"`).
   */
  key(name = "local-operator"): ClientKey | null {
    if (!this.auth) return null;
    let key = this.keys.get(name);
    if (key === undefined) {
      key = readClientKey(this.keysDir, name);
      this.keys.set(name, key);
    }
    return key;
  }

  /** The principal's public key (what every client pins); null with `auth: "off"`. */
  get publicKey(): string | null {
    return this.key()?.principalPublicKey ?? null;
  }

  /**
   * Make a client key of `role`: a fresh pair written to a key file under `<home>/client-keys/`
   * (pinning this principal's key) and, unless `enroll: false`, enrolled through the operator
   * client. Resolves with the file's path (for `CDKTR_KEY_FILE`) and the key (for clients).
   */
  async createKey(name: string, role: KeyRole, options: CreateKeyOptions = {}): Promise<CreatedKey> {
    const principalPublicKey = this.publicKey;
    if (principalPublicKey === null)
      throw new PrincipalFixtureError("NO_KEY", "this principal runs with auth: 'off': it has no keys");
    const created = writeClientKey(this.home, name, role, options, principalPublicKey);
    if (options.enroll !== false) {
      await this.client.request("enrollKey", {
        name,
        role,
        publicKey: created.key.publicKey,
        ...(options.scope === undefined ? {} : { scope: options.scope }),
        ...(options.workflows === undefined ? {} : { workflows: options.workflows }),
      });
    }
    return created;
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

  /**
   * Environment that points another process (agent, scheduler, listeners, the CLI) at this
   * principal: its HOME (where the local keys are), its keys directory when set, its ports, and
   * `CDKTR_AUTH=off` with `auth: "off"`.
   */
  get clientEnv(): Record<string, string> {
    const p = this.ports;
    const keysDir = this.settings.CDKTR_KEYS_DIR;
    return {
      HOME: this.home,
      CDKTR_PRINCIPAL_HOST: "127.0.0.1",
      CDKTR_PRINCIPAL_PORT: String(p.api),
      CDKTR_LOGS_LISTENING_PORT: String(p.logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(p.publish),
      ...(keysDir === undefined ? {} : { CDKTR_KEYS_DIR: this.keysDir }),
      ...(this.auth ? {} : { CDKTR_AUTH: "off" }),
    };
  }

  /**
   * A `PrincipalClient` on the API port with the `local-operator` key (one per fixture, closed at
   * clean-up; it survives restarts). It talks to this principal only (`followLeader: false`): a
   * standby's `NOT_LEADER` reaches the test.
   */
  get client(): PrincipalClient {
    this.apiClient ??= new PrincipalClient({
      port: this.ports.api,
      timeoutMs: this.clientTimeoutMs,
      env: {},
      key: this.key(),
      followLeader: false,
    });
    return this.apiClient;
  }

  /** A `LogClient` on the log-ingest port with the `local-operator` key (closed at clean-up), for tests acting as an agent. */
  get logClient(): LogClient {
    this.logsClient ??= new LogClient({
      endpoint: this.endpoints.logs,
      timeoutMs: this.clientTimeoutMs,
      env: {},
      key: this.key(),
    });
    return this.logsClient;
  }

  /**
   * Another `PrincipalClient` (own connection and timeout), closed at clean-up, to this principal only; with
   * `local-operator` unless `key` is given (null: plaintext).
   */
  connect(options: { timeoutMs?: number; key?: ClientKey | null } = {}): PrincipalClient {
    const c = new PrincipalClient({
      port: this.ports.api,
      timeoutMs: options.timeoutMs ?? this.clientTimeoutMs,
      env: {},
      key: options.key !== undefined ? options.key : this.key(),
      followLeader: false,
    });
    this.extraClients.push(c);
    return c;
  }

  /** Another `LogClient` (own connection), closed at clean-up; with `local-operator` unless `key` is given. */
  connectLogs(options: { timeoutMs?: number; key?: ClientKey | null } = {}): LogClient {
    const c = new LogClient({
      endpoint: this.endpoints.logs,
      timeoutMs: options.timeoutMs ?? this.clientTimeoutMs,
      env: {},
      key: options.key !== undefined ? options.key : this.key(),
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
      ...(options.nodeFlags === undefined ? {} : { nodeFlags: [...options.nodeFlags] }),
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

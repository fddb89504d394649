/**
 * A real principal process for a test: its own temp HOME, workflow directory and database, ports
 * chosen by the OS (read back from its `ready` line) or reserved up front, clients ready to use
 * (with the principal's `local-operator` key: authentication is on unless `auth: "off"`), extra
 * keys of any role, and restarts on the same ports and database.
 */
import { cpSync, existsSync, mkdirSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import {
  CodedError,
  LogClient,
  PRINCIPAL_KEY_FILE,
  PrincipalClient,
  clientKeyOf,
  generateKeyPair,
  readKeyFile,
  writeKeyFile,
  type ClientKey,
  type KeyRole,
  type LogLine,
  type RunRecord,
} from "@cdktr/protocol";
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
  /**
   * `"on"`: the principal makes its keys in `<home>/.cdktr/keys` on first start (with `ports:
   * "reserved"` the fixture writes them up front instead, so that processes started before the
   * principal find theirs) and the fixture's clients use `local-operator`; `"off"`: `CDKTR_AUTH=off`
   * for the principal and every process and client of the fixture (plaintext).
   * @default "on"
   */
  auth?: "on" | "off";
}

/** Options of {@link PrincipalFixture.createKey}. */
export interface CreateKeyOptions {
  /** Idempotency scope. @default the name */
  scope?: string;
  /** Workflows the key may trigger. @default any */
  workflows?: string[];
  /** Enrol it with the principal (which must be running). @default true */
  enroll?: boolean;
}

/** A client key made by {@link PrincipalFixture.createKey}: its key file and the key itself. */
export interface CreatedKey {
  /** The key file (0600), for `CDKTR_KEY_FILE`. */
  path: string;
  key: ClientKey;
}

/** The client keys a principal makes on first start (apps/principal's `auth/local-keys.ts`). */
const LOCAL_KEYS: readonly { name: string; role: KeyRole }[] = [
  { name: "local-operator", role: "operator" },
  { name: "local-agent", role: "agent" },
  { name: "local-scheduler", role: "scheduler" },
  { name: "local-listeners", role: "trigger" },
];

/** Options of one {@link PrincipalFixture.start}. */
export interface PrincipalStartOptions {
  /** Settings for this start only (e.g. an invalid value), over the fixture's. */
  env?: Readonly<Record<string, string>>;
  /** Return at once instead of waiting for `ready` (a start expected to fail). @default true */
  waitReady?: boolean;
}

/** The principal cannot be used that way (not started yet, started twice). */
export class PrincipalFixtureError extends CodedError<"PORTS_UNKNOWN" | "ALREADY_RUNNING" | "NO_KEY"> {}

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
    const dir = this.settings.CDKTR_KEYS_DIR;
    this.keysDir =
      dir === undefined || dir === ""
        ? join(home, ".cdktr", "keys")
        : dir.startsWith("~/")
          ? join(home, dir.slice(2))
          : isAbsolute(dir)
            ? dir
            : join(home, dir);
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
    const principalFile = join(this.keysDir, PRINCIPAL_KEY_FILE);
    if (!existsSync(principalFile)) {
      const pair = generateKeyPair();
      writeKeyFile(principalFile, {
        name: "principal",
        role: "principal",
        ...pair,
        principalPublicKey: pair.publicKey,
      });
    }
    const principal = readKeyFile(principalFile);
    for (const { name, role } of LOCAL_KEYS) {
      const path = join(this.keysDir, `${name}.json`);
      if (existsSync(path)) continue;
      writeKeyFile(path, {
        name,
        role,
        scope: name,
        workflows: null,
        ...generateKeyPair(),
        principalPublicKey: principal.publicKey,
      });
    }
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
      const path = join(this.keysDir, `${name}.json`);
      if (!existsSync(path)) {
        throw new PrincipalFixtureError(
          "NO_KEY",
          `no key file ${path}: the principal makes its keys on first start (start it first, or prepare it with ports: "reserved")`,
        );
      }
      key = clientKeyOf(readKeyFile(path));
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
    const pair = generateKeyPair();
    const path = join(this.home, "client-keys", `${name}.json`);
    writeKeyFile(path, {
      name,
      role,
      scope: options.scope ?? name,
      workflows: options.workflows ?? null,
      ...pair,
      principalPublicKey,
    });
    if (options.enroll !== false) {
      await this.client.request("enrollKey", {
        name,
        role,
        publicKey: pair.publicKey,
        ...(options.scope === undefined ? {} : { scope: options.scope }),
        ...(options.workflows === undefined ? {} : { workflows: options.workflows }),
      });
    }
    return { path, key: { name, ...pair, principalPublicKey } };
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
   * clean-up; it survives restarts).
   */
  get client(): PrincipalClient {
    this.apiClient ??= new PrincipalClient({
      port: this.ports.api,
      timeoutMs: this.clientTimeoutMs,
      env: {},
      key: this.key(),
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
   * Another `PrincipalClient` (own connection and timeout), closed at clean-up; with
   * `local-operator` unless `key` is given (null: plaintext).
   */
  connect(options: { timeoutMs?: number; key?: ClientKey | null } = {}): PrincipalClient {
    const c = new PrincipalClient({
      port: this.ports.api,
      timeoutMs: options.timeoutMs ?? this.clientTimeoutMs,
      env: {},
      key: options.key !== undefined ? options.key : this.key(),
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

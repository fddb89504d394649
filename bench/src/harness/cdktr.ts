/**
 * Starting our real built processes (apps/principal, apps/agent, apps/scheduler dist/main.js)
 * with their own temp HOME, data dirs, db and free ports, configured through CDKTR_* env vars.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PrincipalClient, LogClient } from "@cdktr/protocol";
import { freePort } from "@cdktr/test-utils";
import { makeTempDir } from "./fs.js";
import { startProcess, type LogRecord, type Proc } from "./proc.js";

/** The repository root (bench/dist/harness -> ../../..). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** Entry points of our apps. */
export const APP_MAIN = {
  principal: join(REPO_ROOT, "apps/principal/dist/main.js"),
  agent: join(REPO_ROOT, "apps/agent/dist/main.js"),
  scheduler: join(REPO_ROOT, "apps/scheduler/dist/main.js"),
} as const;
export type AppName = keyof typeof APP_MAIN;

/** Why the given apps cannot run yet (their dist/main.js is missing), or null. */
export function missingApps(...apps: AppName[]): string | null {
  const missing = apps.filter((a) => !existsSync(APP_MAIN[a]));
  return missing.length === 0 ? null : `apps/${missing.join(", apps/")} dist/main.js not built`;
}

/** A running principal with clients connected to it. */
export interface PrincipalHandle {
  proc: Proc;
  home: string;
  workflowDir: string;
  dbPath: string;
  apiPort: number;
  logsPort: number;
  publishPort: number;
  /** Env that points a client process (agent, scheduler) at this principal. */
  clientEnv: Record<string, string>;
  client: PrincipalClient;
  logClient: LogClient;
  stop(): Promise<void>;
}

/** Options of {@link startPrincipal}. */
export interface PrincipalOptions {
  workflowDir: string;
  /** Reuse a db (e.g. for restart measurements). @default a fresh file in a temp dir */
  dbPath?: string;
  env?: Record<string, string>;
  nodeFlags?: string[];
  readyTimeoutMs?: number;
  onLine?: (line: string, json: LogRecord | undefined, at: number) => void;
  /** Client request timeout. @default 30000 */
  clientTimeoutMs?: number;
}

/** Start apps/principal/dist/main.js and connect a PrincipalClient and a LogClient to it. */
export async function startPrincipal(opts: PrincipalOptions): Promise<PrincipalHandle> {
  const home = makeTempDir("principal-home");
  const dbPath = opts.dbPath ?? join(makeTempDir("db"), "cdktr.db");
  const [apiPort, logsPort, publishPort] = [await freePort(), await freePort(), await freePort()];
  const env: Record<string, string> = {
    HOME: home,
    CDKTR_PRINCIPAL_HOST: "127.0.0.1",
    CDKTR_PRINCIPAL_PORT: String(apiPort),
    CDKTR_LOGS_LISTENING_PORT: String(logsPort),
    CDKTR_LOGS_PUBLISHING_PORT: String(publishPort),
    CDKTR_WORKFLOW_DIR: opts.workflowDir,
    CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: "3600",
    CDKTR_DB_PATH: dbPath,
    ...opts.env,
  };
  const startOpts: Parameters<typeof startProcess>[0] = {
    name: "principal",
    args: [APP_MAIN.principal],
    env,
    cwd: home,
    readyTimeoutMs: opts.readyTimeoutMs ?? 120_000,
  };
  if (opts.nodeFlags !== undefined) startOpts.nodeFlags = opts.nodeFlags;
  if (opts.onLine !== undefined) startOpts.onLine = opts.onLine;
  const proc = await startProcess(startOpts);
  const clientEnv = {
    CDKTR_PRINCIPAL_HOST: "127.0.0.1",
    CDKTR_PRINCIPAL_PORT: String(apiPort),
    CDKTR_LOGS_LISTENING_PORT: String(logsPort),
    CDKTR_LOGS_PUBLISHING_PORT: String(publishPort),
  };
  const client = new PrincipalClient({ host: "127.0.0.1", port: apiPort, timeoutMs: opts.clientTimeoutMs ?? 30_000 });
  const logClient = new LogClient({ endpoint: `tcp://127.0.0.1:${logsPort}` });
  return {
    proc,
    home,
    workflowDir: opts.workflowDir,
    dbPath,
    apiPort,
    logsPort,
    publishPort,
    clientEnv,
    client,
    logClient,
    async stop() {
      client.close();
      logClient.close();
      await proc.stop("SIGTERM", 15_000);
    },
  };
}

/** Start apps/agent/dist/main.js against `principal`. */
export async function startAgent(
  principal: PrincipalHandle,
  opts: { concurrency: number; id?: string; env?: Record<string, string>; nodeFlags?: string[] },
): Promise<Proc> {
  const home = makeTempDir("agent-home");
  const dataDir = join(home, "data");
  mkdirSync(dataDir, { recursive: true });
  return startProcess({
    name: "agent",
    ...(opts.nodeFlags !== undefined ? { nodeFlags: opts.nodeFlags } : {}),
    args: [APP_MAIN.agent],
    cwd: home,
    env: {
      HOME: home,
      ...principal.clientEnv,
      CDKTR_AGENT_ID: opts.id ?? "bench-agent",
      CDKTR_AGENT_MAX_CONCURRENCY: String(opts.concurrency),
      CDKTR_AGENT_DATA_DIR: dataDir,
      ...opts.env,
    },
  });
}

/** Start apps/scheduler/dist/main.js against `principal`. */
export async function startScheduler(
  principal: PrincipalHandle,
  opts: {
    env?: Record<string, string>;
    nodeFlags?: string[];
    onLine?: (line: string, json: LogRecord | undefined, at: number) => void;
  },
): Promise<Proc> {
  const home = makeTempDir("scheduler-home");
  const startOpts: Parameters<typeof startProcess>[0] = {
    name: "scheduler",
    ...(opts.nodeFlags !== undefined ? { nodeFlags: opts.nodeFlags } : {}),
    args: [APP_MAIN.scheduler],
    cwd: home,
    env: {
      HOME: home,
      ...principal.clientEnv,
      CDKTR_SCHEDULER_REFRESH_S: "3600",
      ...opts.env,
    },
  };
  if (opts.onLine !== undefined) startOpts.onLine = opts.onLine;
  return startProcess(startOpts);
}

/**
 * Helpers of the principal's integration tests: spawn the built `dist/main.js` with its own temp
 * HOME, workflow directory, database and free ports, and talk to it with the real clients.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { LogClient, PrincipalClient } from "@cdktr/protocol";
import { freePorts, makeTempDir, spawnService, type ServiceHandle } from "@cdktr/test-utils";

/** Path of the built entry point. */
export const MAIN = fileURLToPath(new URL("../main.js", import.meta.url));

/** A simple two-task workflow. */
export const HELLO_YAML = `name: Hello
tasks:
  hello:
    name: Say hello
    config: !Subprocess
      cmd: echo
      args: ["hello"]
  goodbye:
    name: Say goodbye
    depends: [hello]
    config: !Subprocess
      cmd: echo
      args: ["goodbye"]
`;

/** A one-task workflow with extra top-level YAML (`extra` is inserted before `tasks:`). */
export function workflowYaml(extra = ""): string {
  return `name: Test\n${extra}${extra.endsWith("\n") || extra === "" ? "" : "\n"}tasks:\n  only:\n    name: Only\n    config: !Subprocess\n      cmd: "true"\n`;
}

/** Files, directories and ports of one principal under test. */
export interface PrincipalFixture {
  home: string;
  workflowDir: string;
  dbPath: string;
  ports: { api: number; logs: number; publish: number };
  env: Record<string, string>;
}

/** Create a temp HOME with a workflow directory holding `workflows` (file name -> YAML). */
export async function makeFixture(
  workflows: Record<string, string> = { "hello.yml": HELLO_YAML },
  env: Record<string, string> = {},
): Promise<PrincipalFixture> {
  const home = makeTempDir("cdktr-principal-");
  const workflowDir = join(home, "workflows");
  mkdirSync(workflowDir, { recursive: true });
  for (const [name, text] of Object.entries(workflows)) {
    mkdirSync(join(workflowDir, name, ".."), { recursive: true });
    writeFileSync(join(workflowDir, name), text);
  }
  const [api, logs, publish] = await freePorts(3);
  const dbPath = join(home, "data", "cdktr.db");
  return {
    home,
    workflowDir,
    dbPath,
    ports: { api: api ?? 0, logs: logs ?? 0, publish: publish ?? 0 },
    env: {
      HOME: home,
      CDKTR_PRINCIPAL_PORT: String(api),
      CDKTR_LOGS_LISTENING_PORT: String(logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(publish),
      CDKTR_WORKFLOW_DIR: workflowDir,
      CDKTR_DB_PATH: dbPath,
      CDKTR_LOG_LEVEL: "debug",
      ...env,
    },
  };
}

/** Spawn the principal for a fixture and wait for `ready`. */
export function spawnPrincipal(f: PrincipalFixture, env: Record<string, string> = {}): Promise<ServiceHandle> {
  return spawnService({ script: MAIN, name: "principal", cwd: f.home, env: { ...f.env, ...env } });
}

/** Clients connected to a fixture's ports. */
export function clients(
  f: PrincipalFixture,
  timeoutMs = 5000,
): { api: PrincipalClient; logs: LogClient; close(): void } {
  const api = new PrincipalClient({ host: "127.0.0.1", port: f.ports.api, timeoutMs, env: {} });
  const logs = new LogClient({ endpoint: `tcp://127.0.0.1:${f.ports.logs}`, timeoutMs });
  return {
    api,
    logs,
    close() {
      api.close();
      logs.close();
    },
  };
}

/** Row counts straight from the database file (read-only connection). */
export function countRows(dbPath: string, table: string, where = ""): number {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table} ${where}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** A registered fake agent driving the real protocol with a `PrincipalClient`. */
export async function registerAgent(
  api: PrincipalClient,
  agentId: string,
  labels: string[] = [],
  capacity = 4,
): Promise<void> {
  await api.registerAgent({ agentId, host: "test", capacity, labels, version: "test", runningRuns: [] });
}

/**
 * Shared fixtures of the built-in listeners' integration tests: a real principal process with
 * its own temp HOME, workflow directory, database and free ports; the real RabbitMQ/PostgreSQL
 * of the machine (a missing server fails the test when `CI` is set, else skips it).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PrincipalClient, type RunRecord } from "@cdktr/protocol";
import { freePorts, makeTempDir, spawnService, waitFor, type ServiceHandle } from "@cdktr/test-utils";

/** Built entry point of the principal. */
export const PRINCIPAL_MAIN = fileURLToPath(new URL("../../../../apps/principal/dist/main.js", import.meta.url));
/** Built entry point of the agent. */
export const AGENT_MAIN = fileURLToPath(new URL("../../../../apps/agent/dist/main.js", import.meta.url));

/** A workflow declaring the optional string params used by the tests. */
export function paramWorkflow(name: string, params: string[] = ["date", "paths", "n"]): string {
  const p = params.map((n) => `  ${n}: {type: string, required: false}`).join("\n");
  return `name: ${name}\nparams:\n${p}\ntasks:\n  only:\n    name: Only\n    config: !Subprocess\n      cmd: "true"\n      args: []\n`;
}

/** One principal under test. */
export interface PrincipalFixture {
  home: string;
  workflowDir: string;
  port: number;
  env: Record<string, string>;
  handle: ServiceHandle | null;
  client: PrincipalClient;
  /** (Re)start the process on the same ports and database. */
  start(): Promise<ServiceHandle>;
  /** Stop the process (SIGTERM). */
  stop(): Promise<void>;
  /** Runs of `workflowId`, oldest first. */
  runs(workflowId: string): Promise<RunRecord[]>;
  close(): Promise<void>;
}

/** Create the fixture (files, ports, client); call `start()` to spawn the principal. */
export async function principalFixture(workflows: Record<string, string>): Promise<PrincipalFixture> {
  const home = makeTempDir("cdktr-listeners-");
  const workflowDir = join(home, "workflows");
  mkdirSync(workflowDir, { recursive: true });
  for (const [file, text] of Object.entries(workflows)) writeFileSync(join(workflowDir, file), text);
  const [api, logs, pub] = await freePorts(3);
  const port = api ?? 0;
  const env = {
    HOME: home,
    CDKTR_PRINCIPAL_PORT: String(port),
    CDKTR_LOGS_LISTENING_PORT: String(logs),
    CDKTR_LOGS_PUBLISHING_PORT: String(pub),
    CDKTR_WORKFLOW_DIR: workflowDir,
    CDKTR_DB_PATH: join(home, "cdktr.db"),
  };
  const client = new PrincipalClient({ host: "127.0.0.1", port, timeoutMs: 3000 });
  const f: PrincipalFixture = {
    home,
    workflowDir,
    port,
    env,
    handle: null,
    client,
    async start() {
      if (!existsSync(PRINCIPAL_MAIN)) throw new Error(`build the principal first: ${PRINCIPAL_MAIN} is missing`);
      f.handle = await spawnService({ script: PRINCIPAL_MAIN, name: "principal", cwd: home, env });
      return f.handle;
    },
    async stop() {
      if (f.handle !== null) await f.handle.stop();
      f.handle = null;
    },
    async runs(workflowId) {
      const reply = await client.listRuns({ workflowId, order: "asc", limit: 1000 });
      return reply.runs;
    },
    async close() {
      client.close();
      await f.stop();
    },
  };
  return f;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function reachable(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/**
 * `undefined` when the server on `port` is up; otherwise a skip message, or an exception when
 * the `CI` variable is set (CI must have the server).
 */
export async function requireServer(name: string, port: number): Promise<string | undefined> {
  if (await reachable(port)) return undefined;
  const msg = `${name} is not reachable on 127.0.0.1:${port}`;
  if (process.env.CI !== undefined && process.env.CI !== "")
    throw new Error(`${msg} (CI is set: the server is required)`);
  return `${msg}: skipped (start it, or set CI to make this a failure)`;
}

/** Wait until `workflowId` has exactly `n` runs, then (after a settle delay) check it still has `n`. */
export async function expectRunCount(
  f: PrincipalFixture,
  workflowId: string,
  n: number,
  settleMs = 300,
): Promise<RunRecord[]> {
  await waitFor(async () => (await f.runs(workflowId)).length >= n, {
    timeoutMs: 10_000,
    what: `${n} run(s) of ${workflowId}`,
  });
  await new Promise((r) => setTimeout(r, settleMs));
  const runs = await f.runs(workflowId);
  if (runs.length !== n)
    throw new Error(
      `expected ${n} run(s) of ${workflowId}, got ${runs.length}: ${JSON.stringify(runs.map((r) => r.params))}`,
    );
  return runs;
}

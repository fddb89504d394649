/**
 * The real processes the doc tests run examples against: a principal on free ports with its own
 * temp HOME, workflow directory and SQLite file, and an agent pointed at it. The whole set-up of
 * the doc tests is here, so that it can be swapped for `@cdktr/test-utils`' shared fixture.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PrincipalClient } from "@cdktr/protocol";
import { freePorts, killAllServices, makeTempDir, spawnService, type ServiceHandle } from "@cdktr/test-utils";

const clients = new Set<PrincipalClient>();

/** The built entry point (`dist/main.js`) of an app, found through its package name. */
export function appMain(pkg: "@cdktr/principal" | "@cdktr/agent"): string {
  return fileURLToPath(new URL("./main.js", import.meta.resolve(pkg)));
}

/** A running principal. */
export interface DocPrincipal {
  /** `CDKTR_*` variables pointing a client at it (host, API, log and publish ports). */
  env: Record<string, string>;
  port: number;
  home: string;
  workflowDir: string;
  /** A client of its API (closed by {@link DocPrincipal.stop}). */
  client: PrincipalClient;
  service: ServiceHandle;
  stop(): Promise<void>;
}

/**
 * Start a principal serving `workflows` (relative path -> YAML text, e.g. `etl/daily.yml`).
 * Stop it with `stop()`, or {@link cleanUp} after the test.
 */
export async function startPrincipal(workflows: Record<string, string>): Promise<DocPrincipal> {
  const home = makeTempDir("cdktr-docs-");
  const workflowDir = join(home, "workflows");
  mkdirSync(workflowDir);
  for (const [file, text] of Object.entries(workflows)) {
    mkdirSync(dirname(join(workflowDir, file)), { recursive: true });
    writeFileSync(join(workflowDir, file), text);
  }
  const [port = 0, logsPort = 0, publishPort = 0] = await freePorts(3);
  const env = {
    CDKTR_PRINCIPAL_HOST: "127.0.0.1",
    CDKTR_PRINCIPAL_PORT: String(port),
    CDKTR_LOGS_LISTENING_PORT: String(logsPort),
    CDKTR_LOGS_PUBLISHING_PORT: String(publishPort),
  };
  const service = await spawnService({
    script: appMain("@cdktr/principal"),
    name: "principal",
    cwd: home,
    env: { ...env, HOME: home, CDKTR_WORKFLOW_DIR: workflowDir, CDKTR_DB_PATH: join(home, "cdktr.db") },
  });
  const client = new PrincipalClient({ port });
  clients.add(client);
  return {
    env,
    port,
    home,
    workflowDir,
    client,
    service,
    async stop() {
      client.close();
      clients.delete(client);
      const { code } = await service.stop("SIGTERM");
      if (code !== 0) throw new Error(`principal exited with ${String(code)}:\n${service.lines.join("\n")}`);
    },
  };
}

/** Start an agent executing the runs of `principal` (fetch long-polls kept short for tests). */
export async function startAgent(principal: DocPrincipal): Promise<ServiceHandle> {
  const home = makeTempDir("cdktr-docs-agent-");
  return spawnService({
    script: appMain("@cdktr/agent"),
    name: "agent",
    cwd: home,
    env: {
      ...principal.env,
      HOME: home,
      CDKTR_AGENT_ID: "docs-agent",
      CDKTR_AGENT_DATA_DIR: join(home, "agent-data"),
      CDKTR_AGENT_FETCH_WAIT_MS: "1000",
    },
  });
}

/** After each test: close every client {@link startPrincipal} opened and kill every process left. */
export async function cleanUp(): Promise<void> {
  for (const c of clients) c.close();
  clients.clear();
  await killAllServices();
}

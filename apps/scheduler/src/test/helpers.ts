/**
 * Helpers of the scheduler's multi-process tests: a real principal (`apps/principal/dist/main.js`)
 * with its own temp HOME, workflow directory, database and free ports, and scheduler processes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PrincipalClient, type RunRecord } from "@cdktr/protocol";
import { freePorts, makeTempDir, spawnService, type ServiceHandle } from "@cdktr/test-utils";

/** The scheduler's built entry point. */
export const SCHEDULER_MAIN = fileURLToPath(new URL("../main.js", import.meta.url));
/** The principal's built entry point (built by `turbo run build`). */
export const PRINCIPAL_MAIN = fileURLToPath(new URL("../../../principal/dist/main.js", import.meta.url));

/** A one-task workflow YAML with the given cron. */
export function cronYaml(cron: string, extra = ""): string {
  return `name: Cron test\ncron: "${cron}"\n${extra}tasks:\n  only:\n    name: Only\n    config: !Subprocess\n      cmd: "true"\n`;
}

/** Temp dirs, ports and environment of one principal (and the schedulers pointed at it). */
export interface Fixture {
  home: string;
  workflowDir: string;
  env: Record<string, string>;
  ports: { api: number; logs: number; publish: number };
  write(file: string, yaml: string): void;
}

/** Create a fixture with `workflows` (file name -> YAML). */
export async function makeFixture(workflows: Record<string, string>): Promise<Fixture> {
  const home = makeTempDir("cdktr-scheduler-");
  const workflowDir = join(home, "workflows");
  mkdirSync(workflowDir, { recursive: true });
  const write = (file: string, yaml: string): void => writeFileSync(join(workflowDir, file), yaml);
  for (const [file, yaml] of Object.entries(workflows)) write(file, yaml);
  const [api = 0, logs = 0, publish = 0] = await freePorts(3);
  return {
    home,
    workflowDir,
    ports: { api, logs, publish },
    write,
    env: {
      HOME: home,
      CDKTR_PRINCIPAL_HOST: "127.0.0.1",
      CDKTR_PRINCIPAL_PORT: String(api),
      CDKTR_LOGS_LISTENING_PORT: String(logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(publish),
      CDKTR_WORKFLOW_DIR: workflowDir,
      CDKTR_DB_PATH: join(home, "data", "cdktr.db"),
      // the announcement is what is tested, not the periodic rescans
      CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: "3600",
      CDKTR_SCHEDULER_REFRESH_S: "3600",
      CDKTR_LOG_LEVEL: "debug",
    },
  };
}

/** Start the principal of a fixture. */
export function spawnPrincipal(f: Fixture): Promise<ServiceHandle> {
  return spawnService({ script: PRINCIPAL_MAIN, name: "principal", cwd: f.home, env: f.env });
}

/** Start a scheduler process pointed at the fixture's principal. */
export function spawnScheduler(
  f: Fixture,
  name = "scheduler",
  env: Record<string, string> = {},
): Promise<ServiceHandle> {
  return spawnService({ script: SCHEDULER_MAIN, name, cwd: f.home, env: { ...f.env, ...env } });
}

/** A client of the fixture's principal. */
export function client(f: Fixture): PrincipalClient {
  return new PrincipalClient({ host: "127.0.0.1", port: f.ports.api, timeoutMs: 5000 });
}

/** Every run of `workflowId` that carries a `scheduledFor`, oldest occurrence first. */
export async function scheduledRuns(api: PrincipalClient, workflowId: string): Promise<RunRecord[]> {
  const out: RunRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.listRuns({
      workflowId,
      scheduledOnly: true,
      order: "asc",
      limit: 1000,
      ...(cursor === undefined ? {} : { cursor }),
    });
    out.push(...page.runs);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

/** Whole seconds from `from` to `to` inclusive, as ISO strings. */
export function everySecond(from: number, to: number): string[] {
  const out: string[] = [];
  for (let t = Math.ceil(from / 1000) * 1000; t <= to; t += 1000) out.push(new Date(t).toISOString());
  return out;
}

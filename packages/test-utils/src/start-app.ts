/**
 * Agents, schedulers and listener runners as real processes pointed at a {@link PrincipalFixture}
 * (its HOME as theirs, its ports in their environment), killed by pid at clean-up.
 */
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { spawnService, type ServiceHandle } from "@cdktr/test-base";
import { appMain, type AppName, type ServiceTuning } from "./apps.js";
import type { PrincipalFixture } from "./principal-fixture.js";

/** Options of {@link startAgent}, {@link startScheduler} and {@link startListeners}. */
export interface AppOptions {
  /** Settings of the process (`CDKTR_*`), over the fixture's. */
  env?: Readonly<Record<string, string>>;
  /** Name in messages. @default the app */
  name?: string;
  /** Return at once instead of waiting for `ready` (a start expected to fail). @default true */
  waitReady?: boolean;
  /** Working directory. @default the principal's home */
  cwd?: string;
  /** Process options (node flags, line listener, ready timeout, lines kept). */
  service?: ServiceTuning;
}

/** Options of {@link startAgent}. */
export interface AgentOptions extends AppOptions {
  /** `CDKTR_AGENT_DATA_DIR`; reuse one to restart "the same" agent. @default a fresh directory in the principal's home */
  dataDir?: string;
}

function startApp(
  app: AppName,
  principal: PrincipalFixture,
  env: Record<string, string>,
  options: AppOptions,
): Promise<ServiceHandle> {
  return spawnService({
    ...options.service,
    script: appMain(app),
    name: options.name ?? app,
    cwd: options.cwd ?? principal.home,
    env: { ...principal.clientEnv, ...env, ...options.env },
    ...(options.waitReady === undefined ? {} : { waitReady: options.waitReady }),
  });
}

/** Start an agent on `principal` (waits for its `ready` line unless told not to). */
export function startAgent(principal: PrincipalFixture, options: AgentOptions = {}): Promise<ServiceHandle> {
  const dataDir = options.dataDir ?? mkdtempSync(join(principal.home, "agent-"));
  return startApp("agent", principal, { CDKTR_AGENT_DATA_DIR: dataDir }, options);
}

/** Start a scheduler on `principal` (waits for its `ready` line unless told not to). */
export function startScheduler(principal: PrincipalFixture, options: AppOptions = {}): Promise<ServiceHandle> {
  return startApp("scheduler", principal, {}, options);
}

/**
 * Start the listener runner with the config file `config` (`CDKTR_LISTENERS_CONFIG`, relative to
 * its working directory) on `principal`.
 */
export function startListeners(
  principal: PrincipalFixture,
  config: string,
  options: AppOptions = {},
): Promise<ServiceHandle> {
  return startApp("listeners", principal, { CDKTR_LISTENERS_CONFIG: config }, options);
}

/** A dashboard process started by {@link startDashboard}. */
export interface DashboardHandle {
  service: ServiceHandle;
  /** `http://127.0.0.1:<port>` from its `ready` line. */
  url: string;
  /** The tokens file it reads (`CDKTR_DASHBOARD_TOKENS_FILE`). */
  tokensFile: string;
}

/**
 * Start the dashboard on `principal` on a free port (`CDKTR_DASHBOARD_PORT=0`) with its
 * `local-dashboard` key and a tokens file in the principal's home; waits for its `ready` line.
 */
export async function startDashboard(principal: PrincipalFixture, options: AppOptions = {}): Promise<DashboardHandle> {
  const tokensFile = options.env?.CDKTR_DASHBOARD_TOKENS_FILE ?? join(principal.home, "dashboard-tokens.json");
  const service = await startApp(
    "dashboard",
    principal,
    { CDKTR_DASHBOARD_PORT: "0", CDKTR_DASHBOARD_TOKENS_FILE: tokensFile, CDKTR_LOG_FORMAT: "json" },
    options,
  );
  return { service, url: typeof service.ready.url === "string" ? service.ready.url : "", tokensFile };
}

import { pathToFileURL } from "node:url";
import { errorMessage } from "@cdktr/protocol";
import type { CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { appMainPath, STARTABLE_APPS, type StartableApp } from "../start/apps.js";
import { Supervisor } from "../start/supervisor.js";

/** How long `start all` waits for each app's `ready` line. */
const READY_TIMEOUT_MS = 60_000;

/**
 * `cdktr start <app>`: run one app in the foreground, in this process (its own `main` owns
 * signals, the `ready` line and the exit code), or `all` of principal, agent, scheduler and
 * dashboard as child processes.
 */
export async function startCommand(ctx: CommandContext, app: string): Promise<number> {
  if (app === "all") return startAll(ctx);
  if (!(STARTABLE_APPS as readonly string[]).includes(app)) {
    throw new CliError(`unknown app \`${app}\`: use one of ${[...STARTABLE_APPS, "all"].join(", ")}`, 2);
  }
  const main = appMainPath(app as StartableApp);
  // The app's main reads its own argv: hide the CLI's words (`start principal`) from it.
  process.argv.splice(2);
  await import(pathToFileURL(main).href);
  // The app runs until it exits the process itself.
  return new Promise<number>(() => undefined);
}

function portOf(endpoint: unknown): string | undefined {
  if (typeof endpoint !== "string") return undefined;
  const m = /:(\d+)$/.exec(endpoint);
  return m?.[1];
}

/**
 * `CDKTR_METRICS_PORT` of the `index`-th app of `start all`: consecutive ports from the one set
 * (principal, agent, scheduler, dashboard), `0` for each when it is 0; unset stays unset. A value that is not
 * a port is passed on as it is (the app refuses it with its message).
 */
export function metricsPortFor(base: string | undefined, index: number): string | undefined {
  const b = base?.trim();
  if (b === undefined || b === "") return b;
  if (!/^\d+$/.test(b)) return b;
  const n = Number(b);
  return n === 0 ? "0" : String(n + index);
}

async function startAll(ctx: CommandContext): Promise<number> {
  const { io, style } = ctx;
  const mains = {
    principal: appMainPath("principal"),
    agent: appMainPath("agent"),
    scheduler: appMainPath("scheduler"),
    dashboard: appMainPath("dashboard"),
  };
  const sup = new Supervisor(io, style, Object.keys(mains));
  let signals = 0;
  const off = io.onSignal((sig) => {
    signals++;
    if (signals === 1) {
      sup.say(`${sig}: stopping (again to force)`);
      void sup.stopAll();
    } else {
      sup.say(`${sig}: forcing`);
      sup.killAll();
    }
  });
  try {
    const env: Record<string, string | undefined> = { ...io.env };
    const metricsBase = io.env.CDKTR_METRICS_PORT;
    const principal = sup.start("principal", mains.principal, {
      ...env,
      CDKTR_METRICS_PORT: metricsPortFor(metricsBase, 0),
    });
    const ready = await sup.waitReady(principal, READY_TIMEOUT_MS);
    // With port 0 the principal picks its ports: hand the real ones to the others.
    const endpoints = (ready.endpoints ?? {}) as Record<string, unknown>;
    const clientEnv: Record<string, string | undefined> = { ...env };
    const api = portOf(endpoints.api);
    const logs = portOf(endpoints.logs);
    const publish = portOf(endpoints.publish);
    if (api !== undefined) clientEnv.CDKTR_PRINCIPAL_PORT = api;
    if (logs !== undefined) clientEnv.CDKTR_LOGS_LISTENING_PORT = logs;
    if (publish !== undefined) clientEnv.CDKTR_LOGS_PUBLISHING_PORT = publish;
    if (clientEnv.CDKTR_PRINCIPAL_HOST === "0.0.0.0") clientEnv.CDKTR_PRINCIPAL_HOST = "127.0.0.1";
    if (sup.stopping) return await finish(sup, signals);
    const agent = sup.start("agent", mains.agent, { ...clientEnv, CDKTR_METRICS_PORT: metricsPortFor(metricsBase, 1) });
    const scheduler = sup.start("scheduler", mains.scheduler, {
      ...clientEnv,
      CDKTR_METRICS_PORT: metricsPortFor(metricsBase, 2),
    });
    const dashboard = sup.start("dashboard", mains.dashboard, {
      ...clientEnv,
      CDKTR_METRICS_PORT: metricsPortFor(metricsBase, 3),
    });
    const [agentReady, schedulerReady, dashboardReady] = await Promise.all([
      sup.waitReady(agent, READY_TIMEOUT_MS),
      sup.waitReady(scheduler, READY_TIMEOUT_MS),
      sup.waitReady(dashboard, READY_TIMEOUT_MS),
    ]);
    const host = clientEnv.CDKTR_PRINCIPAL_HOST ?? "127.0.0.1";
    sup.say(
      style.green("ready") +
        `: principal at ${host}:${api ?? "5561"} (logs ${logs ?? "5562"}, events ${publish ?? "5563"})` +
        (typeof ready.workflowDir === "string" ? `, workflows from ${ready.workflowDir}` : "") +
        (typeof ready.dbPath === "string" ? `, data in ${ready.dbPath}` : ""),
    );
    if (typeof dashboardReady.url === "string") {
      sup.say(
        `dashboard at ${style.bold(dashboardReady.url)} (to trigger, re-run or cancel from it: ` +
          `${style.bold("npx cdktr dashboard token create <you> --role operator")}, then sign in)`,
      );
    }
    const metricsUrls = [
      ["principal", ready.metrics],
      ["agent", agentReady.metrics],
      ["scheduler", schedulerReady.metrics],
      ["dashboard", dashboardReady.metrics],
    ].filter((e): e is [string, string] => typeof e[1] === "string");
    if (metricsUrls.length > 0) {
      sup.say(
        `metrics: ${metricsUrls.map(([name, url]) => `${name} ${url}/metrics`).join(", ")} (and /healthz, /readyz)`,
      );
    }
    sup.say(
      `try: ${style.bold("npx cdktr workflows")} and ${style.bold("npx cdktr run hello --wait")}; Ctrl-C stops everything`,
    );
    const first = await sup.firstExit();
    if (sup.stopping) return await finish(sup, signals);
    sup.say(style.red(`${first.name} exited (${first.signal ?? `code ${first.code}`}): stopping the others`));
    await sup.stopAll();
    return 1;
  } catch (e) {
    if (sup.stopping) return await finish(sup, signals);
    sup.say(style.red(errorMessage(e)));
    await sup.stopAll();
    return 1;
  } finally {
    off();
    sup.killAll();
  }
}

async function finish(sup: Supervisor, signals: number): Promise<number> {
  const clean = await sup.stopAll();
  if (signals > 1) return 130;
  sup.say(clean ? "stopped" : "stopped (some apps did not exit cleanly)");
  return clean ? 0 : 1;
}

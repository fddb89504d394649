import { envMetricsHost, envMetricsPort } from "@cdktr/protocol";
import type { CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { terminalSafe } from "../format/terminal-text.js";

/** How long `cdktr health` waits for the process's answer. */
export const HEALTH_TIMEOUT_MS = 3000;

/** Options of `cdktr health`. */
export interface HealthOptions {
  /** Ask `/readyz` (can it do its work now?) instead of `/healthz` (does it answer?). */
  ready?: boolean;
  /** The process's metrics port (default `$CDKTR_METRICS_PORT`). */
  port?: string;
  /** Its metrics host (default `$CDKTR_METRICS_HOST`; a wildcard address is asked on loopback). */
  host?: string;
  json?: boolean;
}

/** The address to ask: a wildcard bind is reached on the loopback address of its family. */
function probeHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

/**
 * `cdktr health`: asks one process on this machine (principal, agent, scheduler or listeners) about
 * itself, on its metrics port: `/healthz`, or `/readyz` with `--ready`. This is a container's own
 * healthcheck (the Dockerfile and compose file use it; `cdktr ping` checks the principal instead).
 * Exit 0 on 200, 1 otherwise (the process's problems are printed), 2 when no port is known.
 */
export async function healthCommand(ctx: CommandContext, opts: HealthOptions): Promise<number> {
  const env = ctx.io.env;
  const portText = opts.port ?? env.CDKTR_METRICS_PORT;
  const port = envMetricsPort().safeParse(portText);
  if (portText === undefined || !port.success || port.data === undefined || port.data === 0) {
    throw new CliError(
      portText === undefined || portText.trim() === ""
        ? "cdktr health needs the process's metrics port: set CDKTR_METRICS_PORT as for the process, or pass --port"
        : `cdktr health: port '${portText}' is not a fixed port from 1 to 65535 (CDKTR_METRICS_PORT or --port; 0 = any port cannot be probed)`,
      2,
    );
  }
  const hostSetting = envMetricsHost().safeParse(env.CDKTR_METRICS_HOST);
  const host = probeHost(opts.host ?? (hostSetting.success ? hostSetting.data : "127.0.0.1"));
  const path = opts.ready === true ? "/readyz" : "/healthz";
  const url = `http://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port.data}${path}`;
  let status: number;
  let body: string;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    status = res.status;
    body = (await res.text()).trim();
  } catch (e) {
    const reason =
      e instanceof Error && e.name === "TimeoutError" ? `no answer within ${HEALTH_TIMEOUT_MS} ms` : "refused";
    if (opts.json === true) ctx.out(JSON.stringify({ url, ok: false, error: reason }));
    else ctx.out(`${url}: ${ctx.style.red(`unhealthy (${reason}: is the process running with this metrics port?)`)}`);
    return 1;
  }
  const ok = status === 200;
  let problems: string[] = [];
  if (!ok) {
    try {
      const parsed = JSON.parse(body) as { problems?: unknown };
      if (Array.isArray(parsed.problems)) problems = parsed.problems.map(String);
    } catch {
      problems = [body.slice(0, 200)];
    }
  }
  if (opts.json === true) ctx.out(JSON.stringify({ url, ok, status, ...(ok ? {} : { problems }) }));
  else {
    const detail = terminalSafe(problems).join("; ") || `HTTP ${status}`;
    ctx.out(
      `${url}: ${ok ? ctx.style.green("ok") : ctx.style.red(`${opts.ready === true ? "not ready" : "unhealthy"} (${detail})`)}`,
    );
  }
  return ok ? 0 : 1;
}

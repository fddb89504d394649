/**
 * Where the principal is: `--principal host:port`, else `CDKTR_PRINCIPAL_ENDPOINTS` (several
 * principals: the CLI follows whichever leads), else `CDKTR_PRINCIPAL_HOST` /
 * `CDKTR_PRINCIPAL_PORT`, else 127.0.0.1:5561. The publish channel (live events and logs) is on
 * the same host at `CDKTR_LOGS_PUBLISHING_PORT` (5563), or the leader's with several principals.
 */
import { endpointFor, envEndpointList } from "@cdktr/protocol";
import { CliError } from "./errors.js";

/** The principal's address as the CLI connects to it. */
export interface PrincipalTarget {
  readonly host: string;
  /** API port (request/reply). */
  readonly port: number;
  /** Publish port (run/task events and log lines). */
  readonly publishPort: number;
  /** `host:port` of the API, for messages. */
  readonly display: string;
  /** `tcp://host:publishPort`. */
  readonly publishEndpoint: string;
  /**
   * The API endpoints (`tcp://host:port`): those of `CDKTR_PRINCIPAL_ENDPOINTS` (unless
   * `--principal` names one), else the one of host and port. `host`, `port` and
   * `publishEndpoint` are the first one's.
   */
  readonly endpoints: readonly string[];
}

function parsePort(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw new CliError(`${what}: expected a port from 1 to 65535, got ${JSON.stringify(text)}`, 2);
  }
  return n;
}

/**
 * Resolve the principal's address.
 * @param flag the `--principal` value: `host:port`, `host`, or `:port`.
 * @throws CliError (exit code 2) for a malformed flag or variable.
 */
export function resolvePrincipal(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): PrincipalTarget {
  let host = env.CDKTR_PRINCIPAL_HOST?.trim() || "127.0.0.1";
  // A principal bound to every interface is reached through loopback.
  if (host === "0.0.0.0" || host === "::") host = "127.0.0.1";
  const envPort = env.CDKTR_PRINCIPAL_PORT?.trim();
  let port = envPort ? parsePort(envPort, "CDKTR_PRINCIPAL_PORT") : 5561;
  const list = flag === undefined ? endpointList(env.CDKTR_PRINCIPAL_ENDPOINTS) : undefined;
  const first = list === undefined ? null : /^tcp:\/\/\[?(.*?)\]?:(\d+)$/.exec(list[0] ?? "");
  if (first !== null) {
    host = first[1] ?? host;
    port = Number(first[2]);
  }
  if (flag !== undefined) {
    const f = flag.trim();
    const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(f);
    if (bracket) {
      host = bracket[1] ?? host;
      if (bracket[2] !== undefined) port = parsePort(bracket[2], "--principal");
    } else {
      const idx = f.lastIndexOf(":");
      if (idx === -1) {
        if (f === "") throw new CliError("--principal: expected host:port, e.g. --principal 127.0.0.1:5561", 2);
        host = f;
      } else {
        const h = f.slice(0, idx);
        if (h !== "") host = h;
        port = parsePort(f.slice(idx + 1), "--principal");
      }
    }
  }
  const envPub = env.CDKTR_LOGS_PUBLISHING_PORT?.trim();
  const publishPort = envPub ? parsePort(envPub, "CDKTR_LOGS_PUBLISHING_PORT") : 5563;
  const h = host.includes(":") ? `[${host}]` : host;
  return {
    host,
    port,
    publishPort,
    display: list === undefined ? `${host}:${port}` : list.map((e) => e.replace(/^tcp:\/\//, "")).join(","),
    publishEndpoint: `tcp://${h}:${publishPort}`,
    endpoints: list ?? [endpointFor(host, port)],
  };
}

/** `CDKTR_PRINCIPAL_ENDPOINTS` parsed (undefined when unset). @throws CliError (exit code 2) when malformed */
function endpointList(raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const r = envEndpointList().safeParse(raw);
  if (!r.success) {
    throw new CliError(`CDKTR_PRINCIPAL_ENDPOINTS: ${r.error.issues[0]?.message ?? "invalid"}`, 2);
  }
  return r.data;
}

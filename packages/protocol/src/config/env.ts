/**
 * Environment configuration helpers: every service describes its `CDKTR_*` variables as a zod
 * object keyed by variable name and parses them with {@link parseEnv}.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { errorMessage } from "../errors.js";
import { endpointFor } from "../rpc/frames.js";
import { ConfigError } from "./config-error.js";
import { LOG_FORMATS } from "../logging/logger.js";

function describeRaw(raw: string | undefined): string {
  return raw === undefined ? "nothing (not set)" : JSON.stringify(raw);
}

/** zod's default messages, trimmed to `expected number` style. */
function tidy(message: string): string {
  return message
    .replace(/^Invalid input:\s*/i, "")
    .replace(/, received [^,]*$/i, "")
    .replace(/^Invalid option:\s*/i, "")
    .replace(/^(.)/, (c) => c.toLowerCase());
}

/**
 * Parse environment variables with `schema` (a zod object whose keys are variable names).
 * Empty values count as unset, so defaults apply to `CDKTR_X=`.
 *
 * @throws ConfigError with one line per bad variable:
 *   `CDKTR_PRINCIPAL_PORT: expected an integer from 1 to 65535, got "abc"`.
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.output<S> {
  const input: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== "") input[k] = v;
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const issue of result.error.issues) {
    const name = issue.path.map(String).join(".") || "(environment)";
    if (seen.has(name)) continue;
    seen.add(name);
    const key = issue.path[0];
    const raw = typeof key === "string" ? input[key] : undefined;
    if (raw === undefined && issue.code === "invalid_type") {
      problems.push(`${name}: required but not set`);
    } else {
      problems.push(`${name}: ${tidy(issue.message)}, got ${describeRaw(raw)}`);
    }
  }
  throw new ConfigError(problems);
}

/**
 * An env var holding a TCP port (1-65535).
 * @param defaultPort used when the variable is unset or empty
 */
export function envPort(defaultPort: number) {
  const error = "expected an integer from 1 to 65535";
  return z.coerce.number({ error }).int({ error }).min(1, { error }).max(65535, { error }).default(defaultPort);
}

/**
 * `CDKTR_METRICS_PORT` of a service: the HTTP port of its `/metrics`, `/healthz` and `/readyz`
 * (`HealthServer`); unset or empty = not served, 0 = any free port.
 */
export function envMetricsPort() {
  const error = "expected an integer from 0 to 65535 (0 = any free port)";
  return z.preprocess(
    (v) => (typeof v === "string" && v.trim() === "" ? undefined : v),
    z.coerce.number({ error }).int({ error }).min(0, { error }).max(65535, { error }).optional(),
  );
}

/**
 * `CDKTR_LOG_FORMAT` of a service: `json` or `pretty`; unset = pretty on a terminal, JSON
 * otherwise (`createLogger`).
 */
export function envLogFormat() {
  return z.preprocess(
    (v) => (typeof v === "string" ? (v.trim() === "" ? undefined : v.trim().toLowerCase()) : v),
    z.enum(LOG_FORMATS, { error: "expected json or pretty" }).optional(),
  );
}

/** `CDKTR_METRICS_HOST` of a service: the interface its metrics port binds (loopback by default). */
export function envMetricsHost() {
  return z.string().trim().min(1).default("127.0.0.1");
}

/** An env var holding an integer in `[min, max]`, with a default. */
export function envInt(opts: { min?: number; max?: number; default: number }) {
  const min = opts.min ?? Number.MIN_SAFE_INTEGER;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  const range =
    opts.min !== undefined && opts.max !== undefined
      ? ` from ${min} to ${max}`
      : opts.min !== undefined
        ? ` >= ${min}`
        : opts.max !== undefined
          ? ` <= ${max}`
          : "";
  const error = `expected an integer${range}`;
  return z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error }).default(opts.default);
}

const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off"]);

/** An env var holding a boolean (`true/false`, `1/0`, `yes/no`, `on/off`), with a default. */
export function envBool(defaultValue: boolean) {
  return z
    .string()
    .transform((s, ctx) => {
      const v = s.trim().toLowerCase();
      if (TRUE.has(v)) return true;
      if (FALSE.has(v)) return false;
      ctx.addIssue({ code: "custom", message: "expected true or false (also 1/0, yes/no, on/off)" });
      return z.NEVER;
    })
    .default(defaultValue);
}

/** The `CDKTR_*` variables every client reads. */
export const ClientEnvSchema = z.object({
  /** Host of the principal. */
  CDKTR_PRINCIPAL_HOST: z.string().min(1).default("127.0.0.1"),
  /** API port of the principal (request/reply). */
  CDKTR_PRINCIPAL_PORT: envPort(5561),
  /** Port where the principal ingests agents' log batches. */
  CDKTR_LOGS_LISTENING_PORT: envPort(5562),
  /** Port where the principal publishes logs and events. */
  CDKTR_LOGS_PUBLISHING_PORT: envPort(5563),
  /**
   * API endpoints of several principals sharing one database (`host1:5561,host2:5561`, or
   * `tcp://host:port` items); clients move to whichever leads. Overrides host and port.
   */
  CDKTR_PRINCIPAL_ENDPOINTS: envEndpointList(),
});

/** Where the principal is, as read by {@link clientEnv}. */
export interface ClientEnv {
  host: string;
  port: number;
  logsPort: number;
  publishPort: number;
  /**
   * The API endpoints to try (`tcp://host:port`): `CDKTR_PRINCIPAL_ENDPOINTS` when set, else the
   * one of `CDKTR_PRINCIPAL_HOST` and `CDKTR_PRINCIPAL_PORT`.
   */
  endpoints: string[];
}

/** Most endpoints in `CDKTR_PRINCIPAL_ENDPOINTS`. */
export const MAX_PRINCIPAL_ENDPOINTS = 16;

/**
 * Parse one item of an endpoint list: `host:port`, `[v6]:port` or `tcp://host:port`.
 * @returns the `tcp://host:port` form, or null when the item is not one of those
 */
export function parseEndpointItem(item: string): string | null {
  const m = /^(?:tcp:\/\/)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+|\*):(\d{1,5})$/.exec(item.trim());
  if (m === null) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return `tcp://${m[1]}:${port}`;
}

/** An env var holding a comma-separated list of `host:port` endpoints (absent: undefined). */
export function envEndpointList() {
  return z
    .string()
    .transform((s, ctx) => {
      const items = s
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== "");
      const out: string[] = [];
      for (const item of items) {
        const e = parseEndpointItem(item);
        if (e === null) {
          ctx.addIssue({
            code: "custom",
            message: `expected host:port items separated by commas (${JSON.stringify(item)} is not one)`,
          });
          return z.NEVER;
        }
        if (!out.includes(e)) out.push(e);
      }
      if (out.length === 0 || out.length > MAX_PRINCIPAL_ENDPOINTS) {
        ctx.addIssue({
          code: "custom",
          message: `expected 1 to ${MAX_PRINCIPAL_ENDPOINTS} host:port items separated by commas`,
        });
        return z.NEVER;
      }
      return out;
    })
    .optional();
}

/**
 * The principal's address from `CDKTR_PRINCIPAL_HOST` (127.0.0.1), `CDKTR_PRINCIPAL_PORT` (5561),
 * `CDKTR_LOGS_LISTENING_PORT` (5562), `CDKTR_LOGS_PUBLISHING_PORT` (5563) and
 * `CDKTR_PRINCIPAL_ENDPOINTS` (several principals, see {@link ClientEnv.endpoints}).
 * @throws ConfigError when a variable is invalid
 */
export function clientEnv(env: Record<string, string | undefined>): ClientEnv {
  const c = parseEnv(ClientEnvSchema, env);
  return {
    host: c.CDKTR_PRINCIPAL_HOST,
    port: c.CDKTR_PRINCIPAL_PORT,
    logsPort: c.CDKTR_LOGS_LISTENING_PORT,
    publishPort: c.CDKTR_LOGS_PUBLISHING_PORT,
    endpoints: c.CDKTR_PRINCIPAL_ENDPOINTS ?? [endpointFor(c.CDKTR_PRINCIPAL_HOST, c.CDKTR_PRINCIPAL_PORT)],
  };
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Parse the text of a `.env` file: `KEY=value` lines, `#` comments, optional `export `,
 * single quotes (literal) and double quotes (`\n`, `\t`, `\"`, `\\` escapes, may span lines).
 * @throws ConfigError naming `file:line` of each malformed line
 */
export function parseDotEnv(text: string, file = ".env"): Record<string, string> {
  const out: Record<string, string> = {};
  const problems: string[] = [];
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = (lines[i] ?? "").trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("export ")) line = line.slice(7).trimStart();
    const eq = line.indexOf("=");
    if (eq <= 0) {
      problems.push(`${file}:${lineNo}: expected KEY=value`);
      continue;
    }
    const key = line.slice(0, eq).trim();
    if (!KEY.test(key)) {
      problems.push(`${file}:${lineNo}: ${JSON.stringify(key)} is not a valid variable name`);
      continue;
    }
    let rest = line.slice(eq + 1).trimStart();
    let value: string;
    const q = rest[0];
    if (q === '"' || q === "'") {
      // Quoted: may continue on following lines until the closing quote.
      let body = rest.slice(1);
      let close = findClose(body, q);
      while (close < 0 && i + 1 < lines.length) {
        i++;
        body += `\n${lines[i] ?? ""}`;
        close = findClose(body, q);
      }
      if (close < 0) {
        problems.push(`${file}:${lineNo}: unterminated ${q} quote`);
        continue;
      }
      const raw = body.slice(0, close);
      value =
        q === "'"
          ? raw
          : raw.replace(/\\([nrt"\\])/g, (_m, c: string) =>
              c === "n" ? "\n" : c === "r" ? "\r" : c === "t" ? "\t" : c,
            );
    } else {
      const hash = rest.search(/\s#/);
      if (hash >= 0) rest = rest.slice(0, hash);
      value = rest.trim();
    }
    out[key] = value;
  }
  if (problems.length > 0) throw new ConfigError(problems, `cannot read ${file}`);
  return out;
}

function findClose(body: string, q: string): number {
  for (let j = 0; j < body.length; j++) {
    if (q === '"' && body[j] === "\\") {
      j++;
      continue;
    }
    if (body[j] === q) return j;
  }
  return -1;
}

/**
 * Load a `.env` file into `env` without overriding variables that are already set.
 * A missing file is fine.
 * @param path @default ".env" (relative to the working directory)
 * @param env @default process.env
 * @throws ConfigError when the file exists but is malformed or unreadable
 */
export function loadDotEnv(path = ".env", env: Record<string, string | undefined> = process.env): void {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === "ENOENT") return;
    throw new ConfigError([`${path}: ${errorMessage(e)}`], `cannot read ${path}`, { cause: e });
  }
  for (const [k, v] of Object.entries(parseDotEnv(text, path))) {
    if (env[k] === undefined) env[k] = v;
  }
}

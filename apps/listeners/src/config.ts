/**
 * Configuration of the listeners runner: a few `CDKTR_*` variables plus one YAML file
 * (`CDKTR_LISTENERS_CONFIG`, default `listeners.yml`) listing the listeners to run.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import {
  ConfigError,
  endpointFor,
  envEndpointList,
  envLogFormat,
  envMetricsHost,
  envMetricsPort,
  envPort,
  errorMessage,
  parseEnv,
} from "@cdktr/protocol";
import type { FileWatcherSpec, MqttSpec, PostgresSpec, RabbitMqSpec, WebhookSpec } from "./listener-specs.js";
import { EventMapping } from "@cdktr/events";
import { topicFilterProblem, topicMatches, topicNameProblem } from "@cdktr/events/mqtt";
import { ListenersFileSchema, mappingOf } from "./listener-specs.js";
import { readOrCreateSecretFile, type SecretFile } from "./secret-file.js";
import { fieldName, issueMessage, keyOffset, suggest, valueOffset } from "./yaml-locations.js";

/** Environment variables read by the runner. */
export const ListenersEnvSchema = z.object({
  /** Path of the YAML file listing the listeners (relative to the working directory). */
  CDKTR_LISTENERS_CONFIG: z.string().min(1).default("listeners.yml"),
  /** Host of the principal (the file's `principal.host` wins). */
  CDKTR_PRINCIPAL_HOST: z.string().min(1).default("127.0.0.1"),
  /** API port of the principal (the file's `principal.port` wins). */
  CDKTR_PRINCIPAL_PORT: envPort(5561),
  /**
   * API endpoints of several principals sharing one database (`host1:5561,host2:5561`): triggers
   * go to whichever leads. Used unless the file names a principal.
   */
  CDKTR_PRINCIPAL_ENDPOINTS: envEndpointList(),
  /** Directory of the listeners' state (the webhooks' replay caches). Default `~/.cdktr/listeners`. */
  CDKTR_LISTENERS_STATE_DIR: z.string().min(1).optional(),
  /** HTTP port of `/metrics`, `/healthz` and `/readyz`; unset = not served. 0 = OS-assigned. */
  CDKTR_METRICS_PORT: envMetricsPort(),
  /** `json` or `pretty` log lines; unset = pretty on a terminal, JSON otherwise. */
  CDKTR_LOG_FORMAT: envLogFormat(),
  /** Interface the metrics port binds to. */
  CDKTR_METRICS_HOST: envMetricsHost(),
});

/** A listener ready to build: its spec, its name and its secrets resolved from the environment. */
export type ResolvedListener =
  | { name: string; spec: WebhookSpec; secret: string | undefined; secretFile?: SecretFile }
  | { name: string; spec: FileWatcherSpec }
  | { name: string; spec: RabbitMqSpec; url: string }
  | { name: string; spec: PostgresSpec; connectionString: string | undefined }
  | { name: string; spec: MqttSpec; url: string; password: string | undefined };

/** The runner's whole configuration. */
export interface ListenersConfig {
  /** Absolute path of the YAML file. */
  file: string;
  /**
   * Where the principal is; `endpoints` are the API endpoints tried (`CDKTR_PRINCIPAL_ENDPOINTS`
   * when the file names no principal, else the one of host and port).
   */
  principal: { host: string; port: number; endpoints: string[] };
  /** Absolute path of the listeners' state directory (the webhooks' replay caches). */
  stateDir: string;
  listeners: ResolvedListener[];
  /** Port of the metrics and health endpoints (`CDKTR_METRICS_PORT`); null or absent: not served. */
  metricsPort?: number | null;
  /** Interface of the metrics port (`CDKTR_METRICS_HOST`). @default "127.0.0.1" */
  metricsHost?: string;
}

/**
 * Read the environment and the YAML file it names; read each webhook's `secret_file` (creating
 * it with a random secret when it does not exist).
 * @throws ConfigError with one line per problem, each naming `file:line:column` and the field
 */
export function loadConfig(env: Record<string, string | undefined>, cwd: string = process.cwd()): ListenersConfig {
  const e = parseEnv(ListenersEnvSchema, env);
  const file = resolve(cwd, e.CDKTR_LISTENERS_CONFIG);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const why = (err as { code?: unknown }).code === "ENOENT" ? "file not found" : errorMessage(err);
    throw new ConfigError(
      [`${file}: ${why}: set CDKTR_LISTENERS_CONFIG to your listeners YAML file`],
      "cannot read the listeners config",
      { cause: err },
    );
  }
  const config = parseListenersConfig(
    text,
    file,
    env,
    {
      host: e.CDKTR_PRINCIPAL_HOST,
      port: e.CDKTR_PRINCIPAL_PORT,
      ...(e.CDKTR_PRINCIPAL_ENDPOINTS === undefined ? {} : { endpoints: e.CDKTR_PRINCIPAL_ENDPOINTS }),
    },
    resolve(cwd, e.CDKTR_LISTENERS_STATE_DIR ?? defaultStateDir(env)),
  );
  const listeners = config.listeners.map((entry, i): ResolvedListener => {
    if (entry.spec.type !== "webhook" || entry.spec.secret_file === undefined) return entry;
    const path = resolve(cwd, entry.spec.secret_file);
    const { secret, created } = readOrCreateSecretFile(path, `${file}: listeners[${i}].secret_file`);
    return { name: entry.name, spec: entry.spec, secret, secretFile: { path, created } };
  });
  return { ...config, listeners, metricsPort: e.CDKTR_METRICS_PORT ?? null, metricsHost: e.CDKTR_METRICS_HOST };
}

/** `~/.cdktr/listeners`, HOME from `env`. */
function defaultStateDir(env: Record<string, string | undefined>): string {
  return join(env.HOME ?? homedir(), ".cdktr", "listeners");
}

/**
 * Parse and validate the text of a listeners YAML file (no file-system access).
 * @throws ConfigError naming `file:line:column: field: problem` for each problem
 */
export function parseListenersConfig(
  text: string,
  file: string,
  env: Record<string, string | undefined>,
  principalDefault: { host: string; port: number; endpoints?: string[] } = { host: "127.0.0.1", port: 5561 },
  stateDir: string = resolve(env.CDKTR_LISTENERS_STATE_DIR ?? defaultStateDir(env)),
): ListenersConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const where = (offset: number | undefined): string => {
    if (offset === undefined) return file;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((err) => `${where(err.pos[0])}: ${err.message.split("\n")[0] ?? "YAML syntax error"}`),
      "invalid listeners config",
    );
  }
  const parsed = ListenersFileSchema.safeParse(doc.toJS());
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
      if (issue.code === "unrecognized_keys") {
        for (const key of issue.keys) {
          const full = [...path, key];
          problems.push(`${where(keyOffset(doc, path, key))}: ${fieldName(full)}: unknown field${suggest(key)}`);
        }
        continue;
      }
      const missing = issue.code === "invalid_type" && !doc.hasIn(path);
      problems.push(
        `${where(valueOffset(doc, path))}: ${fieldName(path)}: ${missing ? "required" : issueMessage(issue)}`,
      );
    }
    throw new ConfigError(problems, "invalid listeners config");
  }
  const data = parsed.data;
  const listeners: ResolvedListener[] = [];
  const names = new Set<string>();
  data.listeners.forEach((spec, i) => {
    const at = (field: string): string =>
      `${where(valueOffset(doc, ["listeners", i, field]))}: listeners[${i}].${field}`;
    const name = spec.name ?? `${spec.type}-${i}`;
    if (names.has(name)) problems.push(`${at("name")}: duplicate listener name ${JSON.stringify(name)}`);
    names.add(name);
    const fromEnv = (field: string, literal: string | undefined, envName: string | undefined): string | undefined => {
      if (literal !== undefined && envName !== undefined) {
        problems.push(`${at(`${field}_env`)}: give either ${field} or ${field}_env, not both`);
        return undefined;
      }
      if (envName === undefined) return literal;
      const v = env[envName];
      if (v === undefined || v === "")
        problems.push(`${at(`${field}_env`)}: environment variable ${envName} is not set`);
      return v;
    };
    if ("params_map" in spec || "when" in spec) {
      // Listeners whose events carry no workflow id map them into one fixed workflow.
      const m = mappingOf(spec);
      const mapsEvent = m.paramsMap !== undefined || m.when !== undefined || m.idempotencyKey !== undefined;
      if ("workflow" in spec && spec.workflow === undefined && (mapsEvent || m.params !== undefined))
        problems.push(
          `${at("workflow")}: params, params_map, when and idempotency_key apply to one fixed workflow: set workflow (without it each message names its own workflow and params)`,
        );
      try {
        EventMapping.compile(m, `listeners[${i}]`);
      } catch (err) {
        problems.push(`${where(valueOffset(doc, ["listeners", i]))}: ${errorMessage(err)}`);
      }
    }
    switch (spec.type) {
      case "webhook":
        if (spec.secret_file !== undefined && (spec.secret !== undefined || spec.secret_env !== undefined))
          problems.push(`${at("secret_file")}: give one of secret, secret_env and secret_file`);
        listeners.push({ name, spec, secret: fromEnv("secret", spec.secret, spec.secret_env) });
        break;
      case "file_watcher":
        listeners.push({ name, spec });
        break;
      case "rabbitmq":
        listeners.push({
          name,
          spec,
          url: fromEnv("url", spec.url, spec.url_env) ?? "amqp://guest:guest@127.0.0.1:5672",
        });
        break;
      case "postgres":
        listeners.push({
          name,
          spec,
          connectionString: fromEnv("connection_string", spec.connection_string, spec.connection_string_env),
        });
        break;
      case "mqtt": {
        const url = fromEnv("url", spec.url, spec.url_env) ?? "mqtt://127.0.0.1:1883";
        if (!/^mqtts?:\/\/./.test(url))
          problems.push(
            `${at(spec.url_env !== undefined ? "url_env" : "url")}: the broker URL must start with mqtt:// or mqtts:// (TLS)`,
          );
        spec.topics.forEach((topic, j) => {
          const problem = topicFilterProblem(topic);
          if (problem !== null)
            problems.push(
              `${where(valueOffset(doc, ["listeners", i, "topics", j]))}: listeners[${i}].topics[${j}]: ${problem}`,
            );
        });
        const dead = spec.dead_letter_topic;
        if (dead !== undefined) {
          const loop = spec.topics.find((t) => topicMatches(t, dead));
          const problem =
            topicNameProblem(dead) ??
            (loop !== undefined
              ? `matches the subscription ${JSON.stringify(loop)}: parked messages would come back; pick a topic outside topics`
              : null);
          if (problem !== null) problems.push(`${at("dead_letter_topic")}: ${problem}`);
        }
        listeners.push({ name, spec, url, password: fromEnv("password", spec.password, spec.password_env) });
        break;
      }
    }
  });
  if (problems.length > 0) throw new ConfigError(problems, "invalid listeners config");
  const host = data.principal?.host ?? principalDefault.host;
  const port = data.principal?.port ?? principalDefault.port;
  const named = data.principal?.host !== undefined || data.principal?.port !== undefined;
  return {
    file,
    principal: {
      host,
      port,
      endpoints: (named ? undefined : principalDefault.endpoints) ?? [endpointFor(host, port)],
    },
    stateDir,
    listeners,
  };
}

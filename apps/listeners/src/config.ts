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
import type {
  FileWatcherSpec,
  MqttSpec,
  NatsSpec,
  PostgresSpec,
  RabbitMqSpec,
  RedisStreamsSpec,
  RunStatusSpec,
  WebhookRouteSpec,
  WebhookSpec,
} from "./listener-specs.js";
import { EventMapping, findRuleCycle, type EventMappingSpec } from "@cdktr/events";
import { natsSubjectMatches } from "@cdktr/events/nats";
import { topicFilterProblem, topicMatches, topicNameProblem } from "@cdktr/events/mqtt";
import { ListenersFileSchema, mappingOf } from "./listener-specs.js";
import { readOrCreateSecretFile, type SecretFile } from "./secret-file.js";
import { fieldName, issueMessage, keyOffset, suggest, valueOffset } from "./yaml-locations.js";

/**
 * Why the mapping `spec` of the entry at `field` does not compile (every bad expression named),
 * located at `place` (`file:line:column`); null when it compiles.
 */
function mappingProblem(spec: EventMappingSpec, field: string, place: string): string | null {
  try {
    EventMapping.compile(spec, field);
    return null;
  } catch (err) {
    return `${place}: ${errorMessage(err)}`;
  }
}

/** Listener types whose messages may be mapped into one fixed `workflow` (the mapping fields). */
const MESSAGE_TYPES: ReadonlySet<string> = new Set(["rabbitmq", "postgres", "nats", "mqtt", "redis_streams"]);
/** The mapping fields of a queue-like listener's entry. */
type MappedSpec = Parameters<typeof mappingOf>[0] & { workflow?: string };

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

/** A webhook route's secret: from its `secret_env`, or its `secret_file` once {@link loadConfig} read it. */
export interface ResolvedRouteSecret {
  secret: string | undefined;
  secretFile?: SecretFile;
}

/** A listener ready to build: its spec, its name and its secrets resolved from the environment. */
export type ResolvedListener =
  | {
      name: string;
      spec: WebhookSpec;
      secret: string | undefined;
      secretFile?: SecretFile;
      /** The secret of each of `spec.routes`, in order. */
      routeSecrets?: ResolvedRouteSecret[];
    }
  | { name: string; spec: FileWatcherSpec }
  | { name: string; spec: RabbitMqSpec; url: string }
  | { name: string; spec: PostgresSpec; connectionString: string | undefined }
  | { name: string; spec: RedisStreamsSpec; url: string }
  | { name: string; spec: NatsSpec; natsAuth: NatsAuth }
  | { name: string; spec: RunStatusSpec }
  | { name: string; spec: MqttSpec; url: string; password: string | undefined };

/** Credentials of a NATS listener, resolved from the file or its `*_env` variables. */
export interface NatsAuth {
  user?: string;
  pass?: string;
  token?: string;
}

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
  readRouteSecretFiles(listeners, cwd, file);
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
    if (MESSAGE_TYPES.has(spec.type)) {
      // Queue-like listeners map their messages into one fixed workflow; without `workflow` each
      // message is a trigger message naming its own (zod leaves absent keys out of the object).
      const fields = spec as MappedSpec;
      const m = mappingOf(fields);
      const field = (["params", "params_map", "when", "idempotency_key"] as const).find((k) => fields[k] !== undefined);
      if (fields.workflow === undefined && field !== undefined)
        problems.push(
          `${at(field)}: ${field} needs workflow: set workflow (the one workflow every message triggers), or remove ${field} (without workflow each message is a trigger message naming its own workflow and params)`,
        );
      const bad = mappingProblem(m, `listeners[${i}]`, where(valueOffset(doc, ["listeners", i])));
      if (bad !== null) problems.push(bad);
    }
    switch (spec.type) {
      case "webhook": {
        if (spec.secret_file !== undefined && (spec.secret !== undefined || spec.secret_env !== undefined))
          problems.push(`${at("secret_file")}: give one of secret, secret_env and secret_file`);
        const routeSecrets = checkWebhookRoutes(spec, i, env, (path) => where(valueOffset(doc, path)), problems);
        listeners.push({
          name,
          spec,
          secret: fromEnv("secret", spec.secret, spec.secret_env),
          ...(routeSecrets.length > 0 ? { routeSecrets } : {}),
        });
        break;
      }
      case "file_watcher":
        {
          // Its `params` are the listener's own; the mapping is the other fields.
          const mapping = mappingOf({ ...spec, params: undefined });
          const bad = mappingProblem(mapping, `listeners[${i}]`, where(valueOffset(doc, ["listeners", i])));
          if (bad !== null) problems.push(bad);
        }
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
      case "redis_streams":
        if (spec.claim_idle_ms <= spec.trigger_timeout_ms)
          problems.push(
            `${at("claim_idle_ms")}: must exceed trigger_timeout_ms (${spec.trigger_timeout_ms}): an entry being triggered would look idle to the other consumers`,
          );
        if (spec.dead_letter_stream === spec.stream)
          problems.push(
            `${at("dead_letter_stream")}: must differ from stream (parked entries would be read again): name another stream`,
          );
        listeners.push({ name, spec, url: fromEnv("url", spec.url, spec.url_env) ?? "redis://127.0.0.1:6379" });
        break;
      case "run_status": {
        if (spec.key_file !== undefined && spec.key_name !== undefined)
          problems.push(`${at("key_file")}: give either key_file or key_name, not both`);
        const rules = spec.rules.map((r) => ({ after: r.after, status: r.status, workflow: r.workflow }));
        rules.forEach((r, k) => {
          if (r.after === r.workflow)
            problems.push(
              `${where(valueOffset(doc, ["listeners", i, "rules", k, "workflow"]))}: listeners[${i}].rules[${k}].workflow: a rule cannot start ${r.workflow} after its own runs (a cycle)`,
            );
        });
        const cycle = findRuleCycle(rules.filter((r) => r.after !== r.workflow));
        if (cycle !== null)
          problems.push(
            `${at("rules")}: the rules chain in a cycle (${cycle.join(" -> ")}): a run would start the next one forever; remove one of them`,
          );
        listeners.push({ name, spec });
        break;
      }
      case "nats": {
        const user = fromEnv("user", spec.user, spec.user_env);
        const pass = fromEnv("pass", spec.pass, spec.pass_env);
        const token = fromEnv("token", spec.token, spec.token_env);
        if (token !== undefined && (user !== undefined || pass !== undefined))
          problems.push(
            `${at(spec.token_env !== undefined ? "token_env" : "token")}: give either a token or user/pass, not both`,
          );
        else if (pass !== undefined && user === undefined)
          problems.push(
            `${at(spec.pass_env !== undefined ? "pass_env" : "pass")}: a password needs user (or user_env)`,
          );
        if (spec.create_stream && spec.subjects === undefined)
          problems.push(`${at("create_stream")}: create_stream needs subjects: the subjects of the stream to create`);
        if (!spec.create_stream && spec.subjects !== undefined)
          problems.push(
            `${at("subjects")}: subjects is used only with create_stream: true (an existing stream keeps its own subjects)`,
          );
        if (spec.ack_wait_ms <= spec.trigger_timeout_ms)
          problems.push(
            `${at("ack_wait_ms")}: must be longer than trigger_timeout_ms (${spec.trigger_timeout_ms}): a message would be delivered again while its trigger is in flight`,
          );
        const dead = spec.dead_letter_subject;
        if (dead !== undefined) {
          const filters = spec.filter_subject === undefined ? (spec.subjects ?? []) : [spec.filter_subject].flat();
          const catching = filters.find((f) => natsSubjectMatches(f, dead));
          if (catching !== undefined)
            problems.push(
              `${at("dead_letter_subject")}: ${dead} would be consumed again by this listener (it matches ${catching}): pick a subject outside the consumed ones`,
            );
        }
        const natsAuth: NatsAuth = {
          ...(user !== undefined ? { user } : {}),
          ...(pass !== undefined ? { pass } : {}),
          ...(token !== undefined ? { token } : {}),
        };
        listeners.push({ name, spec, natsAuth });
        break;
      }
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

/**
 * Check the `routes` of the webhook `spec` (entry `i`) beyond their schema: one secret per route
 * (required but for cdktr routes) from a set variable, `hmac` exactly for hmac routes, unique
 * paths, workflows within `workflows`, mappings that compile. Pushes `file:line:column: field:
 * problem` lines to `problems`; returns each route's secret (from `secret_env`; `secret_file` is
 * read by {@link loadConfig}).
 */
function checkWebhookRoutes(
  spec: WebhookSpec,
  i: number,
  env: Record<string, string | undefined>,
  locate: (path: (string | number)[]) => string,
  problems: string[],
): ResolvedRouteSecret[] {
  const routes = spec.routes ?? [];
  if (routes.length === 0 && !spec.trigger_path)
    problems.push(
      `${locate(["listeners", i, "trigger_path"])}: listeners[${i}].trigger_path: with trigger_path false and no routes the listener serves nothing: add routes`,
    );
  const paths = new Set<string>();
  return routes.map((route: WebhookRouteSpec, j): ResolvedRouteSecret => {
    const field = (name: string): string => `listeners[${i}].routes[${j}].${name}`;
    const at = (name: string): string => `${locate(["listeners", i, "routes", j, name])}: ${field(name)}`;
    if (paths.has(route.path)) problems.push(`${at("path")}: ${route.path} is already the path of another route`);
    paths.add(route.path);
    if (spec.workflows !== undefined && !spec.workflows.includes(route.workflow))
      problems.push(`${at("workflow")}: ${route.workflow} is not in listeners[${i}].workflows: add it there`);
    if (route.flavour === "hmac" && route.hmac === undefined)
      problems.push(`${at("flavour")}: a hmac route needs \`hmac: {header, algorithm, prefix, encoding}\``);
    if (route.flavour !== "hmac" && route.hmac !== undefined)
      problems.push(`${at("hmac")}: only for flavour hmac (the ${route.flavour} signature is fixed)`);
    const bad = mappingProblem(mappingOf(route), `listeners[${i}].routes[${j}]`, locate(["listeners", i, "routes", j]));
    if (bad !== null) problems.push(bad);
    if (route.secret_env !== undefined && route.secret_file !== undefined) {
      problems.push(`${at("secret_file")}: give one of secret_env and secret_file`);
      return { secret: undefined };
    }
    if (route.secret_env === undefined && route.secret_file === undefined && route.flavour !== "cdktr")
      problems.push(
        `${at("flavour")}: a ${route.flavour} route needs the secret its sender signs with: set ${field("secret_env")} or ${field("secret_file")}`,
      );
    if (route.secret_env === undefined) return { secret: undefined };
    const secret = env[route.secret_env];
    if (secret === undefined || secret === "")
      problems.push(`${at("secret_env")}: environment variable ${route.secret_env} is not set`);
    return { secret };
  });
}

/** Read (or create) the `secret_file` of every webhook route, as for the webhook's own. */
function readRouteSecretFiles(listeners: ResolvedListener[], cwd: string, file: string): void {
  listeners.forEach((entry, i) => {
    if (entry.spec.type !== "webhook" || !("secret" in entry)) return;
    const routes = entry.spec.routes ?? [];
    const secrets = routes.map((route, j): ResolvedRouteSecret => {
      const given = entry.routeSecrets?.[j] ?? { secret: undefined };
      if (route.secret_file === undefined) return given;
      const path = resolve(cwd, route.secret_file);
      const { secret, created } = readOrCreateSecretFile(path, `${file}: listeners[${i}].routes[${j}].secret_file`);
      return { secret, secretFile: { path, created } };
    });
    if (secrets.length > 0) entry.routeSecrets = secrets;
  });
}

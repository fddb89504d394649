/**
 * Configuration of the listeners runner: a few `CDKTR_*` variables plus one YAML file
 * (`CDKTR_LISTENERS_CONFIG`, default `listeners.yml`) listing the listeners to run.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document } from "yaml";
import { z } from "zod";
import { ConfigError, ParamsSchema, WorkflowIdSchema, envPort, errorMessage, parseEnv } from "@cdktr/protocol";

/** Environment variables read by the runner. */
export const ListenersEnvSchema = z.object({
  /** Path of the YAML file listing the listeners (relative to the working directory). */
  CDKTR_LISTENERS_CONFIG: z.string().min(1).default("listeners.yml"),
  /** Host of the principal (the file's `principal.host` wins). */
  CDKTR_PRINCIPAL_HOST: z.string().min(1).default("127.0.0.1"),
  /** API port of the principal (the file's `principal.port` wins). */
  CDKTR_PRINCIPAL_PORT: envPort(5561),
  /** Directory of the listeners' state (the webhooks' replay caches). Default `~/.cdktr/listeners`. */
  CDKTR_LISTENERS_STATE_DIR: z.string().min(1).optional(),
});

const Port = z.number().int().min(0).max(65535);
const PositiveMs = z.number().int().positive();
const Name = z.string().min(1).max(128);
/** A workflow allow-list: only these workflows may be triggered (omit the field to allow any). */
const AllowList = z
  .array(WorkflowIdSchema)
  .min(1, { error: "list at least one workflow (or omit `workflows` to allow any)" });

const Common = {
  /** Name used in logs. @default `<type>-<index>` */
  name: Name.optional(),
  /** `source` recorded on the runs. @default the listener type */
  source: z.string().min(1).max(128).optional(),
};

/** `type: webhook` */
const WebhookSpec = z
  .object({
    type: z.literal("webhook"),
    ...Common,
    host: z.string().min(1).default("127.0.0.1"),
    port: Port.default(8080),
    /** Shared secret, literally (prefer `secret_env`). */
    secret: z.string().min(1).optional(),
    /** Name of the environment variable holding the shared secret. */
    secret_env: z.string().min(1).optional(),
    /**
     * File holding the shared secret (its content, trimmed), e.g. a Docker secret; created with a
     * fresh random secret (mode 0600) when it does not exist. Relative to the working directory.
     */
    secret_file: z.string().min(1).optional(),
    signature_tolerance_s: z.number().int().positive().default(300),
    max_body_bytes: z
      .number()
      .int()
      .positive()
      .default(1024 * 1024),
    trigger_timeout_ms: PositiveMs.default(3000),
    retry_after_s: z.number().int().positive().default(5),
    /** Only these workflows may be triggered (default: any). */
    workflows: AllowList.optional(),
  })
  .strict();

const FileEvent = z.enum(["add", "change", "unlink"]);

/** `type: file_watcher` */
const FileWatcherSpec = z
  .object({
    type: z.literal("file_watcher"),
    ...Common,
    path: z.string().min(1),
    workflow: WorkflowIdSchema,
    glob: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    events: z.array(FileEvent).min(1).optional(),
    debounce_ms: z.number().int().min(0).default(500),
    max_wait_ms: PositiveMs.default(10_000),
    paths_param: z.union([z.string().min(1), z.null()]).default("paths"),
    params: ParamsSchema.optional(),
    await_write_finish_ms: z.union([z.number().int().min(0), z.literal(false)]).default(200),
    use_polling: z.boolean().default(false),
  })
  .strict();

/** `type: rabbitmq` */
const RabbitMqSpec = z
  .object({
    type: z.literal("rabbitmq"),
    ...Common,
    url: z.string().min(1).optional(),
    /** Name of the environment variable holding the AMQP URL (with credentials). */
    url_env: z.string().min(1).optional(),
    queue: z.string().min(1).max(255),
    prefetch: z.number().int().min(1).max(65535).default(10),
    assert_queue: z.boolean().default(true),
    dead_letter_exchange: z.string().min(1).optional(),
    require_idempotency_key: z.boolean().default(false),
    trigger_timeout_ms: PositiveMs.default(5000),
    /** Only these workflows may be triggered; other messages are dead-lettered (default: any). */
    workflows: AllowList.optional(),
  })
  .strict();

/** `type: postgres` */
const PostgresSpec = z
  .object({
    type: z.literal("postgres"),
    ...Common,
    connection_string: z.string().min(1).optional(),
    /** Name of the environment variable holding the connection string. */
    connection_string_env: z.string().min(1).optional(),
    channel: z.string().min(1).max(63),
    application_name: z.string().min(1).max(63).default("cdktr-listener"),
    trigger_timeout_ms: PositiveMs.default(5000),
    retry_for_ms: PositiveMs.default(60_000),
    /** Only these workflows may be triggered; other notifications are logged and dropped (default: any). */
    workflows: AllowList.optional(),
  })
  .strict();

const ListenerSpec = z.discriminatedUnion("type", [WebhookSpec, FileWatcherSpec, RabbitMqSpec, PostgresSpec], {
  error: (issue) =>
    issue.code === "invalid_union"
      ? 'expected `type` to be one of "webhook", "file_watcher", "rabbitmq", "postgres"'
      : undefined,
});

/** Schema of the YAML file. */
export const ListenersFileSchema = z
  .object({
    principal: z
      .object({ host: z.string().min(1).optional(), port: z.number().int().min(1).max(65535).optional() })
      .strict()
      .optional(),
    listeners: z.array(ListenerSpec).min(1, { error: "list at least one listener" }),
  })
  .strict();

/** One listener entry as written in the file (after defaults). */
export type ListenerSpec = z.output<typeof ListenerSpec>;
/** A webhook entry. */
export type WebhookSpec = z.output<typeof WebhookSpec>;
/** A file watcher entry. */
export type FileWatcherSpec = z.output<typeof FileWatcherSpec>;
/** A RabbitMQ entry. */
export type RabbitMqSpec = z.output<typeof RabbitMqSpec>;
/** A PostgreSQL entry. */
export type PostgresSpec = z.output<typeof PostgresSpec>;

/** A webhook's `secret_file`, once read (or created by {@link loadConfig}). */
export interface SecretFile {
  /** Absolute path. */
  path: string;
  /** Whether this start created it (with a fresh random secret). */
  created: boolean;
}

/** A listener ready to build: its spec, its name and its secrets resolved from the environment. */
export type ResolvedListener =
  | { name: string; spec: WebhookSpec; secret: string | undefined; secretFile?: SecretFile }
  | { name: string; spec: FileWatcherSpec }
  | { name: string; spec: RabbitMqSpec; url: string }
  | { name: string; spec: PostgresSpec; connectionString: string | undefined };

/** The runner's whole configuration. */
export interface ListenersConfig {
  /** Absolute path of the YAML file. */
  file: string;
  principal: { host: string; port: number };
  /** Absolute path of the listeners' state directory (the webhooks' replay caches). */
  stateDir: string;
  listeners: ResolvedListener[];
}

/** Characters of a secret made for a `secret_file` (32 random bytes, base64url). */
const SECRET_BYTES = 32;

/**
 * The secret in `path`, or a fresh random one written there (mode 0600, its directory made 0700)
 * when the file does not exist. Replicas starting together agree: the file is created exclusively
 * and the loser reads the winner's.
 * @throws ConfigError naming the field and the file when it cannot be read or written, or is empty
 */
export function readOrCreateSecretFile(path: string, field: string): { secret: string; created: boolean } {
  const problem = (why: string, cause?: unknown): ConfigError =>
    new ConfigError([`${field}: ${path}: ${why}`], "invalid listeners config", cause === undefined ? {} : { cause });
  let created = false;
  if (!existsSync(path)) {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw problem(`cannot create the secret file's directory: ${errorMessage(err)}`, err);
    }
    try {
      writeFileSync(path, `${randomBytes(SECRET_BYTES).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
      created = true;
    } catch (err) {
      if ((err as { code?: unknown }).code !== "EEXIST")
        throw problem(`cannot create the secret file: ${errorMessage(err)}`, err);
    }
  }
  let secret: string;
  try {
    secret = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw problem(`cannot read the secret file: ${errorMessage(err)}`, err);
  }
  if (secret === "") throw problem("the secret file is empty (delete it to get a generated secret)");
  return { secret, created };
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
    { host: e.CDKTR_PRINCIPAL_HOST, port: e.CDKTR_PRINCIPAL_PORT },
    resolve(cwd, e.CDKTR_LISTENERS_STATE_DIR ?? defaultStateDir(env)),
  );
  const listeners = config.listeners.map((entry, i): ResolvedListener => {
    if (entry.spec.type !== "webhook" || entry.spec.secret_file === undefined) return entry;
    const path = resolve(cwd, entry.spec.secret_file);
    const { secret, created } = readOrCreateSecretFile(path, `${file}: listeners[${i}].secret_file`);
    return { name: entry.name, spec: entry.spec, secret, secretFile: { path, created } };
  });
  return { ...config, listeners };
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
  principalDefault: { host: string; port: number } = { host: "127.0.0.1", port: 5561 },
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
      problems.push(`${where(valueOffset(doc, path))}: ${fieldName(path)}: ${missing ? "required" : message(issue)}`);
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
    }
  });
  if (problems.length > 0) throw new ConfigError(problems, "invalid listeners config");
  return {
    file,
    principal: {
      host: data.principal?.host ?? principalDefault.host,
      port: data.principal?.port ?? principalDefault.port,
    },
    stateDir,
    listeners,
  };
}

/** `listeners[0].port` */
function fieldName(path: readonly (string | number)[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? p : `.${p}`;
  return out === "" ? "(file)" : out;
}

function message(issue: z.core.$ZodIssue): string {
  return issue.message.replace(/^Invalid input:\s*/i, "");
}

const KNOWN_FIELDS = [
  "type",
  "name",
  "source",
  "host",
  "port",
  "secret",
  "secret_env",
  "secret_file",
  "signature_tolerance_s",
  "max_body_bytes",
  "trigger_timeout_ms",
  "retry_after_s",
  "workflows",
  "path",
  "workflow",
  "glob",
  "events",
  "debounce_ms",
  "max_wait_ms",
  "paths_param",
  "params",
  "await_write_finish_ms",
  "use_polling",
  "url",
  "url_env",
  "queue",
  "prefetch",
  "assert_queue",
  "dead_letter_exchange",
  "require_idempotency_key",
  "connection_string",
  "connection_string_env",
  "channel",
  "application_name",
  "retry_for_ms",
  "principal",
  "listeners",
];

function suggest(key: string): string {
  let best: string | null = null;
  let bestD = 3;
  for (const k of KNOWN_FIELDS) {
    const d = distance(key.toLowerCase().replace(/-/g, "_"), k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && best !== key ? ` (did you mean \`${best}\`?)` : "";
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0] ?? 0;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j] ?? 0;
      dp[j] = Math.min((dp[j] ?? 0) + 1, (dp[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length] ?? 0;
}

/** Offset of the value at `path`, or of its nearest existing ancestor. */
function valueOffset(doc: Document, path: readonly (string | number)[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range !== undefined) return range[0];
  }
  return undefined;
}

/** Offset of the key `key` in the map at `path`. */
function keyOffset(doc: Document, path: readonly (string | number)[], key: string): number | undefined {
  const node: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (isMap(node)) {
    for (const pair of node.items) {
      if (isPair(pair) && isScalar(pair.key) && pair.key.value === key) return pair.key.range?.[0];
    }
  }
  return valueOffset(doc, path);
}

/**
 * The schema of the listeners YAML file (`CDKTR_LISTENERS_CONFIG`): one zod schema per listener
 * type, their union on `type`, and the types of the entries after defaults.
 */
import { z } from "zod";
import { ChainStatusSchema, ParamsSchema, WorkflowIdSchema } from "@cdktr/protocol";
import type { EventMappingSpec } from "@cdktr/events";
import { WEBHOOK_FLAVOURS, webhookRoutePathProblem, type WebhookFlavour } from "@cdktr/events/webhook";
import { natsNameProblem, natsSubjectProblem } from "@cdktr/events/nats";

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

/** One `params_map` entry: a JMESPath expression, or `{from, optional}`. */
const ParamsMapEntry = z.union([
  z.string().min(1),
  z.object({ from: z.string().min(1), optional: z.boolean().optional() }).strict(),
]);

/**
 * The event's content into the run (docs/listeners.md, "Event payload into params"): fixed
 * `params`, `params_map` (param -> JMESPath expression over the listener's event document), a
 * `when` filter and an `idempotency_key` expression. Compiled when the file is loaded.
 */
export const MappingFields = {
  params: ParamsSchema.optional(),
  params_map: z.record(z.string().min(1).max(128), ParamsMapEntry).optional(),
  when: z.string().min(1).optional(),
  idempotency_key: z.string().min(1).optional(),
};

/** The mapping fields of a spec as {@link EventMappingSpec}. */
export function mappingOf(spec: {
  params?: z.output<typeof ParamsSchema> | undefined;
  params_map?: Record<string, z.output<typeof ParamsMapEntry>> | undefined;
  when?: string | undefined;
  idempotency_key?: string | undefined;
}): EventMappingSpec {
  return {
    ...(spec.params !== undefined ? { params: spec.params } : {}),
    ...(spec.params_map !== undefined ? { paramsMap: spec.params_map } : {}),
    ...(spec.when !== undefined ? { when: spec.when } : {}),
    ...(spec.idempotency_key !== undefined ? { idempotencyKey: spec.idempotency_key } : {}),
  };
}

/**
 * One entry of a webhook's `routes:` (docs/listeners.md, "Routes"): a path triggering one
 * workflow, its flavour (how the sender signs), its secret and the mapping of the request's event
 * document `{body, headers, query, path, method}` into the run.
 */
const WebhookRouteSpec = z
  .object({
    /** e.g. `/hooks/github/deploy` */
    path: z.string().superRefine((path, ctx) => {
      const problem = webhookRoutePathProblem(path);
      if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
    }),
    workflow: WorkflowIdSchema,
    flavour: z.enum(WEBHOOK_FLAVOURS as [WebhookFlavour, ...WebhookFlavour[]], {
      error: `expected one of ${WEBHOOK_FLAVOURS.join(", ")}`,
    }),
    /** Environment variable holding the route's secret (required for github, gitlab and hmac). */
    secret_env: z.string().min(1).optional(),
    /** File holding the route's secret; created with a random secret (0600) when missing. */
    secret_file: z.string().min(1).optional(),
    /** flavour hmac: where and how the HMAC of the raw body is sent. */
    hmac: z
      .object({
        header: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: "expected an HTTP header name" }),
        algorithm: z.enum(["sha256", "sha1", "sha512"], { error: "expected sha256, sha1 or sha512" }).default("sha256"),
        prefix: z.string().min(1).optional(),
        encoding: z.enum(["hex", "base64"], { error: "expected hex or base64" }).default("hex"),
      })
      .strict()
      .optional(),
    /** Refuse (400) requests from which no idempotency key comes. */
    require_idempotency_key: z.boolean().default(false),
    ...MappingFields,
  })
  .strict();

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
    /** Paths triggering one workflow each, signed as GitHub, GitLab or any HMAC sender signs. */
    routes: z.array(WebhookRouteSpec).min(1, { error: "list at least one route (or omit `routes`)" }).optional(),
    /** Serve `POST /trigger/<workflowId>` too (set false to serve only the routes). */
    trigger_path: z.boolean().default(true),
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
    /** The mapping fields but `params` (above): JMESPath over the burst's event document `{paths, path, events, dir}`. */
    params_map: MappingFields.params_map,
    when: MappingFields.when,
    idempotency_key: MappingFields.idempotency_key,
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
    /** Every message triggers this workflow, its content mapped with the mapping fields (default: trigger messages). */
    workflow: WorkflowIdSchema.optional(),
    ...MappingFields,
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
    /** Every notification triggers this workflow, its payload mapped with the mapping fields (default: trigger messages). */
    workflow: WorkflowIdSchema.optional(),
    ...MappingFields,
  })
  .strict();

/** One rule of a `run_status` listener: start `workflow` when a run of `after` ends in `status`. */
const RunStatusRule = z
  .object({
    after: WorkflowIdSchema,
    /** End states (default `[COMPLETED]`). */
    status: z
      .union([ChainStatusSchema, z.array(ChainStatusSchema).min(1)], {
        error: "expected one or more of COMPLETED, FAILED, CRASHED, CANCELLED, SKIPPED (the states a run ends in)",
      })
      .default(["COMPLETED"])
      .transform((s) => [...new Set(Array.isArray(s) ? s : [s])]),
    workflow: WorkflowIdSchema,
    params: ParamsSchema.optional(),
  })
  .strict();

/** `type: run_status`: workflow chaining by ad-hoc rules (docs/listeners.md, "Run outcomes"). */
const RunStatusSpec = z
  .object({
    type: z.literal("run_status"),
    ...Common,
    rules: z.array(RunStatusRule).min(1, { error: "list at least one rule {after, status, workflow}" }),
    /**
     * The key this listener uses: it lists every finished run and follows their outcomes, which
     * needs role `scheduler` (or `operator`). A file (`key_file`) or a local key's name (`key_name`,
     * looked up in `CDKTR_KEYS_DIR`); default the local scheduler's key.
     */
    key_file: z.string().min(1).optional(),
    key_name: Name.optional(),
    sweep_interval_ms: PositiveMs.default(10_000),
    late_margin_ms: z.number().int().min(0).default(300_000),
    trigger_timeout_ms: PositiveMs.default(5000),
  })
  .strict();

/** `type: redis_streams` */
const RedisStreamsSpec = z
  .object({
    type: z.literal("redis_streams"),
    ...Common,
    /** `redis://[user:password@]host:port[/db]` or `rediss://` (prefer `url_env` when it holds a password). */
    url: z
      .string()
      .regex(/^rediss?:\/\//, { error: "expected a redis:// or rediss:// URL" })
      .optional(),
    /** Name of the environment variable holding the Redis URL (with credentials). */
    url_env: z.string().min(1).optional(),
    stream: z.string().min(1).max(1024),
    group: z.string().min(1).max(256).default("cdktr"),
    /** Consumer name in the group, stable across restarts. @default `<host name>-<listener name>` */
    consumer: z.string().min(1).max(256).optional(),
    /** Where a group created by the listener starts: `$` (new entries), `0` (the whole stream) or an entry id. */
    start_id: z
      .string()
      .regex(/^(\$|\d+(-\d+)?)$/, { error: 'expected "$", "0" or an entry id like 1700000000000-0' })
      .default("$"),
    /** The entry field holding the trigger message (or, with `workflow`, the payload). */
    field: z.string().min(1).default("message"),
    count: z.number().int().min(1).max(1000).default(10),
    block_ms: PositiveMs.default(5000),
    claim_idle_ms: PositiveMs.default(60_000),
    claim_interval_ms: PositiveMs.optional(),
    max_deliveries: z.number().int().min(1).default(10),
    /** Stream where poison entries are parked (default: acknowledged and logged only). */
    dead_letter_stream: z.string().min(1).max(1024).optional(),
    dead_letter_max_len: z.number().int().positive().optional(),
    trigger_timeout_ms: PositiveMs.default(5000),
    /** Only these workflows may be triggered; other entries are parked (default: any). */
    workflows: AllowList.optional(),
    /** Every entry triggers this workflow, its content mapped with the mapping fields (default: trigger messages). */
    workflow: WorkflowIdSchema.optional(),
    ...MappingFields,
  })
  .strict();

/** A NATS subject: `*` and `>` wildcards allowed when `wildcards` (a filter), not otherwise. */
const natsSubject = (wildcards: boolean) =>
  z
    .string()
    .min(1)
    .superRefine((s, ctx) => {
      const problem = natsSubjectProblem(s, wildcards);
      if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
    });
/** A stream or durable consumer name: one subject token. */
const NatsName = z
  .string()
  .min(1)
  .superRefine((s, ctx) => {
    const problem = natsNameProblem(s);
    if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
  });

/** `type: nats` (JetStream, a durable pull consumer) */
const NatsSpec = z
  .object({
    type: z.literal("nats"),
    ...Common,
    /** Server URL(s). @default nats://127.0.0.1:4222 */
    servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    user: z.string().min(1).optional(),
    /** Name of the environment variable holding the user name. */
    user_env: z.string().min(1).optional(),
    /** Password, literally (prefer `pass_env`). */
    pass: z.string().min(1).optional(),
    /** Name of the environment variable holding the password. */
    pass_env: z.string().min(1).optional(),
    /** Authentication token, literally (prefer `token_env`). */
    token: z.string().min(1).optional(),
    /** Name of the environment variable holding the token. */
    token_env: z.string().min(1).optional(),
    stream: NatsName,
    durable: NatsName,
    filter_subject: z.union([natsSubject(true), z.array(natsSubject(true)).min(1)]).optional(),
    /** Create the stream (work-queue retention) on `subjects` when it does not exist. */
    create_stream: z.boolean().default(false),
    subjects: z.array(natsSubject(true)).min(1).optional(),
    ack_wait_ms: PositiveMs.default(30_000),
    max_in_flight: z.number().int().min(1).max(10_000).default(10),
    /** Poison messages are copied there (a stream must keep it) before they are terminated. */
    dead_letter_subject: natsSubject(false).optional(),
    trigger_timeout_ms: PositiveMs.default(5000),
    /** Only these workflows may be triggered; other messages are parked (default: any). */
    workflows: AllowList.optional(),
    /** Every message triggers this workflow, its content mapped with the mapping fields (default: trigger messages). */
    workflow: WorkflowIdSchema.optional(),
    ...MappingFields,
  })
  .strict();

/** `type: mqtt` */
const MqttSpec = z
  .object({
    type: z.literal("mqtt"),
    ...Common,
    /** Broker URL, `mqtt://host:1883` or `mqtts://host:8883` (TLS). */
    url: z.string().min(1).optional(),
    /** Name of the environment variable holding the broker URL (it may carry credentials). */
    url_env: z.string().min(1).optional(),
    /** Stable client id: names the persistent session (subscriptions, queued messages) on the broker. */
    client_id: z.string().min(1).max(256),
    /** Topic filters subscribed at QoS 1 (`sensors/+/alarm`, `orders/#`). */
    topics: z.array(z.string().min(1)).min(1, { error: "list at least one topic filter" }),
    username: z.string().min(1).optional(),
    /** Password, literally (prefer `password_env`). */
    password: z.string().min(1).optional(),
    /** Name of the environment variable holding the password. */
    password_env: z.string().min(1).optional(),
    receive_maximum: z.number().int().min(1).max(65535).default(10),
    session_expiry_s: z.number().int().min(1).max(4294967295).default(604800),
    keepalive_s: z.number().int().min(1).max(65535).default(60),
    /** Parked messages are republished here (with the reason as user properties) before they are acked. */
    dead_letter_topic: z.string().min(1).optional(),
    require_idempotency_key: z.boolean().default(false),
    trigger_timeout_ms: PositiveMs.default(5000),
    /** Only these workflows may be triggered; other messages are parked (default: any). */
    workflows: AllowList.optional(),
    /** Every message triggers this workflow, its content mapped with the mapping fields (default: trigger messages). */
    workflow: WorkflowIdSchema.optional(),
    ...MappingFields,
  })
  .strict();

const ListenerSpec = z.discriminatedUnion(
  "type",
  [WebhookSpec, FileWatcherSpec, RabbitMqSpec, PostgresSpec, RedisStreamsSpec, NatsSpec, RunStatusSpec, MqttSpec],
  {
    error: (issue) =>
      issue.code === "invalid_union"
        ? 'expected `type` to be one of "webhook", "file_watcher", "rabbitmq", "postgres", "redis_streams", "nats", "run_status", "mqtt"'
        : undefined,
  },
);

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
/** One route of a webhook entry. */
export type WebhookRouteSpec = z.output<typeof WebhookRouteSpec>;
/** A file watcher entry. */
export type FileWatcherSpec = z.output<typeof FileWatcherSpec>;
/** A RabbitMQ entry. */
export type RabbitMqSpec = z.output<typeof RabbitMqSpec>;
/** A PostgreSQL entry. */
export type PostgresSpec = z.output<typeof PostgresSpec>;
/** A Redis Streams entry. */
export type RedisStreamsSpec = z.output<typeof RedisStreamsSpec>;
/** A run-status (chaining) entry. */
export type RunStatusSpec = z.output<typeof RunStatusSpec>;
/** A NATS entry. */
export type NatsSpec = z.output<typeof NatsSpec>;
/** An MQTT entry. */
export type MqttSpec = z.output<typeof MqttSpec>;

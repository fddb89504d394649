/**
 * The schema of the listeners YAML file (`CDKTR_LISTENERS_CONFIG`): one zod schema per listener
 * type, their union on `type`, and the types of the entries after defaults.
 */
import { z } from "zod";
import { ParamsSchema, WorkflowIdSchema } from "@cdktr/protocol";
import type { EventMappingSpec } from "@cdktr/events";

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
  [WebhookSpec, FileWatcherSpec, RabbitMqSpec, PostgresSpec, MqttSpec],
  {
    error: (issue) =>
      issue.code === "invalid_union"
        ? 'expected `type` to be one of "webhook", "file_watcher", "rabbitmq", "postgres", "mqtt"'
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
/** A file watcher entry. */
export type FileWatcherSpec = z.output<typeof FileWatcherSpec>;
/** A RabbitMQ entry. */
export type RabbitMqSpec = z.output<typeof RabbitMqSpec>;
/** A PostgreSQL entry. */
export type PostgresSpec = z.output<typeof PostgresSpec>;
/** An MQTT entry. */
export type MqttSpec = z.output<typeof MqttSpec>;

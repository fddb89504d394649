/**
 * Wiring of the listeners runner: one shared principal connection, one built-in listener per
 * entry of the config file.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  HealthServer,
  PrincipalClient,
  authDisabled,
  clientKeyOf,
  errorMessage,
  findClientKey,
  readKeyFile,
  type Logger,
} from "@cdktr/protocol";
import {
  LISTENER_KEY_NAME,
  ListenerStartError,
  RunOutcomeListener,
  SCHEDULER_KEY_NAME,
  type EventListener,
  type PrincipalRequester,
} from "@cdktr/events";
import { WebhookListener, type WebhookRoute } from "@cdktr/events/webhook";
import { FileWatcherListener } from "@cdktr/events/file-watcher";
import { RabbitMqListener } from "@cdktr/events/rabbitmq";
import { PostgresListener } from "@cdktr/events/postgres";
import { RedisStreamsListener } from "@cdktr/events/redis";
import type { ListenersConfig, ResolvedListener, ResolvedRouteSecret } from "./config.js";
import type { WebhookRouteSpec } from "./listener-specs.js";
import { NatsListener } from "@cdktr/events/nats";
import { MqttListener } from "@cdktr/events/mqtt";
import { ListenersMetrics } from "./metrics.js";
import { mappingOf } from "./listener-specs.js";

/** What {@link createListeners} needs besides the config. */
export interface ListenersDeps {
  logger: Logger;
  /** A principal connection to share; by default one is created from `config.principal`. */
  principal?: PrincipalRequester;
}

/** One running listener. */
export interface RunningListener {
  name: string;
  type: ResolvedListener["spec"]["type"];
  listener: EventListener;
  /** `http://host:port` for webhooks once started, else null. */
  url: string | null;
}

/** The runner: {@link ListenersApp.start} resolves once every listener is started. */
export interface ListenersApp {
  readonly listeners: readonly RunningListener[];
  /** Base URL of `/metrics`, `/healthz` and `/readyz` once started (`CDKTR_METRICS_PORT`), else null. */
  readonly metrics: string | null;
  /**
   * Start every listener; resolves when webhooks are bound and file watchers have scanned.
   * The queue, stream and run-outcome listeners connect (and reconnect) in the background.
   * @throws ListenerStartError when a webhook cannot bind its port or a watched path does not
   *   exist (the listeners already started are stopped again)
   */
  start(): Promise<void>;
  /** Stop every listener (in reverse order) and close the principal connection. Idempotent. */
  stop(): Promise<void>;
}

/** Build the listeners described by `config`. No side effects until `start()`. */
export function createListeners(config: ListenersConfig, deps: ListenersDeps): ListenersApp {
  const ownsClient = deps.principal === undefined;
  const principal: PrincipalRequester =
    deps.principal ??
    new PrincipalClient({
      endpoints: config.principal.endpoints,
      logger: deps.logger,
      keyName: LISTENER_KEY_NAME,
    });
  const running: RunningListener[] = config.listeners.map((entry) => ({
    name: entry.name,
    type: entry.spec.type,
    listener: build(
      entry,
      principal,
      config.principal.endpoints,
      config.stateDir,
      deps.logger.child({ listener: entry.name, type: entry.spec.type }),
    ),
    url: null,
  }));
  let started = false;
  let stopped: Promise<void> | null = null;
  const metricsPort = config.metricsPort ?? null;
  const metrics = metricsPort === null ? null : new ListenersMetrics();
  if (metrics !== null) for (const r of running) metrics.follow(r.name, r.type, r.listener);
  let health: HealthServer | null = null;
  let ready = false;

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      for (const r of [...running].reverse()) await r.listener.stop();
      if (ownsClient) principal.close();
      await health?.close();
    })();
    return stopped;
  };

  return {
    listeners: running,
    get metrics() {
      return health?.url ?? null;
    },
    async start() {
      if (started) return;
      started = true;
      if (metrics !== null && metricsPort !== null) {
        health = await HealthServer.start({
          host: config.metricsHost ?? "127.0.0.1",
          port: metricsPort,
          metrics: metrics.registry,
          // Ready once every listener started (below); each listener's own trouble shows in
          // cdktr_listener_errors_total and its log, not here (a source reconnecting is normal).
          notReady: () =>
            stopped !== null ? ["the listeners are stopping"] : ready ? [] : ["the listeners are starting"],
          logger: deps.logger,
        });
      }
      for (const entry of config.listeners) {
        if (entry.spec.type === "webhook" && "secretFile" in entry && entry.secretFile?.created === true)
          deps.logger.info("created a webhook secret: senders sign their requests with the content of this file", {
            listener: entry.name,
            file: entry.secretFile.path,
          });
        if (entry.spec.type === "webhook" && "routeSecrets" in entry) {
          const routes = entry.spec.routes ?? [];
          entry.routeSecrets?.forEach((r, j) => {
            if (r.secretFile?.created === true)
              deps.logger.info("created a webhook route secret: give the content of this file to the route's sender", {
                listener: entry.name,
                route: routes[j]?.path,
                file: r.secretFile.path,
              });
          });
        }
      }
      for (const r of running) {
        const l = r.listener;
        l.on("error", (e) => deps.logger.error("listener failed", { listener: r.name, error: e.message }));
        await l.start();
        try {
          if (l instanceof WebhookListener) r.url = (await l.listening()).url;
          else if (l instanceof FileWatcherListener) await l.whenReady();
        } catch (e) {
          await stop();
          throw new ListenerStartError(`listener ${r.name} cannot start: ${errorMessage(e)}`, {
            cause: e,
            context: { listener: r.name },
          });
        }
      }
      ready = true;
    },
    stop,
  };
}

function build(
  entry: ResolvedListener,
  principal: PrincipalRequester,
  endpoints: readonly string[],
  stateDir: string,
  logger: Logger,
): EventListener {
  const common = { principal, logger, ...(entry.spec.source !== undefined ? { source: entry.spec.source } : {}) };
  switch (entry.spec.type) {
    case "webhook": {
      const s = entry.spec;
      const secret = "secret" in entry ? entry.secret : undefined;
      return new WebhookListener({
        ...common,
        host: s.host,
        port: s.port,
        ...(secret !== undefined ? { secret } : {}),
        stateDir,
        signatureToleranceMs: s.signature_tolerance_s * 1000,
        maxBodyBytes: s.max_body_bytes,
        triggerTimeoutMs: s.trigger_timeout_ms,
        retryAfterS: s.retry_after_s,
        ...(s.workflows !== undefined ? { workflows: s.workflows } : {}),
        ...(s.routes !== undefined
          ? { routes: webhookRoutes(s.routes, "routeSecrets" in entry ? entry.routeSecrets : undefined) }
          : {}),
        triggerPath: s.trigger_path,
      });
    }
    case "file_watcher": {
      const s = entry.spec;
      return new FileWatcherListener({
        ...common,
        path: s.path,
        workflow: s.workflow,
        ...(s.glob !== undefined ? { glob: s.glob } : {}),
        ...(s.events !== undefined ? { events: s.events } : {}),
        debounceMs: s.debounce_ms,
        maxWaitMs: s.max_wait_ms,
        pathsParam: s.paths_param,
        ...(s.params !== undefined ? { params: s.params } : {}),
        // `params` stays the listener's own option (under the paths param); the rest is the mapping.
        mapping: mappingOf({ ...s, params: undefined }),
        awaitWriteFinishMs: s.await_write_finish_ms,
        usePolling: s.use_polling,
      });
    }
    case "rabbitmq": {
      const s = entry.spec;
      return new RabbitMqListener({
        ...common,
        url: "url" in entry ? entry.url : "amqp://guest:guest@127.0.0.1:5672",
        queue: s.queue,
        prefetch: s.prefetch,
        assertQueue: s.assert_queue,
        ...(s.dead_letter_exchange !== undefined ? { deadLetterExchange: s.dead_letter_exchange } : {}),
        requireIdempotencyKey: s.require_idempotency_key,
        triggerTimeoutMs: s.trigger_timeout_ms,
        ...(s.workflows !== undefined ? { workflows: s.workflows } : {}),
        ...(s.workflow !== undefined ? { workflow: s.workflow, mapping: mappingOf(s) } : {}),
      });
    }
    case "postgres": {
      const s = entry.spec;
      const cs = "connectionString" in entry ? entry.connectionString : undefined;
      return new PostgresListener({
        ...common,
        ...(cs !== undefined ? { connectionString: cs } : {}),
        channel: s.channel,
        applicationName: s.application_name,
        triggerTimeoutMs: s.trigger_timeout_ms,
        retryForMs: s.retry_for_ms,
        ...(s.workflows !== undefined ? { workflows: s.workflows } : {}),
        ...(s.workflow !== undefined ? { workflow: s.workflow, mapping: mappingOf(s) } : {}),
      });
    }
    case "redis_streams": {
      const s = entry.spec;
      return new RedisStreamsListener({
        ...common,
        url: "url" in entry ? entry.url : "redis://127.0.0.1:6379",
        stream: s.stream,
        group: s.group,
        // Stable across restarts and distinct per listener of the file (names are unique).
        consumer: s.consumer ?? `${hostname()}-${entry.name}`,
        startId: s.start_id,
        field: s.field,
        count: s.count,
        blockMs: s.block_ms,
        claimIdleMs: s.claim_idle_ms,
        ...(s.claim_interval_ms !== undefined ? { claimIntervalMs: s.claim_interval_ms } : {}),
        maxDeliveries: s.max_deliveries,
        ...(s.dead_letter_stream !== undefined ? { deadLetterStream: s.dead_letter_stream } : {}),
        ...(s.dead_letter_max_len !== undefined ? { deadLetterMaxLen: s.dead_letter_max_len } : {}),
        triggerTimeoutMs: s.trigger_timeout_ms,
        ...(s.workflows !== undefined ? { workflows: s.workflows } : {}),
        ...(s.workflow !== undefined ? { workflow: s.workflow, mapping: mappingOf(s) } : {}),
      });
    }
    case "run_status": {
      const s = entry.spec;
      // Its own connection, with a key that may list every run (role scheduler or operator).
      const key =
        s.key_file !== undefined
          ? clientKeyOf(readKeyFile(s.key_file))
          : findClientKey(s.key_name ?? SCHEDULER_KEY_NAME, { ...process.env, CDKTR_KEY_FILE: undefined });
      if (key === null && !authDisabled())
        throw new ConfigError(
          [
            `listener ${entry.name}: no key \`${s.key_name ?? SCHEDULER_KEY_NAME}\` in the keys directory: give key_file (a key of role scheduler or operator, e.g. from \`cdktr keys create chaining --role scheduler\`) or key_name`,
          ],
          "invalid listeners config",
        );
      return new RunOutcomeListener({
        principal: { endpoints },
        key,
        logger,
        ...(s.source !== undefined ? { source: s.source } : {}),
        rules: s.rules.map((r) => ({
          after: r.after,
          status: r.status,
          workflow: r.workflow,
          ...(r.params !== undefined ? { params: r.params } : {}),
        })),
        stateFile: join(stateDir, `run-status-${fileSafe(entry.name)}.json`),
        sweepIntervalMs: s.sweep_interval_ms,
        lateMarginMs: s.late_margin_ms,
        triggerTimeoutMs: s.trigger_timeout_ms,
      });
    }
    case "nats": {
      const s = entry.spec;
      const auth = "natsAuth" in entry ? entry.natsAuth : {};
      return new NatsListener({
        ...common,
        ...auth,
        ...(s.servers !== undefined ? { servers: s.servers } : {}),
        stream: s.stream,
        durable: s.durable,
        ...(s.filter_subject !== undefined ? { filterSubject: s.filter_subject } : {}),
        createStream: s.create_stream,
        ...(s.subjects !== undefined ? { subjects: s.subjects } : {}),
        ackWaitMs: s.ack_wait_ms,
        maxInFlight: s.max_in_flight,
        ...(s.dead_letter_subject !== undefined ? { deadLetterSubject: s.dead_letter_subject } : {}),
        triggerTimeoutMs: s.trigger_timeout_ms,
        ...(s.workflows !== undefined ? { workflows: s.workflows } : {}),
        ...(s.workflow !== undefined ? { workflow: s.workflow, mapping: mappingOf(s) } : {}),
      });
    }
    case "mqtt": {
      const s = entry.spec;
      const password = "password" in entry ? entry.password : undefined;
      return new MqttListener({
        ...common,
        url: "url" in entry ? entry.url : "mqtt://127.0.0.1:1883",
        clientId: s.client_id,
        topics: s.topics,
        ...(s.username !== undefined ? { username: s.username } : {}),
        ...(password !== undefined ? { password } : {}),
        receiveMaximum: s.receive_maximum,
        sessionExpirySeconds: s.session_expiry_s,
        keepaliveSeconds: s.keepalive_s,
        ...(s.dead_letter_topic !== undefined ? { deadLetterTopic: s.dead_letter_topic } : {}),
        requireIdempotencyKey: s.require_idempotency_key,
        triggerTimeoutMs: s.trigger_timeout_ms,
        ...(s.workflows !== undefined ? { workflows: s.workflows } : {}),
        ...(s.workflow !== undefined ? { workflow: s.workflow, mapping: mappingOf(s) } : {}),
      });
    }
  }
}

/** The `routes` of a webhook entry as {@link WebhookRoute}s, with their resolved secrets. */
function webhookRoutes(
  routes: readonly WebhookRouteSpec[],
  secrets: readonly ResolvedRouteSecret[] | undefined,
): WebhookRoute[] {
  return routes.map((r, j) => {
    const secret = secrets?.[j]?.secret;
    return {
      path: r.path,
      workflow: r.workflow,
      flavour: r.flavour,
      ...(secret !== undefined ? { secret } : {}),
      ...(r.hmac !== undefined
        ? {
            hmac: {
              header: r.hmac.header,
              algorithm: r.hmac.algorithm,
              encoding: r.hmac.encoding,
              ...(r.hmac.prefix !== undefined ? { prefix: r.hmac.prefix } : {}),
            },
          }
        : {}),
      mapping: mappingOf(r),
      requireIdempotencyKey: r.require_idempotency_key,
    };
  });
}

/** A listener name as a file name part (letters, digits, `.`, `_`, `-`; others as `_`). */
function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_");
}

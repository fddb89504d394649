/**
 * An MQTT event listener: QoS 1 subscriptions in a persistent session, one run per message.
 */
import { connect, ReasonCodes, type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { JSONValue } from "@jmespath-community/jmespath";
import {
  UsageError,
  autoIdempotencyKey,
  backoffDelay,
  errorMessage,
  type BackoffOptions,
  type Logger,
} from "@cdktr/protocol";
import { EventListener, sleep, type EventListenerOptions } from "../listener/event-listener.js";
import { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";
import { EventMapping, type EventMappingSpec } from "../mapping/event-mapping.js";
import { resolveMessageTrigger } from "../mapping/message-trigger.js";
import { DeadLetterPublisher } from "./dead-letter-publisher.js";
import { NotAcknowledgedError } from "../errors.js";
import { topicFilterProblem, topicMatches, topicNameProblem } from "./topic-filter.js";
import { RETRYABLE_TRIGGER_CODES as RETRYABLE, redactUrl as redact } from "../listener/source-common.js";

/** TLS settings of an `mqtts://` connection (the system's CAs are trusted by default). */
export interface MqttTlsOptions {
  /** CA certificates (PEM) to trust instead of the system's, e.g. a private broker CA. */
  ca?: string | string[] | Buffer | Buffer[];
  /** Client certificate (PEM), for brokers that authenticate clients by certificate. */
  cert?: string | Buffer;
  /** Private key (PEM) of `cert`. */
  key?: string | Buffer;
  /** Refuse a broker certificate that does not verify. @default true */
  rejectUnauthorized?: boolean;
}

/** Options of {@link MqttListener}. */
export interface MqttListenerOptions extends EventListenerOptions {
  /** Broker URL, `mqtt://host:1883`, or `mqtts://host:8883` for TLS. @default "mqtt://127.0.0.1:1883" */
  url?: string;
  /**
   * The MQTT client id, which names the persistent session on the broker: its subscriptions and
   * the messages queued while the listener is away. Keep it stable across restarts and give every
   * listener its own: two connections with one client id take the session from each other.
   * The dead-letter connection uses `<clientId>-dead-letter`.
   */
  clientId: string;
  /** Topic filters subscribed at QoS 1; wildcards allowed (`sensors/+/alarm`, `orders/#`), and `$share/<group>/<filter>`. */
  topics: readonly string[];
  /** User name (also accepted in the URL). */
  username?: string;
  /** Password (also accepted in the URL). */
  password?: string;
  /** TLS settings of an `mqtts://` URL. */
  tls?: MqttTlsOptions;
  /**
   * How many messages the broker may send before they are acknowledged (MQTT 5 Receive Maximum):
   * the bound on the messages in flight to this listener. The others wait in the broker's session.
   * @default 10
   */
  receiveMaximum?: number;
  /**
   * How long the broker keeps the session (subscriptions and queued messages) after the listener
   * disconnects, in seconds (MQTT 5 Session Expiry Interval). Messages published to a session that
   * expired are lost. @default 604800 (7 days)
   */
  sessionExpirySeconds?: number;
  /**
   * MQTT keepalive, in seconds. A message waiting for the principal is held at most half of it,
   * then released to the broker (see the class comment). @default 60
   */
  keepaliveSeconds?: number;
  /** Time to connect (TCP, TLS and CONNACK). @default 10000 */
  connectTimeoutMs?: number;
  /**
   * Topic where parked messages are republished (QoS 1, not retained) before they are
   * acknowledged: the original payload with the MQTT 5 user properties `cdktr-reason`,
   * `cdktr-error` and `cdktr-topic` (and `cdktr-code` for a refusal by the principal) added to its
   * own. It must not match one of `topics`. Unset: parked messages are only logged.
   */
  deadLetterTopic?: string;
  /**
   * Park messages that carry no idempotency key (trigger message `idempotency_key`, or the
   * mapping's `idempotencyKey` expression): without one a redelivery can start a second run.
   * @default false
   */
  requireIdempotencyKey?: boolean;
  /** Deadline of each run request to the principal, and of each dead-letter publish. @default 5000 */
  triggerTimeoutMs?: number;
  /** When set, only these workflow ids can be triggered: a message for another one is parked. */
  workflows?: readonly string[];
  /** Backoff of reconnects and of retries while the principal is unavailable. @default {initialMs: 500, maxMs: 30000} */
  backoff?: BackoffOptions;
  /**
   * The workflow every message triggers. Set: a message is any payload (JSON or text), mapped into
   * the run with {@link mapping}. Unset: each message is a trigger message naming its workflow.
   */
  workflow?: string;
  /**
   * With {@link workflow}: fixed params, params mapped from the event, a `when` filter and an
   * idempotency key expression. The event document is `{body, topic, retain, user_properties}`
   * (`body`: the JSON payload, else its text; `user_properties`: the MQTT 5 user properties, a
   * property sent several times as a list).
   */
  mapping?: EventMappingSpec;
}

/** Counters of a {@link MqttListener}, for health checks and tests. */
export interface MqttListenerStats {
  /**
   * Messages acknowledged after the principal accepted their run (new, duplicate or skipped).
   * A QoS 0 message has no acknowledgement; it is counted here once its run was accepted.
   */
  acked: number;
  /**
   * Messages parked: acknowledged without a run (after being republished to the dead-letter topic
   * when one is set) because they are malformed, outside `workflows`, unmapped, without a key
   * while one is required, or refused by the principal for good.
   */
  rejected: number;
  /** Messages acknowledged without a run because the mapping's `when` filter was false. */
  filtered: number;
  /**
   * Attempts that failed because the principal (or the dead-letter topic) was unavailable: the
   * message stayed unacknowledged and was tried again after a backoff.
   */
  retrying: number;
  /** Successful connections to the broker (the first one included). */
  connections: number;
  /** True while intake is paused because the principal (or the dead-letter topic) is unavailable. */
  paused: boolean;
  /** True while connected with every subscription granted. */
  subscribed: boolean;
}

/** MQTT 5 DISCONNECT reason: another connection took this client id's session. */
const SESSION_TAKEN_OVER = 0x8e;
/**
 * A connection that was subscribed for this long resets the reconnect backoff; a shorter one (a
 * subscription the broker refuses, two listeners taking one client id's session from each other)
 * makes it grow, so such a cycle never reconnects in a hot loop.
 */
const STABLE_CONNECTION_MS = 10_000;
/** Longest `cdktr-error` user property of a dead-lettered message. */
const MAX_ERROR_CHARS = 1000;

/** What becomes of one message: acknowledged and counted, or left to the broker. */
type Settlement = "acked" | "rejected" | "filtered" | "keep";

/** What one message asks for, decided once per delivery. */
type Plan =
  | { kind: "filtered" }
  | { kind: "park"; reason: string; error: string; code?: string; local: boolean }
  | { kind: "trigger"; workflowId: string; params?: Record<string, string | number | boolean>; key: string };

/**
 * Subscribes to MQTT topics (QoS 1, persistent session: `clean: false` with a stable client id,
 * MQTT 5) and triggers one run per message: a trigger message
 * `{"workflow_id": "...", "params"?: {...}, "idempotency_key"?: "..."}`, or with `workflow` any
 * payload mapped into params.
 *
 * - A message is **acknowledged (PUBACK) only after the principal accepted the run**; until then
 *   the broker keeps it in the session and redelivers it on the next connection. Messages are
 *   handled one at a time, in order, and at most `receiveMaximum` are in flight from the broker.
 * - The run's idempotency key is the message's own (`idempotency_key`, or the mapping's
 *   `idempotencyKey`), scoped `mqtt:<topic>:<key>`: a redelivered message never starts a second
 *   run. MQTT packet ids are reused, so they are not keys: **a message without a key that is
 *   redelivered after a crash or a lost connection can start a second run** (set
 *   `requireIdempotencyKey` to park such messages).
 * - **Poison messages** (malformed, outside `workflows`, unmapped, no key while required, refused
 *   by the principal for good) are parked: republished to `deadLetterTopic` when set, then
 *   acknowledged, so the broker never redelivers them. Messages filtered out by the mapping's
 *   `when` are acknowledged without a run.
 * - **Principal unavailable**: the message is not acknowledged; it is held and its trigger retried
 *   after a growing backoff while intake pauses (the broker keeps the rest in the session). A
 *   message is held at most half the keepalive (MQTT.js reads nothing else from the connection
 *   meanwhile, not even the keepalive's answer): past that, the connection is closed without
 *   acknowledging it and reopened after the next backoff, and the broker redelivers it.
 * - Connection loss: reconnect with backoff; unacknowledged messages are redelivered.
 */
export class MqttListener extends EventListener {
  readonly #url: string;
  readonly #clientId: string;
  readonly #topics: readonly string[];
  readonly #clientOptions: IClientOptions;
  readonly #holdBudgetMs: number;
  readonly #requireKey: boolean;
  readonly #timeout: number;
  readonly #allow: ReadonlySet<string> | null;
  readonly #backoff: BackoffOptions;
  readonly #workflow: string | undefined;
  readonly #mapping: EventMapping | null;
  readonly #deadLetter: DeadLetterPublisher | null;
  readonly #stats: MqttListenerStats = {
    acked: 0,
    rejected: 0,
    filtered: 0,
    retrying: 0,
    connections: 0,
    paused: false,
    subscribed: false,
  };
  #pauseAttempt = 0;

  /**
   * @throws UsageError (`INVALID_ARGUMENT`) for an empty client id, no topics or an invalid topic
   *   filter, a dead-letter topic that is not a plain topic or that the listener subscribes to, a
   *   URL that is not `mqtt://` or `mqtts://`, out-of-range numbers, or `mapping` without `workflow`
   */
  constructor(options: MqttListenerOptions) {
    super({ ...options, source: options.source ?? "mqtt" });
    const bad = (message: string): never => {
      throw new UsageError("INVALID_ARGUMENT", `MqttListener: ${message}`);
    };
    this.#url = options.url ?? "mqtt://127.0.0.1:1883";
    let protocol = "";
    try {
      protocol = new URL(this.#url).protocol;
    } catch {
      bad(`\`url\` ${JSON.stringify(redact(this.#url))} is not a URL: write mqtt://host:1883 or mqtts://host:8883`);
    }
    if (protocol !== "mqtt:" && protocol !== "mqtts:")
      bad(`\`url\` must start with mqtt:// or mqtts:// (TLS), not ${protocol}//`);
    if (typeof options.clientId !== "string" || options.clientId === "")
      bad("`clientId` must be a non-empty, stable client id: it names the persistent session on the broker");
    this.#clientId = options.clientId;
    if (options.topics.length === 0) bad("`topics` must list at least one topic filter");
    for (const t of options.topics) {
      const problem = topicFilterProblem(t);
      if (problem !== null) bad(`topic filter ${JSON.stringify(t)}: ${problem}`);
    }
    this.#topics = [...options.topics];
    const dlt = options.deadLetterTopic;
    if (dlt !== undefined) {
      const problem = topicNameProblem(dlt);
      if (problem !== null) bad(`\`deadLetterTopic\` ${JSON.stringify(dlt)}: ${problem}`);
      const loop = this.#topics.find((t) => topicMatches(t, dlt));
      if (loop !== undefined)
        bad(
          `\`deadLetterTopic\` ${JSON.stringify(dlt)} matches the subscription ${JSON.stringify(loop)}: parked messages would come back; pick a topic outside the subscriptions`,
        );
    }
    const receiveMaximum = options.receiveMaximum ?? 10;
    if (!Number.isInteger(receiveMaximum) || receiveMaximum < 1 || receiveMaximum > 65_535)
      bad("`receiveMaximum` must be an integer from 1 to 65535");
    const sessionExpiry = options.sessionExpirySeconds ?? 604_800;
    if (!Number.isInteger(sessionExpiry) || sessionExpiry < 1 || sessionExpiry > 0xffff_ffff)
      bad(
        "`sessionExpirySeconds` must be an integer from 1 to 4294967295 (0 would end the session with the connection)",
      );
    const keepalive = options.keepaliveSeconds ?? 60;
    if (!Number.isInteger(keepalive) || keepalive < 1 || keepalive > 65_535)
      bad("`keepaliveSeconds` must be an integer from 1 to 65535");
    this.#holdBudgetMs = (keepalive * 1000) / 2;
    this.#requireKey = options.requireIdempotencyKey ?? false;
    this.#timeout = options.triggerTimeoutMs ?? 5000;
    this.#allow = options.workflows !== undefined ? new Set(options.workflows) : null;
    this.#backoff = options.backoff ?? {};
    if (options.mapping !== undefined && options.workflow === undefined)
      bad("`mapping` needs `workflow` (without it each message names its workflow and params itself)");
    this.#workflow = options.workflow;
    this.#mapping = options.mapping !== undefined ? EventMapping.compile(options.mapping, "mapping") : null;
    const credentials: IClientOptions = {
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      ...(options.tls ?? {}),
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      keepalive,
    };
    this.#clientOptions = {
      ...credentials,
      clientId: this.#clientId,
      protocolVersion: 5,
      clean: false,
      reconnectPeriod: 0,
      resubscribe: false,
      manualConnect: true,
      properties: { sessionExpiryInterval: sessionExpiry, receiveMaximum },
    };
    this.#deadLetter =
      dlt === undefined
        ? null
        : new DeadLetterPublisher({
            url: this.#url,
            client: { ...credentials, clientId: `${this.#clientId}-dead-letter` },
            topic: dlt,
            logger: this.logger,
          });
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<MqttListenerStats> {
    return { ...this.#stats };
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    const log = this.logger.child({ clientId: this.#clientId });
    let failures = 0;
    try {
      while (!signal.aborted) {
        const end = await this.#connection(signal, log);
        if (signal.aborted) break;
        let delay: number;
        if (end.releaseDelayMs !== null) {
          failures = 0;
          delay = end.releaseDelayMs;
        } else {
          failures = end.stable ? 1 : failures + 1;
          delay = backoffDelay(failures, this.#backoff);
          log.warn(end.connected ? "mqtt connection lost; reconnecting" : "mqtt connection failed; retrying", {
            url: redact(this.#url),
            reason: end.reason,
            retryInMs: delay,
          });
        }
        await sleep(delay, signal);
      }
    } finally {
      await this.#deadLetter?.close();
    }
  }

  /** One connection, from CONNECT to its end (lost, refused, released, or the listener stopping). */
  async #connection(
    signal: AbortSignal,
    log: Logger,
  ): Promise<{ connected: boolean; stable: boolean; reason: string; releaseDelayMs: number | null }> {
    const client = connect(this.#url, this.#clientOptions);
    const conn = new BrokerConnection(client);
    const stop = (): void => conn.end("stopping");
    signal.addEventListener("abort", stop, { once: true });
    let lastError: string | null = null;
    client.handleMessage = (packet, done) => this.#receive(conn, packet, done, log);
    client.on("error", (e) => {
      lastError = e.message;
      log.debug("mqtt client error", { error: e.message });
    });
    client.on("disconnect", (packet) => {
      const code = packet.reasonCode ?? 0;
      const reason = ReasonCodes[code as keyof typeof ReasonCodes] ?? `reason code ${code}`;
      lastError = `the broker disconnected: ${reason}`;
      if (code === SESSION_TAKEN_OVER)
        log.error("another connection took this client id's session: give every listener its own client id", {
          reason,
        });
    });
    client.on("close", () => {
      conn.closed = true;
      conn.end(lastError ?? "connection closed");
    });
    try {
      const connack = new Promise<{ sessionPresent: boolean }>((resolve) => client.once("connect", resolve));
      client.connect();
      const first = await Promise.race([connack, conn.ended.then(() => null)]);
      if (first === null) return { connected: false, stable: false, reason: conn.reason, releaseDelayMs: null };
      const connectedAt = Date.now();
      this.#stats.connections += 1;
      const resumed = this.#stats.connections > 1;
      log.info("mqtt connected", {
        url: redact(this.#url),
        sessionPresent: first.sessionPresent,
        topics: this.#topics,
      });
      if (resumed && !first.sessionPresent)
        log.warn(
          "the broker did not keep this client's session (expired, or lost by the broker): messages published while the listener was away were not kept",
        );
      void this.#subscribe(conn, log);
      await conn.ended;
      const stable = conn.subscribed && Date.now() - connectedAt >= STABLE_CONNECTION_MS;
      return { connected: true, stable, reason: conn.reason, releaseDelayMs: conn.releaseDelayMs };
    } finally {
      signal.removeEventListener("abort", stop);
      conn.end("closing");
      this.#stats.subscribed = false;
      // The message in hand finishes (bounded by its trigger deadline) and is acknowledged if its
      // run was accepted, before the connection closes.
      await conn.settled();
      conn.closed = true;
      await closeClient(client);
    }
  }

  /** Subscribe (again: with a resumed session the broker already has the subscriptions). */
  async #subscribe(conn: BrokerConnection, log: Logger): Promise<void> {
    // rh 1: retained messages only for a subscription that did not exist yet, not on every reconnect.
    const map = Object.fromEntries(this.#topics.map((t) => [t, { qos: 1 as const, rh: 1 }]));
    try {
      const granted = await conn.client.subscribeAsync(map);
      if (conn.closed || conn.reason !== "") return;
      const downgraded = granted.filter((g) => g.qos === 0).map((g) => g.topic);
      if (downgraded.length > 0)
        log.warn("the broker granted only QoS 0: those messages are not acknowledged nor redelivered", {
          topics: downgraded,
        });
      conn.subscribed = true;
      this.#stats.subscribed = true;
      log.info("mqtt subscribed", { topics: this.#topics });
    } catch (e) {
      if (conn.closed || conn.reason !== "") return;
      log.error("mqtt subscription refused; reconnecting with backoff", {
        topics: this.#topics,
        error: errorMessage(e),
      });
      conn.end(`subscription refused: ${errorMessage(e)}`);
    }
  }

  /**
   * MQTT.js's hook for one incoming message: it reads nothing else from the connection until
   * `done` is called, and `done()` (no error) sends the PUBACK of a QoS 1 message; `done(error)`
   * goes on without one.
   */
  #receive(conn: BrokerConnection, packet: IPublishPacket, done: (error?: Error) => void, log: Logger): void {
    if (conn.reason !== "") {
      done(new NotAcknowledgedError("the connection is closing"));
      return;
    }
    const handled = this.#deliver(conn, packet, log).then(
      (settlement) => {
        if (settlement === "keep" || conn.closed || !conn.client.connected) {
          done(new NotAcknowledgedError("the run was not accepted: the broker redelivers the message"));
          return;
        }
        done();
        this.#stats[settlement] += 1;
      },
      (e: unknown) => {
        log.error("mqtt message handling failed; left unacknowledged", { topic: packet.topic, error: errorMessage(e) });
        done(new NotAcknowledgedError("handling failed: the broker redelivers the message"));
      },
    );
    conn.track(handled);
  }

  /** Trigger or park one message, holding it (with backoff) while the principal is unavailable. */
  async #deliver(conn: BrokerConnection, packet: IPublishPacket, connLog: Logger): Promise<Settlement> {
    const topic = packet.topic;
    const log = connLog.child({ topic, packetId: packet.messageId, qos: packet.qos, redelivered: packet.dup });
    let plan = this.#plan(packet);
    const heldSince = Date.now();
    for (;;) {
      let failure: string;
      if (plan.kind === "filtered") {
        log.debug("mqtt message filtered out by `when`; acknowledged without a run");
        return "filtered";
      }
      if (plan.kind === "trigger") {
        const { workflowId, params, key } = plan;
        const result = await this.runWorkflow(workflowId, {
          ...(params !== undefined ? { params } : {}),
          idempotencyKey: key,
          retry: false,
          timeoutMs: this.#timeout,
        });
        if (result.success) {
          this.#resume();
          log.info("mqtt message triggered a run", {
            workflowId,
            runId: result.runId,
            duplicate: result.duplicate,
            skipped: result.skipped,
          });
          return "acked";
        }
        const code = result.error?.code ?? "INTERNAL";
        const message = result.error?.message ?? "refused";
        if (!RETRYABLE.has(code) && result.error?.retryable !== true) {
          plan = { kind: "park", reason: "refused", error: message, code, local: false };
          continue;
        }
        failure = `principal unavailable (${code}: ${message})`;
      } else {
        const parked = await this.#park(packet, plan, log);
        if (parked === null) {
          this.#resume();
          if (plan.local) this.rejectEvent(plan.reason, plan.error);
          return "rejected";
        }
        failure = parked;
      }
      // Unavailable: keep the message unacknowledged and try again later.
      this.#stats.retrying += 1;
      this.#stats.paused = true;
      this.#pauseAttempt += 1;
      const delay = backoffDelay(this.#pauseAttempt, this.#backoff);
      if (conn.signal.aborted) return "keep";
      if (Date.now() - heldSince + delay + this.#timeout > this.#holdBudgetMs) {
        log.warn("intake paused; message released unacknowledged: the broker redelivers it after the reconnect", {
          error: failure,
          reconnectInMs: delay,
        });
        conn.release(delay);
        return "keep";
      }
      log.warn("intake paused; message held unacknowledged and retried after a backoff", {
        error: failure,
        retryInMs: delay,
      });
      await sleep(delay, conn.signal);
      if (conn.signal.aborted) return "keep";
    }
  }

  /** Decide what a message asks for. Never throws. */
  #plan(packet: IPublishPacket): Plan {
    const topic = packet.topic;
    const resolved = resolveMessageTrigger(
      packet.payload,
      { topic, retain: packet.retain, user_properties: jsonUserProperties(packet.properties?.userProperties) },
      {
        ...(this.#workflow !== undefined ? { workflow: this.#workflow } : {}),
        mapping: this.#mapping,
        allow: this.#allow,
      },
    );
    if (!resolved.ok)
      return resolved.reason === "filtered"
        ? { kind: "filtered" }
        : { kind: "park", reason: resolved.reason, error: resolved.error, local: true };
    if (resolved.key === undefined && this.#requireKey)
      return {
        kind: "park",
        reason: "no_key",
        error: "the message has no idempotency key (idempotency_key, or the mapping's key expression)",
        local: true,
      };
    return {
      kind: "trigger",
      workflowId: resolved.workflowId,
      ...(resolved.params !== undefined ? { params: resolved.params } : {}),
      // Without a key of its own: one key for this delivery (its retries here reuse it), none across redeliveries.
      key: scopedIdempotencyKey(`mqtt:${topic}:`, resolved.key ?? autoIdempotencyKey()),
    };
  }

  /** Republish a parked message to the dead-letter topic. Null once done; else why it failed. */
  async #park(packet: IPublishPacket, plan: Plan & { kind: "park" }, log: Logger): Promise<string | null> {
    const logged = { reason: plan.reason, error: plan.error, ...(plan.code !== undefined ? { code: plan.code } : {}) };
    if (this.#deadLetter === null) {
      log.warn("mqtt message parked: acknowledged without a run (no dead-letter topic)", logged);
      return null;
    }
    const props = packet.properties;
    try {
      await this.#deadLetter.publish(
        Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        {
          ...(props?.contentType !== undefined ? { contentType: props.contentType } : {}),
          ...(props?.payloadFormatIndicator !== undefined
            ? { payloadFormatIndicator: props.payloadFormatIndicator }
            : {}),
          userProperties: {
            ...(props?.userProperties ?? {}),
            "cdktr-reason": plan.reason,
            "cdktr-error": propertyText(plan.error).slice(0, MAX_ERROR_CHARS),
            "cdktr-topic": packet.topic,
            ...(plan.code !== undefined ? { "cdktr-code": plan.code } : {}),
          },
        },
        this.#timeout,
      );
    } catch (e) {
      return `cannot republish to the dead-letter topic: ${errorMessage(e)}`;
    }
    log.warn("mqtt message parked on the dead-letter topic and acknowledged", logged);
    return null;
  }

  #resume(): void {
    if (this.#stats.paused) this.logger.info("mqtt intake resumed");
    this.#pauseAttempt = 0;
    this.#stats.paused = false;
  }
}

/** One connection's client and state. */
class BrokerConnection {
  readonly client: MqttClient;
  /** True once the socket is gone: nothing can be acknowledged any more. */
  closed = false;
  /** Why the connection ends ("" while it runs). */
  reason = "";
  /** Set when a held message released the connection: reconnect after this delay. */
  releaseDelayMs: number | null = null;
  /** True once the broker granted every subscription on this connection. */
  subscribed = false;
  /** Resolves when the connection should end. */
  readonly ended: Promise<void>;
  readonly #ac = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  #resolveEnded: () => void = () => undefined;

  constructor(client: MqttClient) {
    this.client = client;
    this.ended = new Promise((resolve) => {
      this.#resolveEnded = resolve;
    });
  }

  /** Aborted when the connection ends: a held message stops waiting. */
  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  end(reason: string): void {
    if (this.reason !== "") return;
    this.reason = reason;
    this.#ac.abort();
    this.#resolveEnded();
  }

  release(delayMs: number): void {
    if (this.reason !== "") return;
    this.releaseDelayMs = delayMs;
    this.end("released a message held while the principal is unavailable");
  }

  track(p: Promise<void>): void {
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  /** Wait for the messages in hand. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
  }
}

/** End a client: DISCONNECT (the session stays), or drop the socket when that takes over 2 s. */
async function closeClient(client: MqttClient): Promise<void> {
  if (!client.connected) {
    client.end(true);
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), 2000);
  });
  const r = await Promise.race([client.endAsync(false).catch(() => undefined), timeout]);
  clearTimeout(timer);
  if (r === "timeout") client.end(true);
}

/** MQTT 5 user properties as the event document's `user_properties` object. */
function jsonUserProperties(props: Record<string, string | string[]> | undefined): Record<string, JSONValue> {
  const out: Record<string, JSONValue> = {};
  for (const [k, v] of Object.entries(props ?? {})) out[k] = Array.isArray(v) ? [...v] : v;
  return out;
}

/**
 * `text` as an MQTT string brokers accept: control characters (a principal's multi-line error) and
 * the noncharacters U+FFFE/U+FFFF become spaces (Mosquitto drops a connection that sends them).
 */
function propertyText(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\ufffe\uffff]+/g, " ");
}

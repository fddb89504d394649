/**
 * A RabbitMQ event listener: consumes a durable queue of trigger messages.
 */
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from "amqplib";
import type { JSONValue } from "@jmespath-community/jmespath";
import type { Logger } from "@cdktr/protocol";
import { EventListener, sleep, type EventListenerOptions } from "../listener/event-listener.js";
import { UsageError, backoffDelay, errorMessage, type BackoffOptions } from "@cdktr/protocol";
import { scopedIdempotencyKey } from "./trigger-message.js";
import { EventMapping, type EventMappingSpec } from "../mapping/event-mapping.js";
import { resolveMessageTrigger } from "../mapping/message-trigger.js";
import { RETRYABLE_TRIGGER_CODES as RETRYABLE, redactUrl as redact } from "../listener/source-common.js";

/** Options of {@link RabbitMqListener}. */
export interface RabbitMqListenerOptions extends EventListenerOptions {
  /** AMQP URL. @default "amqp://guest:guest@127.0.0.1:5672" */
  url?: string;
  /** Queue to consume. */
  queue: string;
  /** Messages in flight at once (`basic.qos`). @default 10 */
  prefetch?: number;
  /**
   * Declare the queue (durable) before consuming. Set false to only check that it exists (when
   * it is declared elsewhere with other arguments). @default true
   */
  assertQueue?: boolean;
  /** Dead-letter exchange set on the queue when this listener declares it (`x-dead-letter-exchange`). */
  deadLetterExchange?: string;
  /** Reject (to the dead-letter exchange) messages that carry neither a message id nor an `idempotency_key`. @default false */
  requireIdempotencyKey?: boolean;
  /** Deadline of each run request to the principal. @default 5000 */
  triggerTimeoutMs?: number;
  /**
   * When set, only these workflow ids can be triggered: a message for another workflow is
   * rejected to the dead-letter exchange and never reaches the principal.
   */
  workflows?: readonly string[];
  /** Backoff of reconnects and of pauses while the principal is unavailable. @default {initialMs: 500, maxMs: 30000} */
  backoff?: BackoffOptions;
  /**
   * The workflow every message triggers. Set: a message is any payload (JSON or text), mapped into
   * the run with {@link mapping}. Unset: each message is a trigger message naming its workflow.
   */
  workflow?: string;
  /**
   * With {@link workflow}: fixed params, params mapped from the event, a `when` filter and an
   * idempotency key expression. The event document is `{body, routing_key, exchange, message_id,
   * headers}` (`body`: the JSON payload, else its text).
   */
  mapping?: EventMappingSpec;
}

/** Counters of a {@link RabbitMqListener}, for health checks and tests. */
export interface RabbitMqListenerStats {
  /** Messages acknowledged after the principal accepted the run (including duplicates). */
  acked: number;
  /** Messages rejected without requeue (malformed, not in `workflows`, unmapped, unknown workflow, invalid params, no key). */
  rejected: number;
  /** Messages acknowledged without a run because the mapping's `when` filter was false. */
  filtered: number;
  /** Messages put back in the queue because the principal was unavailable. */
  requeued: number;
  /** Successful connections (the first one included). */
  connections: number;
  /** True while consumption is paused because the principal is unavailable. */
  paused: boolean;
  /** True while a consumer is registered. */
  consuming: boolean;
}

/**
 * Consumes a durable RabbitMQ queue whose messages are JSON
 * `{"workflow_id": "...", "params"?: {...}, "idempotency_key"?: "..."}`.
 *
 * - A message is acknowledged only after the principal accepted the run.
 * - The body's `idempotency_key`, else `properties.messageId`, becomes the run's idempotency key
 *   `amqp:<queue>:<id>`, so a redelivered message never starts a second run.
 * - Malformed messages, workflows outside the `workflows` allow-list, unknown workflows and
 *   invalid params are rejected without requeue (to the queue's dead-letter exchange when it has
 *   one): a poison message cannot loop, and a refused workflow is never triggered.
 * - When the principal is unavailable the consumer is cancelled, the message is requeued, and
 *   consumption resumes after a growing backoff: messages wait in the queue, never in a hot loop.
 * - Connection loss: reconnect with backoff.
 */
export class RabbitMqListener extends EventListener {
  readonly #url: string;
  readonly #queue: string;
  readonly #prefetch: number;
  readonly #assert: boolean;
  readonly #dlx: string | undefined;
  readonly #requireKey: boolean;
  readonly #timeout: number;
  readonly #allow: ReadonlySet<string> | null;
  readonly #backoff: BackoffOptions;
  readonly #workflow: string | undefined;
  readonly #mapping: EventMapping | null;
  readonly #stats: RabbitMqListenerStats = {
    acked: 0,
    rejected: 0,
    filtered: 0,
    requeued: 0,
    connections: 0,
    paused: false,
    consuming: false,
  };
  #pauseAttempt = 0;

  constructor(options: RabbitMqListenerOptions) {
    super({ ...options, source: options.source ?? "rabbitmq" });
    if (options.queue === "")
      throw new UsageError("INVALID_ARGUMENT", "RabbitMqListener: `queue` must be a non-empty queue name");
    this.#url = options.url ?? "amqp://guest:guest@127.0.0.1:5672";
    this.#queue = options.queue;
    this.#prefetch = options.prefetch ?? 10;
    this.#assert = options.assertQueue ?? true;
    this.#dlx = options.deadLetterExchange;
    this.#requireKey = options.requireIdempotencyKey ?? false;
    this.#timeout = options.triggerTimeoutMs ?? 5000;
    this.#allow = options.workflows !== undefined ? new Set(options.workflows) : null;
    this.#backoff = options.backoff ?? {};
    if (options.mapping !== undefined && options.workflow === undefined)
      throw new UsageError(
        "INVALID_ARGUMENT",
        "RabbitMqListener: `mapping` needs `workflow` (without it each message names its workflow and params itself)",
      );
    this.#workflow = options.workflow;
    this.#mapping = options.mapping !== undefined ? EventMapping.compile(options.mapping, "mapping") : null;
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<RabbitMqListenerStats> {
    return { ...this.#stats };
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    const log = this.logger.child({ queue: this.#queue });
    let failures = 0;
    while (!signal.aborted) {
      let conn: ChannelModel | null = null;
      try {
        conn = await connect(this.#url, { timeout: 10_000 });
        const lost = new Promise<string>((resolve) => {
          conn?.once("close", (e?: unknown) => resolve(e instanceof Error ? e.message : "connection closed"));
        });
        conn.on("error", (e: unknown) => log.warn("rabbitmq connection error", { error: errorMessage(e) }));
        const channel = await conn.createChannel();
        channel.on("error", (e: unknown) => log.warn("rabbitmq channel error", { error: errorMessage(e) }));
        // A channel closed by the broker (e.g. queue deleted) recycles the whole connection.
        channel.once("close", () => void conn?.close().catch(() => undefined));
        if (this.#assert) {
          await channel.assertQueue(this.#queue, {
            durable: true,
            ...(this.#dlx !== undefined ? { arguments: { "x-dead-letter-exchange": this.#dlx } } : {}),
          });
        } else {
          await channel.checkQueue(this.#queue);
        }
        await channel.prefetch(this.#prefetch);
        const session = new ConsumerSession({
          channel,
          queue: this.#queue,
          log,
          signal,
          onMessage: (sess, msg) => this.#handle(sess, msg),
          onConsuming: (v) => {
            this.#stats.consuming = v;
          },
        });
        await session.consume();
        this.#stats.connections += 1;
        failures = 0;
        log.info("rabbitmq consuming", { url: redact(this.#url), prefetch: this.#prefetch });
        const aborted = new Promise<string>((resolve) => {
          if (signal.aborted) resolve("stopping");
          signal.addEventListener("abort", () => resolve("stopping"), { once: true });
        });
        const why = await Promise.race([lost, aborted]);
        session.closed = true;
        if (signal.aborted) {
          await session.drain();
          break;
        }
        log.warn("rabbitmq connection lost; reconnecting", { reason: why });
      } catch (e) {
        log.warn("rabbitmq connection failed; retrying", { url: redact(this.#url), error: errorMessage(e) });
      } finally {
        this.#stats.consuming = false;
        if (conn !== null) await conn.close().catch(() => undefined);
      }
      if (signal.aborted) break;
      failures += 1;
      await sleep(backoffDelay(failures, this.#backoff), signal);
    }
  }

  /** Handle one delivery of `session`: trigger, then ack, reject or requeue-and-pause. */
  async #handle(session: ConsumerSession, msg: ConsumeMessage): Promise<void> {
    const log = session.log.child({
      deliveryTag: msg.fields.deliveryTag,
      messageId: msg.properties.messageId as unknown,
    });
    const messageId: unknown = msg.properties.messageId;
    const resolved = resolveMessageTrigger(
      msg.content,
      {
        routing_key: msg.fields.routingKey,
        exchange: msg.fields.exchange,
        message_id: typeof messageId === "string" ? messageId : null,
        headers: jsonHeaders(msg.properties.headers),
      },
      {
        ...(this.#workflow !== undefined ? { workflow: this.#workflow } : {}),
        mapping: this.#mapping,
        allow: this.#allow,
      },
    );
    if (!resolved.ok) {
      if (resolved.reason === "filtered") {
        log.debug("rabbitmq message filtered out by `when`; acknowledged without a run");
        if (session.settle(msg, "ack")) this.#stats.filtered += 1;
        return;
      }
      log.warn("rabbitmq message rejected", {
        reason: resolved.reason,
        error: resolved.error,
        redelivered: msg.fields.redelivered,
      });
      session.settle(msg, "reject");
      this.#stats.rejected += 1;
      this.rejectEvent(resolved.reason, resolved.error);
      return;
    }
    const { workflowId, params, key: idempotencyKey } = resolved;
    const sourceId = idempotencyKey ?? (typeof messageId === "string" && messageId !== "" ? messageId : undefined);
    if (sourceId === undefined && this.#requireKey) {
      log.warn("rabbitmq message rejected: no message id and no idempotency_key", { workflowId });
      session.settle(msg, "reject");
      this.#stats.rejected += 1;
      this.rejectEvent("no_key", "the message has no message id and no idempotency_key");
      return;
    }
    const result = await this.runWorkflow(workflowId, {
      ...(params !== undefined ? { params } : {}),
      ...(sourceId !== undefined ? { idempotencyKey: scopedIdempotencyKey(`amqp:${this.#queue}:`, sourceId) } : {}),
      retry: false,
      timeoutMs: this.#timeout,
    });
    if (result.success) {
      this.#pauseAttempt = 0;
      this.#stats.paused = false;
      log.info("rabbitmq message triggered a run", {
        workflowId,
        runId: result.runId,
        duplicate: result.duplicate,
        skipped: result.skipped,
      });
      if (session.settle(msg, "ack")) this.#stats.acked += 1;
      return;
    }
    const code = result.error?.code ?? "INTERNAL";
    if (!RETRYABLE.has(code) && result.error?.retryable !== true) {
      log.warn("rabbitmq message rejected by the principal", { workflowId, code, error: result.error?.message });
      session.settle(msg, "reject");
      this.#stats.rejected += 1;
      return;
    }
    // The principal is unavailable: stop consuming first, then requeue, then wait.
    this.#stats.paused = true;
    const first = await session.pause();
    if (session.settle(msg, "requeue")) this.#stats.requeued += 1;
    if (!first) return;
    this.#pauseAttempt += 1;
    const delay = backoffDelay(this.#pauseAttempt, this.#backoff);
    log.warn("principal unavailable; consumption paused, message left in the queue", {
      workflowId,
      code,
      error: result.error?.message,
      resumeInMs: delay,
    });
    await session.resumeAfter(delay);
  }
}

interface SessionOptions {
  channel: Channel;
  queue: string;
  log: Logger;
  signal: AbortSignal;
  onMessage: (session: ConsumerSession, msg: ConsumeMessage) => Promise<void>;
  onConsuming: (consuming: boolean) => void;
}

/** One channel's consumer: pause/resume and settling deliveries on that channel only. */
class ConsumerSession {
  closed = false;
  #tag: string | null = null;
  #pausing: Promise<void> | null = null;
  readonly #inFlight = new Set<Promise<void>>();

  readonly channel: Channel;
  readonly log: Logger;
  readonly #opts: SessionOptions;

  constructor(opts: SessionOptions) {
    this.#opts = opts;
    this.channel = opts.channel;
    this.log = opts.log;
  }

  async consume(): Promise<void> {
    const reply = await this.channel.consume(this.#opts.queue, (msg) => {
      if (msg === null) {
        // The broker cancelled the consumer (queue deleted): recycle the connection.
        this.log.warn("rabbitmq consumer cancelled by the broker");
        void this.channel.close().catch(() => undefined);
        return;
      }
      const p = this.#opts.onMessage(this, msg).catch((e: unknown) => {
        this.log.error("rabbitmq message handling failed; requeueing", { error: errorMessage(e) });
        this.settle(msg, "requeue");
      });
      this.#inFlight.add(p);
      void p.finally(() => this.#inFlight.delete(p));
    });
    this.#tag = reply.consumerTag;
    this.#opts.onConsuming(true);
  }

  /** Cancel the consumer. Resolves true for the caller that started the pause. */
  async pause(): Promise<boolean> {
    if (this.#pausing !== null) {
      await this.#pausing;
      return false;
    }
    const tag = this.#tag;
    this.#tag = null;
    this.#pausing = (async () => {
      this.#opts.onConsuming(false);
      if (tag !== null && !this.closed) await this.channel.cancel(tag).catch(() => undefined);
    })();
    await this.#pausing;
    return true;
  }

  async resumeAfter(ms: number): Promise<void> {
    await sleep(ms, this.#opts.signal);
    this.#pausing = null;
    if (this.closed || this.#opts.signal.aborted) return;
    try {
      await this.consume();
      this.log.info("rabbitmq consumption resumed");
    } catch (e) {
      this.log.warn("rabbitmq resume failed; the connection will be recycled", { error: errorMessage(e) });
      void this.channel.close().catch(() => undefined);
    }
  }

  /** Ack, reject (no requeue) or requeue on this channel; false when the channel is gone (the broker redelivers). */
  settle(msg: ConsumeMessage, how: "ack" | "reject" | "requeue"): boolean {
    try {
      if (how === "ack") this.channel.ack(msg);
      else this.channel.nack(msg, false, how === "requeue");
      return true;
    } catch {
      return false;
    }
  }

  /** Wait for in-flight deliveries (bounded by their trigger deadline). */
  async drain(): Promise<void> {
    if (this.#tag !== null) await this.channel.cancel(this.#tag).catch(() => undefined);
    await Promise.allSettled([...this.#inFlight]);
  }
}

/** AMQP headers as JSON values for the event document (byte strings as UTF-8 text). */
function jsonHeaders(headers: Record<string, unknown> | undefined): Record<string, JSONValue> {
  const out: Record<string, JSONValue> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") out[k] = v;
    else if (Buffer.isBuffer(v)) out[k] = v.toString("utf8");
    else {
      // Nested tables and arrays as JSON; what JSON cannot hold (a bigint, a cycle) is dropped.
      try {
        out[k] = (JSON.parse(JSON.stringify(v) ?? "null") as JSONValue) ?? null;
      } catch {
        out[k] = null;
      }
    }
  }
  return out;
}

/**
 * A NATS JetStream event listener: a durable pull consumer on a stream of trigger messages (or of
 * any payload mapped into params).
 */
import { connect, headers as newHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerMessages,
  type Consumer,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { JSONValue } from "@jmespath-community/jmespath";
import { UsageError, backoffDelay, errorMessage, type BackoffOptions, type Logger } from "@cdktr/protocol";
import { EventListener, sleep, type EventListenerOptions } from "../listener/event-listener.js";
import { ListenerStartError } from "../errors.js";
import { EventMapping, type EventMappingSpec } from "../mapping/event-mapping.js";
import { resolveMessageTrigger } from "../mapping/message-trigger.js";
import { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";
import { natsNameProblem, natsSubjectMatches, natsSubjectProblem } from "./subjects.js";
import { RETRYABLE_TRIGGER_CODES as RETRYABLE } from "../listener/source-common.js";

/** Options of {@link NatsListener}. */
export interface NatsListenerOptions extends EventListenerOptions {
  /** NATS server URL(s); a list is a cluster (any of them will do). @default "nats://127.0.0.1:4222" */
  servers?: string | readonly string[];
  /** User name (with {@link pass}); not with {@link token}. */
  user?: string;
  /** Password of {@link user}. */
  pass?: string;
  /** Authentication token; not with {@link user}. */
  token?: string;
  /** The JetStream stream to consume. */
  stream: string;
  /**
   * Name of the durable pull consumer: the stream position and the unacknowledged messages live on
   * the server under this name, so a restarted listener resumes where it stopped. Created when it
   * does not exist; listeners sharing one durable share its messages (each goes to one of them).
   */
  durable: string;
  /** Only messages on these subjects (wildcards allowed; several need nats-server 2.10). @default the whole stream */
  filterSubject?: string | readonly string[];
  /**
   * Create the stream (file storage, work-queue retention: a message leaves the stream once
   * acknowledged or parked) on {@link subjects} when it does not exist. Unset, the stream must
   * exist: the listener logs the problem and retries with backoff until it does. @default false
   */
  createStream?: boolean;
  /** Subjects of the stream created with {@link createStream} (required with it). */
  subjects?: readonly string[];
  /**
   * Time the server waits for the acknowledgement of a delivered message before it delivers it
   * again (`ack_wait` of the consumer); longer than {@link triggerTimeoutMs}. @default 30000
   */
  ackWaitMs?: number;
  /** Messages pulled and not yet settled at once, at most. @default 10 */
  maxInFlight?: number;
  /**
   * Where poison messages are copied before they are terminated: the original payload and headers,
   * plus `Cdktr-Dead-Reason`, `Cdktr-Dead-Error`, `Cdktr-Original-Subject`, `Cdktr-Original-Stream`
   * and `Cdktr-Original-Seq`. A stream must capture this subject (checked at start), and this
   * consumer must not (the copy would come back). Unset, poison messages are only terminated.
   */
  deadLetterSubject?: string;
  /** Deadline of each run request to the principal. @default 5000 */
  triggerTimeoutMs?: number;
  /**
   * When set, only these workflow ids can be triggered: a message for another workflow is parked
   * like a poison message and never reaches the principal.
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
   * idempotency key expression. The event document is `{body, subject, headers, stream,
   * stream_seq}` (`body`: the JSON payload, else its text; `headers`: each header's first value).
   */
  mapping?: EventMappingSpec;
}

/** Counters of a {@link NatsListener}, for health checks and tests. */
export interface NatsListenerStats {
  /** Messages acknowledged after the principal accepted the run (new, duplicate or skipped). */
  acked: number;
  /**
   * Poison messages terminated (never delivered again): malformed, not in `workflows`, unmapped,
   * or refused for good by the principal (unknown workflow, invalid params).
   */
  rejected: number;
  /** Of the {@link rejected} messages, those copied to the dead-letter subject. */
  deadLettered: number;
  /** Messages acknowledged without a run because the mapping's `when` filter was false. */
  filtered: number;
  /**
   * Messages handed back to the server (`nak`) for a later delivery: the principal was
   * unavailable, the dead-letter copy failed, or the listener was stopping. (RabbitMQ's `requeued`.)
   */
  naked: number;
  /** Successful connections to NATS (the first one included). */
  connections: number;
  /** True while pulling is paused because the principal is unavailable. */
  paused: boolean;
  /** True while the listener pulls messages. */
  consuming: boolean;
}

/** How long one pull request waits on the server for messages (its heartbeats: half of it). */
const PULL_EXPIRES_MS = 20_000;
/** Deadline of JetStream API requests and dead-letter publishes. */
const API_TIMEOUT_MS = 5000;
/** How long a closing connection may take to flush the last acknowledgements. */
const DRAIN_TIMEOUT_MS = 2000;
/** Longest header value copied into a dead-letter message. */
const MAX_HEADER_VALUE = 1024;

/** A message's settlement. */
type Settle = { how: "ack" } | { how: "term" } | { how: "nak"; delayMs: number };

/**
 * Consumes a JetStream stream through a durable pull consumer. Each message is a JSON trigger
 * message `{"workflow_id": "...", "params"?: {...}, "idempotency_key"?: "..."}`, or, with
 * `workflow` and `mapping`, any payload mapped into the run's params.
 *
 * - A message is acknowledged only after the principal accepted the run (new, duplicate or
 *   skipped); at most `maxInFlight` messages are pulled and unsettled at once.
 * - The message's own key (`idempotency_key`, or the mapping's key), else its `Nats-Msg-Id`
 *   header, else its stream sequence becomes the run's idempotency key `nats:<stream>:<id>`, so a
 *   redelivered message never starts a second run.
 * - Poison messages (malformed, not in `workflows`, unmapped, unknown workflow, invalid params)
 *   are terminated, never redelivered, after a copy to `deadLetterSubject` when it is set.
 * - When the principal is unavailable the listener stops pulling, hands the message back (`nak`)
 *   and resumes after a growing backoff: messages wait in the stream, never in a hot loop.
 * - Connection loss: reconnect with backoff; unacknowledged messages are delivered again by the
 *   server after `ackWaitMs` and deduplicated by their key.
 */
export class NatsListener extends EventListener {
  readonly #servers: string[];
  readonly #auth: { user: string; pass?: string } | { token: string } | null;
  readonly #stream: string;
  readonly #durable: string;
  readonly #filters: readonly string[];
  readonly #createStream: boolean;
  readonly #subjects: readonly string[];
  readonly #ackWaitMs: number;
  readonly #maxInFlight: number;
  readonly #deadLetter: string | undefined;
  readonly #timeout: number;
  readonly #allow: ReadonlySet<string> | null;
  readonly #backoff: BackoffOptions;
  readonly #workflow: string | undefined;
  readonly #mapping: EventMapping | null;
  readonly #stats: NatsListenerStats = {
    acked: 0,
    rejected: 0,
    deadLettered: 0,
    filtered: 0,
    naked: 0,
    connections: 0,
    paused: false,
    consuming: false,
  };
  #pauseAttempt = 0;

  /** @throws UsageError (`INVALID_ARGUMENT`) naming the option that is missing, malformed or contradicts another */
  constructor(options: NatsListenerOptions) {
    super({ ...options, source: options.source ?? "nats" });
    const bad = (message: string): never => {
      throw new UsageError("INVALID_ARGUMENT", `NatsListener: ${message}`);
    };
    const servers = options.servers ?? "nats://127.0.0.1:4222";
    this.#servers = typeof servers === "string" ? [servers] : [...servers];
    if (this.#servers.length === 0 || this.#servers.some((s) => s.trim() === ""))
      bad("`servers` must list at least one non-empty server URL");
    if (options.token !== undefined && (options.user !== undefined || options.pass !== undefined))
      bad("give either `token` or `user`/`pass`, not both");
    if (options.pass !== undefined && options.user === undefined) bad("`pass` needs `user`");
    this.#auth =
      options.token !== undefined
        ? { token: options.token }
        : options.user !== undefined
          ? { user: options.user, ...(options.pass !== undefined ? { pass: options.pass } : {}) }
          : null;
    for (const [field, value] of [
      ["stream", options.stream],
      ["durable", options.durable],
    ] as const) {
      const problem = natsNameProblem(value);
      if (problem !== null) bad(`\`${field}\` ${JSON.stringify(value)}: ${problem}`);
    }
    this.#stream = options.stream;
    this.#durable = options.durable;
    const filters = options.filterSubject;
    this.#filters = filters === undefined ? [] : typeof filters === "string" ? [filters] : [...filters];
    this.#createStream = options.createStream ?? false;
    this.#subjects = [...(options.subjects ?? [])];
    if (this.#createStream && this.#subjects.length === 0)
      bad("`createStream` needs `subjects`: the subjects of the stream to create");
    if (!this.#createStream && options.subjects !== undefined)
      bad("`subjects` is used only with `createStream: true` (an existing stream keeps its own subjects)");
    for (const [field, list] of [
      ["filterSubject", this.#filters],
      ["subjects", this.#subjects],
    ] as const) {
      for (const s of list) {
        const problem = natsSubjectProblem(s, true);
        if (problem !== null) bad(`\`${field}\` ${JSON.stringify(s)}: ${problem}`);
      }
    }
    this.#deadLetter = options.deadLetterSubject;
    if (this.#deadLetter !== undefined) {
      const dl = this.#deadLetter;
      const problem = natsSubjectProblem(dl, false);
      if (problem !== null) bad(`\`deadLetterSubject\` ${JSON.stringify(dl)}: ${problem}`);
      const catching =
        this.#filters.length > 0
          ? this.#filters.find((f) => natsSubjectMatches(f, dl))
          : this.#subjects.find((s) => natsSubjectMatches(s, dl));
      if (catching !== undefined)
        bad(
          `\`deadLetterSubject\` ${dl} would be consumed again by this listener (it matches ${catching}): pick a subject outside the consumed ones`,
        );
    }
    this.#timeout = options.triggerTimeoutMs ?? 5000;
    this.#ackWaitMs = options.ackWaitMs ?? 30_000;
    if (!Number.isInteger(this.#ackWaitMs) || this.#ackWaitMs <= this.#timeout)
      bad(
        `\`ackWaitMs\` (${this.#ackWaitMs}) must be an integer longer than \`triggerTimeoutMs\` (${this.#timeout}): a message would be delivered again while its trigger is in flight`,
      );
    this.#maxInFlight = options.maxInFlight ?? 10;
    if (!Number.isInteger(this.#maxInFlight) || this.#maxInFlight < 1 || this.#maxInFlight > 10_000)
      bad(`\`maxInFlight\` (${this.#maxInFlight}) must be an integer from 1 to 10000`);
    this.#allow = options.workflows !== undefined ? new Set(options.workflows) : null;
    this.#backoff = options.backoff ?? {};
    if (options.mapping !== undefined && options.workflow === undefined)
      bad("`mapping` needs `workflow` (without it each message names its workflow and params itself)");
    this.#workflow = options.workflow;
    this.#mapping = options.mapping !== undefined ? EventMapping.compile(options.mapping, "mapping") : null;
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<NatsListenerStats> {
    return { ...this.#stats };
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    const log = this.logger.child({ stream: this.#stream, durable: this.#durable });
    let failures = 0;
    while (!signal.aborted) {
      let nc: NatsConnection | null = null;
      let session: PullSession | null = null;
      try {
        nc = await connect({
          servers: this.#servers,
          ...(this.#auth ?? {}),
          name: `cdktr-listener ${this.#stream}/${this.#durable}`,
          // Reconnects are this loop's (with backoff, consumer set up again): one path for every loss.
          reconnect: false,
          timeout: 10_000,
          pingInterval: 20_000,
          maxPingOut: 3,
        });
        this.#stats.connections += 1;
        const closed = nc.closed().then((e) => (e instanceof Error ? e.message : "connection closed"));
        const setup = await this.#setup(nc, log);
        session = new PullSession({
          consumer: setup.consumer,
          log,
          signal,
          maxInFlight: this.#maxInFlight,
          onMessage: (sess, msg) => this.#handle(sess, setup, msg),
          onConsuming: (v) => {
            this.#stats.consuming = v;
          },
        });
        failures = 0;
        log.info("nats consuming", {
          servers: this.#servers.map(redact),
          maxInFlight: this.#maxInFlight,
          ackWaitMs: this.#ackWaitMs,
        });
        const ended = session.run().then(
          () => "stopping",
          (e: unknown) => `pull failed: ${errorMessage(e)}`,
        );
        const why = await Promise.race([ended, closed]);
        if (signal.aborted) break;
        log.warn("nats consumer lost; reconnecting", { reason: why });
      } catch (e) {
        if (signal.aborted) break;
        log.warn("nats connection or set-up failed; retrying", {
          servers: this.#servers.map(redact),
          error: errorMessage(e),
        });
      } finally {
        // In-flight messages are settled first (their triggers end by triggerTimeoutMs), so that
        // their acknowledgements leave with the connection's last flush.
        if (session !== null) await session.drain();
        this.#stats.consuming = false;
        if (nc !== null) await closeConnection(nc);
      }
      failures += 1;
      await sleep(backoffDelay(failures, this.#backoff), signal);
    }
  }

  /** The stream (created if asked), the dead-letter subject's stream, and the durable consumer. */
  async #setup(nc: NatsConnection, log: Logger): Promise<Setup> {
    const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS });
    const info = await this.#ensureStream(jsm, log);
    if (this.#deadLetter !== undefined) await this.#checkDeadLetter(jsm, this.#deadLetter);
    await this.#ensureConsumer(jsm, log);
    const js = jsm.jetstream();
    const consumer = await js.consumers.get(this.#stream, this.#durable);
    const created = Date.parse(info.created);
    return { js, consumer, streamCreated: Number.isFinite(created) ? String(created) : info.created };
  }

  async #ensureStream(jsm: JetStreamManager, log: Logger): Promise<StreamInfo> {
    try {
      return await jsm.streams.info(this.#stream);
    } catch (e) {
      if (apiCode(e) !== JetStreamApiCodes.StreamNotFound) throw e;
    }
    if (!this.#createStream)
      throw new ListenerStartError(
        `stream ${this.#stream} does not exist: create it (nats stream add ${this.#stream} --subjects '...'), or let the listener create it (create_stream: true with its subjects)`,
        { context: { stream: this.#stream } },
      );
    try {
      const created = await jsm.streams.add({
        name: this.#stream,
        subjects: [...this.#subjects],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
      });
      log.info("nats stream created", { subjects: this.#subjects });
      return created;
    } catch (e) {
      // Another listener may have created it meanwhile.
      try {
        return await jsm.streams.info(this.#stream);
      } catch {
        throw e;
      }
    }
  }

  /** A stream must keep the dead letters, and it must not hand them back to this consumer. */
  async #checkDeadLetter(jsm: JetStreamManager, subject: string): Promise<void> {
    const owners: string[] = [];
    for await (const name of jsm.streams.names(subject)) owners.push(name);
    if (owners.length === 0)
      throw new ListenerStartError(
        `no stream captures the dead-letter subject ${subject}: create one (nats stream add DEAD_LETTERS --subjects ${subject}) so that parked messages are kept`,
        { context: { stream: this.#stream, deadLetterSubject: subject } },
      );
    if (
      owners.includes(this.#stream) &&
      (this.#filters.length === 0 || this.#filters.some((f) => natsSubjectMatches(f, subject)))
    )
      throw new ListenerStartError(
        `the dead-letter subject ${subject} is in stream ${this.#stream} and consumer ${this.#durable} would receive its own dead letters: use a subject of another stream, or a filter subject that excludes it`,
        { context: { stream: this.#stream, deadLetterSubject: subject } },
      );
  }

  async #ensureConsumer(jsm: JetStreamManager, log: Logger): Promise<void> {
    const ackWait = this.#ackWaitMs * 1_000_000;
    const filter: Partial<ConsumerConfig> =
      this.#filters.length === 1
        ? { filter_subject: this.#filters[0] ?? "" }
        : this.#filters.length > 1
          ? { filter_subjects: [...this.#filters] }
          : {};
    let existing: ConsumerConfig | null = null;
    try {
      existing = (await jsm.consumers.info(this.#stream, this.#durable)).config;
    } catch (e) {
      if (apiCode(e) !== JetStreamApiCodes.ConsumerNotFound) throw e;
    }
    if (existing === null) {
      await jsm.consumers.add(this.#stream, {
        durable_name: this.#durable,
        ack_policy: AckPolicy.Explicit,
        ack_wait: ackWait,
        deliver_policy: DeliverPolicy.All,
        // Never given up on: a principal outage may outlast any number of deliveries.
        max_deliver: -1,
        ...filter,
      });
      log.info("nats durable consumer created", { filterSubjects: this.#filters });
      return;
    }
    const where = `consumer ${this.#durable} of stream ${this.#stream}`;
    if (existing.deliver_subject !== undefined && existing.deliver_subject !== "")
      throw new ListenerStartError(
        `${where} is a push consumer: give the listener another durable name (it makes a pull consumer)`,
        { context: { stream: this.#stream, durable: this.#durable } },
      );
    if (existing.ack_policy !== AckPolicy.Explicit)
      throw new ListenerStartError(
        `${where} has ack_policy ${existing.ack_policy}: give the listener another durable name (it needs explicit acks)`,
        { context: { stream: this.#stream, durable: this.#durable } },
      );
    const had = existing.filter_subjects ?? (existing.filter_subject ? [existing.filter_subject] : []);
    const sameFilter = had.length === this.#filters.length && had.every((f, i) => f === this.#filters[i]);
    if (existing.ack_wait !== ackWait || !sameFilter) {
      try {
        await jsm.consumers.update(this.#stream, this.#durable, {
          ack_wait: ackWait,
          ...(sameFilter ? {} : this.#filters.length === 0 ? { filter_subject: "" } : filter),
        });
      } catch (e) {
        throw new ListenerStartError(
          `${where} exists with other settings (ack_wait ${(existing.ack_wait ?? 0) / 1e6} ms, filter ${JSON.stringify(had)}) and cannot be updated (${errorMessage(e)}): delete it (nats consumer rm ${this.#stream} ${this.#durable}) or give another durable name`,
          { cause: e, context: { stream: this.#stream, durable: this.#durable } },
        );
      }
      log.info("nats durable consumer updated", { ackWaitMs: this.#ackWaitMs, filterSubjects: this.#filters });
    }
  }

  /** Handle one message: trigger, then ack, park (term) or nak-and-pause. */
  async #handle(session: PullSession, setup: Setup, msg: JsMsg): Promise<void> {
    const msgId = msg.headers?.get("Nats-Msg-Id") ?? "";
    const log = session.log.child({ seq: msg.seq, subject: msg.subject, ...(msgId !== "" ? { msgId } : {}) });
    if (session.closed) {
      // Stopping: hand it back at once for whichever consumer pulls next.
      if (settle(msg, { how: "nak", delayMs: 0 })) this.#stats.naked += 1;
      return;
    }
    const pausedFor = session.pausedFor;
    if (pausedFor > 0) {
      if (settle(msg, { how: "nak", delayMs: pausedFor })) this.#stats.naked += 1;
      return;
    }
    const resolved = resolveMessageTrigger(
      msg.data,
      { subject: msg.subject, headers: jsonHeaders(msg.headers), stream: this.#stream, stream_seq: msg.seq },
      {
        ...(this.#workflow !== undefined ? { workflow: this.#workflow } : {}),
        mapping: this.#mapping,
        allow: this.#allow,
      },
    );
    if (!resolved.ok) {
      if (resolved.reason === "filtered") {
        log.debug("nats message filtered out by `when`; acknowledged without a run");
        if (settle(msg, { how: "ack" })) this.#stats.filtered += 1;
        return;
      }
      log.warn("nats message rejected", {
        reason: resolved.reason,
        error: resolved.error,
        deliveries: msg.info.deliveryCount,
      });
      if (await this.#park(setup, msg, resolved.reason, resolved.error, log))
        this.rejectEvent(resolved.reason, resolved.error);
      return;
    }
    const { workflowId, params } = resolved;
    const sourceId = resolved.key ?? (msgId !== "" ? msgId : `seq:${setup.streamCreated}:${msg.seq}`);
    const result = await this.runWorkflow(workflowId, {
      ...(params !== undefined ? { params } : {}),
      idempotencyKey: scopedIdempotencyKey(`nats:${this.#stream}:`, sourceId),
      retry: false,
      timeoutMs: this.#timeout,
    });
    if (result.success) {
      this.#pauseAttempt = 0;
      this.#stats.paused = false;
      log.info("nats message triggered a run", {
        workflowId,
        runId: result.runId,
        duplicate: result.duplicate,
        skipped: result.skipped,
      });
      if (settle(msg, { how: "ack" })) this.#stats.acked += 1;
      return;
    }
    const code = result.error?.code ?? "INTERNAL";
    if (!RETRYABLE.has(code) && result.error?.retryable !== true) {
      log.warn("nats message refused by the principal", { workflowId, code, error: result.error?.message });
      await this.#park(setup, msg, code, result.error?.message ?? code, log);
      return;
    }
    // The principal is unavailable: stop pulling first, then hand the message back, then wait.
    this.#stats.paused = true;
    if (session.pausedFor <= 0) {
      this.#pauseAttempt += 1;
      const delay = backoffDelay(this.#pauseAttempt, this.#backoff);
      session.pause(delay);
      log.warn("principal unavailable; pulling paused, message left in the stream", {
        workflowId,
        code,
        error: result.error?.message,
        resumeInMs: delay,
      });
    }
    // Delivered again when the pause ends (not before: no hot loop, also for other listeners).
    if (settle(msg, { how: "nak", delayMs: Math.max(session.pausedFor, 1) })) this.#stats.naked += 1;
  }

  /**
   * Terminate a poison message, after copying it to the dead-letter subject when there is one.
   * When the copy fails the message is handed back for a later delivery instead. True when parked.
   */
  async #park(setup: Setup, msg: JsMsg, reason: string, error: string, log: Logger): Promise<boolean> {
    if (this.#deadLetter !== undefined) {
      msg.working();
      try {
        await setup.js.publish(this.#deadLetter, msg.data, {
          headers: deadLetterHeaders(msg, { reason, error, stream: this.#stream }),
          // A copy made again after a lost term is dropped by the dead-letter stream's dedupe window.
          msgID: `cdktr-dead:${this.#stream}:${setup.streamCreated}:${msg.seq}`,
          timeout: API_TIMEOUT_MS,
        });
      } catch (e) {
        const delay = backoffDelay(msg.info.deliveryCount, this.#backoff);
        log.error("nats message could not be copied to the dead-letter subject; it will be delivered again", {
          deadLetterSubject: this.#deadLetter,
          error: errorMessage(e),
          retryInMs: delay,
        });
        if (settle(msg, { how: "nak", delayMs: delay })) this.#stats.naked += 1;
        return false;
      }
      this.#stats.deadLettered += 1;
    }
    settle(msg, { how: "term" });
    this.#stats.rejected += 1;
    return true;
  }
}

/** What a connection's set-up gives the message handler. */
interface Setup {
  js: JetStreamClient;
  consumer: Consumer;
  /** The stream's creation time (epoch ms): the sequence-based keys of a re-created stream differ. */
  streamCreated: string;
}

interface SessionOptions {
  consumer: Consumer;
  log: Logger;
  signal: AbortSignal;
  maxInFlight: number;
  onMessage: (session: PullSession, msg: JsMsg) => Promise<void>;
  onConsuming: (consuming: boolean) => void;
}

/**
 * One connection's pull loop: fetches at most the free in-flight slots, never while paused, and
 * dispatches each message to the handler.
 */
class PullSession {
  readonly log: Logger;
  readonly #opts: SessionOptions;
  readonly #inFlight = new Set<Promise<void>>();
  #closed = false;
  #pausedUntil = 0;
  #batch: ConsumerMessages | null = null;
  #wake: (() => void) | null = null;

  constructor(opts: SessionOptions) {
    this.#opts = opts;
    this.log = opts.log;
  }

  /** True once the session is closing: no more pulls. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Milliseconds left of the current pause (0 when not paused). */
  get pausedFor(): number {
    return Math.max(0, this.#pausedUntil - Date.now());
  }

  /**
   * Pull and dispatch until closed or aborted.
   * @throws the pull's error when a pull fails (consumer or stream deleted, heartbeats missed, connection closed)
   */
  async run(): Promise<void> {
    const { signal, consumer, maxInFlight } = this.#opts;
    const onAbort = (): void => this.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal.aborted) this.close();
      while (!this.#closed) {
        const paused = this.pausedFor;
        if (paused > 0) {
          this.#opts.onConsuming(false);
          await this.#idle(paused);
          continue;
        }
        const free = maxInFlight - this.#inFlight.size;
        if (free <= 0) {
          await this.#idle();
          continue;
        }
        this.#opts.onConsuming(true);
        const batch = await consumer.fetch({ max_messages: free, expires: PULL_EXPIRES_MS });
        this.#batch = batch;
        if (this.#closed || this.pausedFor > 0) void batch.close();
        try {
          for await (const msg of batch) this.#dispatch(msg);
        } finally {
          this.#batch = null;
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#opts.onConsuming(false);
    }
  }

  /** Stop pulling for `ms` (the open pull is closed: the server keeps its messages for later). */
  pause(ms: number): void {
    this.#pausedUntil = Date.now() + ms;
    this.#opts.onConsuming(false);
    void this.#batch?.close();
  }

  /** Stop pulling for good. */
  close(): void {
    this.#closed = true;
    void this.#batch?.close();
    this.#wake?.();
  }

  /** Close, then wait for the in-flight messages (each bounded by its trigger deadline). */
  async drain(): Promise<void> {
    this.close();
    await Promise.allSettled([...this.#inFlight]);
  }

  #dispatch(msg: JsMsg): void {
    if (this.#inFlight.size >= this.#opts.maxInFlight) {
      // Never expected (each pull asks for the free slots only): keep the bound anyway.
      settle(msg, { how: "nak", delayMs: 0 });
      return;
    }
    const p = this.#opts.onMessage(this, msg).catch((e: unknown) => {
      this.log.error("nats message handling failed; it will be delivered again", { error: errorMessage(e) });
      settle(msg, { how: "nak", delayMs: 1000 });
    });
    this.#inFlight.add(p);
    void p.finally(() => {
      this.#inFlight.delete(p);
      this.#wake?.();
    });
  }

  /** Wait until woken (a slot freed, closed) or `ms` passed. */
  #idle(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      if (ms !== undefined) timer = setTimeout(done, ms);
      this.#wake = done;
      if (this.#closed) done();
    });
  }
}

/** Ack, term or nak `msg`; false when the connection is gone (the server delivers it again). */
function settle(msg: JsMsg, s: Settle): boolean {
  try {
    if (s.how === "ack") msg.ack();
    else if (s.how === "term") msg.term();
    else if (s.delayMs > 0) msg.nak(s.delayMs);
    else msg.nak();
    return true;
  } catch {
    return false;
  }
}

/** The JetStream API error code of `e` (`10059` stream not found...), if it is one. */
function apiCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** Headers as the event document's `headers`: each header's first value. */
function jsonHeaders(h: MsgHdrs | undefined): Record<string, JSONValue> {
  const out: Record<string, JSONValue> = {};
  if (h === undefined) return out;
  for (const k of h.keys()) out[k] = h.values(k)[0] ?? "";
  return out;
}

/** The original headers (but the server's `Nats-*` ones) and why the message was parked. */
function deadLetterHeaders(msg: JsMsg, why: { reason: string; error: string; stream: string }): MsgHdrs {
  const h = newHeaders();
  if (msg.headers !== undefined) {
    for (const k of msg.headers.keys()) {
      if (k.toLowerCase().startsWith("nats-")) continue;
      for (const v of msg.headers.values(k)) h.append(k, v);
    }
  }
  const value = (v: string): string => v.replace(/[\r\n]+/g, " ").slice(0, MAX_HEADER_VALUE);
  h.set("Cdktr-Dead-Reason", value(why.reason));
  h.set("Cdktr-Dead-Error", value(why.error));
  h.set("Cdktr-Original-Subject", msg.subject);
  h.set("Cdktr-Original-Stream", why.stream);
  h.set("Cdktr-Original-Seq", String(msg.seq));
  return h;
}

/** Close `nc` after flushing what is buffered (the last acks), within {@link DRAIN_TIMEOUT_MS}. */
async function closeConnection(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const drained = nc.drain().catch(() => undefined);
  await Promise.race([drained, new Promise<void>((r) => (timer = setTimeout(r, DRAIN_TIMEOUT_MS)))]);
  clearTimeout(timer);
  if (!nc.isClosed()) await nc.close().catch(() => undefined);
}

/** A server URL without its password or token, for logs. */
function redact(server: string): string {
  return server.replace(/\/\/[^@/]*@/, "//***@");
}

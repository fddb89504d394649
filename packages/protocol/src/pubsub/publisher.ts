import { Publisher as ZmqPublisher, XPublisher } from "zeromq";
import { CdktrError } from "../errors.js";
import { noopLogger, type Logger } from "../logging/logger.js";
import { SendQueue } from "../rpc/send-queue.js";
import { bindOrExplain } from "../rpc/bind.js";
import { settleWithin } from "../util/settle-within.js";
import { MAX_SUBSCRIPTION_BYTES } from "../rpc/frames.js";
import { registerZapDomain } from "../security/zap.js";
import { SubscriptionGate, type ProvenTopics, type PublisherAuth } from "./subscription-gate.js";

export type { PublisherAuth } from "./subscription-gate.js";

/** Options of {@link Publisher}. */
export interface PublisherOptions {
  /** Where to bind, e.g. `tcp://127.0.0.1:5563`; port 0 picks a free port. */
  endpoint: string;
  /** @default noopLogger */
  logger?: Logger | undefined;
  /** Messages buffered per slow subscriber before ZeroMQ drops new ones. @default 100000 */
  highWaterMark?: number | undefined;
  /**
   * CURVE, ZAP admission of enrolled keys, and subscriptions only to the topics each key may
   * receive, each proven with the key (docs/protocol.md section 6). Absent: plaintext, anyone
   * may subscribe to anything.
   */
  auth?: PublisherAuth | undefined;
  /**
   * With `auth`: called when a peer sent something upstream that is not a subscription (a user
   * message from an XSUB, several frames, an empty message). libzmq then no longer knows which
   * peer a later subscription came from, so the gate applies none until the socket is replaced:
   * the owner should close this publisher and bind a new one on the same port (every subscriber
   * reconnects and proves its topics again).
   */
  onUntrustedUpstream?: (() => void) | undefined;
  /**
   * With `auth`: called synchronously whenever a subscriber proved a topic nobody proved before
   * ({@link Publisher.provenTopics} changed), e.g. to tell another thread at once.
   */
  onProven?: (() => void) | undefined;
}

/**
 * The publish channel's sending side (a PUB socket). Each message is two frames:
 * `[ topic, JSON body ]`. Topics come from `topics` and end with `|`.
 * Delivery is best effort: subscribers that connect late or fall behind miss messages.
 */
export class Publisher {
  private readonly socket: ZmqPublisher | XPublisher;
  private readonly auth: PublisherAuth | undefined;
  private readonly onUntrustedUpstream: (() => void) | undefined;
  private readonly onProven: (() => void) | undefined;
  private releaseZap: (() => void) | null = null;
  private readonly queue: SendQueue;
  private readonly logger: Logger;
  private readonly requested: string;
  private bound: string | null = null;
  private closed = false;
  /** The {@link bind} in progress: {@link close} waits for it (see there). */
  private binding: Promise<string> | null = null;
  /** Serialised messages waiting for the next event-loop turn. */
  private pending: [string, string][] = [];
  private flushScheduled = false;

  constructor(opts: PublisherOptions) {
    this.requested = opts.endpoint;
    this.logger = opts.logger ?? noopLogger;
    this.auth = opts.auth;
    this.onUntrustedUpstream = opts.onUntrustedUpstream;
    this.onProven = opts.onProven;
    const options = {
      linger: 0,
      sendHighWaterMark: opts.highWaterMark ?? 100_000,
      // Inbound only: what subscribers send are subscriptions, a few hundred bytes each.
      maxMessageSize: MAX_SUBSCRIPTION_BYTES,
    };
    if (this.auth === undefined) {
      this.socket = new ZmqPublisher(options);
    } else {
      // Manual subscriptions: a subscriber gets only the topics this process subscribes it to,
      // after checking its proof and its key's permissions.
      this.socket = new XPublisher({
        ...options,
        manual: true,
        curveServer: true,
        curvePublicKey: this.auth.keyPair.publicKey,
        curveSecretKey: this.auth.keyPair.secretKey,
        zapEnforceDomain: true,
      });
    }
    this.queue = new SendQueue(this.socket);
  }

  /**
   * Messages published and not yet handed to ZeroMQ (serialised, waiting in this process): what a
   * caller checks before publishing what it may drop under load.
   */
  get backlog(): number {
    return this.pending.length + this.queue.size;
  }

  /** The bound endpoint (after {@link bind}). */
  get endpoint(): string | null {
    return this.bound;
  }

  /**
   * Bind the socket.
   * @returns the actual endpoint, e.g. `tcp://127.0.0.1:40124`
   */
  bind(): Promise<string> {
    this.binding ??= this.bindOnce();
    return this.binding;
  }

  private async bindOnce(): Promise<string> {
    const auth = this.auth;
    if (auth !== undefined) {
      const zap = await registerZapDomain((key) => auth.identify(key) !== undefined, this.logger);
      this.releaseZap = zap.release;
      this.socket.zapDomain = zap.domain;
    }
    try {
      await bindOrExplain(this.socket, this.requested.replace(/:0$/, ":*"));
    } catch (e) {
      this.releaseZap?.();
      this.releaseZap = null;
      throw e;
    }
    this.bound = this.socket.lastEndpoint ?? this.requested;
    if (auth !== undefined && this.socket instanceof XPublisher) {
      this.gate = new SubscriptionGate(this.socket, auth, this.logger, () => this.onUntrustedUpstream?.());
      this.gate.onProven = this.onProven ?? null;
      this.gate.start();
    }
    return this.bound;
  }

  private gate: SubscriptionGate | null = null;

  /**
   * Whether publishing on `topic` can reach anyone: with `auth`, false until some connection
   * proved a subscription to a prefix of it (see {@link SubscriptionGate.mayHaveSubscribers});
   * without, always true (a plain PUB does not tell). Callers skip building messages nobody gets.
   */
  wants(topic: string): boolean {
    return this.gate === null || this.gate.mayHaveSubscribers(topic);
  }

  /**
   * What {@link wants} answers from, for another thread (`null`: no gate, every topic is wanted),
   * with a number that changes whenever it does.
   */
  provenTopics(): ProvenTopics | null {
    return this.gate === null ? null : this.gate.provenTopics();
  }

  /** Changes whenever {@link provenTopics} does (-1 without a gate). */
  get provenCount(): number {
    return this.gate === null ? -1 : this.gate.provenCount;
  }

  /** Queue one message. Never throws: unserialisable bodies and send failures are logged. */
  publish(topic: string, body: unknown): void {
    if (this.closed) return;
    let text: string;
    try {
      text = JSON.stringify(body ?? null);
    } catch (e) {
      this.logger.warn("publish: body is not serialisable, dropped", { topic, error: e });
      return;
    }
    // Handed to ZeroMQ on the next turn of the event loop: a request handler that publishes
    // replies first, and everything published in one turn goes out together.
    this.pending.push([topic, text]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    for (const [topic, text] of batch) {
      this.queue.push([topic, text]).catch((e: unknown) => {
        if (!this.closed) this.logger.warn("publish failed", { topic, error: e });
      });
    }
  }

  /**
   * Send what is queued (bounded wait), then close the socket. Idempotent. A {@link bind} in
   * progress is waited for first: closing a zeromq.js socket while its bind is still running can
   * leave the port bound and the process unable to exit.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.binding?.catch(() => undefined);
    if (this.closed) return;
    this.flush();
    await settleWithin(this.queue.drain(), 500);
    this.closed = true;
    this.releaseZap?.();
    this.releaseZap = null;
    this.queue.close(new CdktrError("CLOSED", "publisher closed", { retryable: false }));
    // Queued messages get a bounded time to leave (linger 0 would discard them).
    this.socket.linger = 500;
    this.socket.close();
  }
}

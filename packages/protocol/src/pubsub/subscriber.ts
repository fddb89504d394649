import { Subscriber as ZmqSubscriber } from "zeromq";
import { noopLogger, type Logger } from "../logging/logger.js";
import { ZMQ_MAX_MESSAGE_BYTES } from "../rpc/frames.js";
import { findClientKey, type ClientKey } from "../security/key-file.js";
import { sharedSecret, subscribeProof } from "../security/proofs.js";
import { SUBSCRIPTION_AUTH_PREFIX } from "./subscription-gate.js";

/** Options of {@link Subscriber}. */
export interface SubscriberOptions {
  /** The publisher's endpoint, e.g. `tcp://127.0.0.1:5563`. */
  endpoint: string;
  /** @default noopLogger */
  logger?: Logger | undefined;
  /**
   * The client's key: CURVE to the pinned principal key, and every subscription proven with the
   * key (the principal subscribes the connection only to topics the key's role may receive).
   * Null: plaintext, for a principal running with `CDKTR_AUTH=off`. Default: the file named by
   * `CDKTR_KEY_FILE`, else `<CDKTR_KEYS_DIR>/<keyName>.json` when it exists.
   */
  key?: ClientKey | null | undefined;
  /** The local key looked for when `key` is not given. @default "local-operator" */
  keyName?: string | undefined;
  /**
   * Called after each completed handshake with a publisher: the first connection, every
   * reconnection (a principal restart, a network cut) and each move to another leader. What was
   * published while no connection was up is lost, so a consumer that mirrors state refetches it.
   */
  onConnect?: ((endpoint: string) => void) | undefined;
}

/** One message of the publish channel. */
export interface Published {
  topic: string;
  /** The parsed JSON body; validate it with the topic's schema (`RunEventSchema`, ...). */
  body: unknown;
}

/**
 * The publish channel's receiving side (a SUB socket). Subscribe with topic prefixes from
 * `topics` (`topics.logs("etl")` receives every line of workflow `etl`, never of `etl2`), then
 * iterate once with `for await`. Iteration ends when {@link close} is called. Malformed
 * messages are skipped (logged at debug). Reconnects automatically.
 *
 * @example
 * const sub = new Subscriber({ endpoint: "tcp://127.0.0.1:5563" });
 * sub.connect();
 * sub.subscribe(topics.runs("etl"));
 * for await (const { topic, body } of sub) { ... }
 */
export class Subscriber {
  private readonly socket: ZmqSubscriber;
  private readonly logger: Logger;
  private current: string;
  private closed = false;
  private connected = false;
  private readonly key: ClientKey | null;
  private readonly shared: Buffer | null;

  constructor(opts: SubscriberOptions) {
    this.current = opts.endpoint;
    this.logger = opts.logger ?? noopLogger;
    this.socket = new ZmqSubscriber({
      linger: 0,
      receiveHighWaterMark: 100_000,
      maxMessageSize: ZMQ_MAX_MESSAGE_BYTES,
      reconnectInterval: 100,
      reconnectMaxInterval: 2000,
    });
    this.key = opts.key !== undefined ? opts.key : findClientKey(opts.keyName ?? "local-operator");
    this.shared = null;
    if (this.key !== null) {
      this.socket.curveServerKey = this.key.principalPublicKey;
      this.socket.curvePublicKey = this.key.publicKey;
      this.socket.curveSecretKey = this.key.secretKey;
      this.shared = sharedSecret(this.key.secretKey, this.key.principalPublicKey);
    }
    const onConnect = opts.onConnect;
    if (onConnect !== undefined) {
      this.socket.events.on("handshake", (e) => {
        if (!this.closed) onConnect(e.address);
      });
    }
  }

  /**
   * What is sent for each topic: the topic (this socket's own filter) and, with a key, the proof
   * the publisher checks (ZeroMQ resends both after every reconnect).
   */
  private subscriptions(topicPrefixes: readonly string[]): string[] {
    const prefixes = topicPrefixes.length === 0 ? [""] : [...topicPrefixes];
    const key = this.key;
    const shared = this.shared;
    if (key === null || shared === null) return prefixes;
    return prefixes.flatMap((t) => [
      `${SUBSCRIPTION_AUTH_PREFIX}${key.publicKey} ${subscribeProof(shared, t)} ${t}`,
      t,
    ]);
  }

  /** The publisher's endpoint. */
  get endpoint(): string {
    return this.current;
  }

  /** Connect to the publisher (idempotent; reconnects by itself). */
  connect(): void {
    if (this.connected || this.closed) return;
    this.socket.connect(this.current);
    this.connected = true;
  }

  /**
   * Receive from another publisher from now on (a new leader among several principals): the
   * subscriptions made so far are sent to it; what it published before is not replayed.
   */
  moveTo(endpoint: string): void {
    if (this.closed || endpoint === this.current) return;
    const from = this.current;
    this.current = endpoint;
    if (!this.connected) return;
    try {
      this.socket.disconnect(from);
    } catch {
      // never connected there (a bad endpoint): nothing to undo
    }
    this.socket.connect(endpoint);
    this.logger.info("subscriber moved to the leader's publish endpoint", { from, to: endpoint });
  }

  /** Receive messages whose topic starts with one of `topicPrefixes` (`""` = everything). */
  subscribe(...topicPrefixes: string[]): void {
    if (this.closed) return;
    this.socket.subscribe(...this.subscriptions(topicPrefixes));
  }

  /** Stop receiving the given prefixes. */
  unsubscribe(...topicPrefixes: string[]): void {
    if (this.closed) return;
    this.socket.unsubscribe(...this.subscriptions(topicPrefixes));
  }

  /** Messages as they arrive; iterate at most once at a time. Ends after {@link close}. */
  async *[Symbol.asyncIterator](): AsyncIterator<Published> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch (e) {
        if (this.closed || this.socket.closed) return;
        throw e;
      }
      if (frames.length !== 2 || frames[0] === undefined || frames[1] === undefined) {
        this.logger.debug("subscriber: skipped message with wrong frame count", { frames: frames.length });
        continue;
      }
      const topic = frames[0].toString("utf8");
      let body: unknown;
      try {
        body = JSON.parse(frames[1].toString("utf8"));
      } catch {
        this.logger.debug("subscriber: skipped message with a non-JSON body", { topic });
        continue;
      }
      yield { topic, body };
    }
  }

  /** Close the socket; a running iteration ends. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}

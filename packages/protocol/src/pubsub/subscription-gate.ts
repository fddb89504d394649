/**
 * The publish channel's door keeper (docs/protocol.md section 6). The XPUB socket runs in manual
 * mode: a subscriber's own subscription messages do nothing by themselves. A subscriber proves
 * each topic with its key (`"!auth " + publicKey + " " + proof + " " + topic`), and only then
 * does this gate subscribe that connection (libzmq applies it to the peer whose message was read
 * last) to that topic, when the key's role allows it.
 */
import type { XPublisher } from "zeromq";
import type { Logger } from "../logging/logger.js";
import type { KeyIdentity } from "../security/identity.js";
import type { KeyPair } from "../security/key-file.js";
import { sameProof, sharedSecret, subscribeProof } from "../security/proofs.js";

/** What a secure publisher needs to know about keys and topics. */
export interface PublisherAuth {
  /** The server's CURVE pair. */
  keyPair: KeyPair;
  /** The identity of an enrolled, not revoked public key (Z85). */
  identify(publicKey: string): KeyIdentity | undefined;
  /** Whether `identity` may receive the topics starting with `topic`. */
  permitsTopic(identity: KeyIdentity, topic: string): boolean | Promise<boolean>;
}

/** The topics some connection of a publisher was subscribed to, as plain (cloneable) data. */
export interface ProvenTopics {
  /** Too many distinct topics were proven: every topic counts as wanted. */
  all: boolean;
  /** Proven topics ending with `|` (matched at every `|` of a topic). */
  prefixes: string[];
  /** Proven topics not ending with `|` (matched with `startsWith`). */
  irregular: string[];
  /** How many topics were proven (grows with each new one). */
  count: number;
}

/** Whether a subscription in the proven sets matches `topic` (a prefix of it, cut at a `|` or irregular). */
function topicProven(all: boolean, proven: ReadonlySet<string>, irregular: readonly string[], topic: string): boolean {
  if (all) return true;
  for (const p of irregular) if (topic.startsWith(p)) return true;
  for (let i = topic.indexOf("|"); i >= 0; i = topic.indexOf("|", i + 1)) {
    if (proven.has(topic.slice(0, i + 1))) return true;
  }
  return false;
}

/** {@link ProvenTopics} received from another thread, matched like the gate matches its own. */
export class ProvenTopicSet {
  readonly #all: boolean;
  readonly #prefixes: ReadonlySet<string>;
  readonly #irregular: readonly string[];

  constructor(p: ProvenTopics) {
    this.#all = p.all;
    this.#prefixes = new Set(p.prefixes);
    this.#irregular = p.irregular;
  }

  /** Whether a message on `topic` may reach a subscriber. */
  has(topic: string): boolean {
    return topicProven(this.#all, this.#prefixes, this.#irregular, topic);
  }
}

/** Prefix of a proven subscription (a topic never starts with `!`). */
export const SUBSCRIPTION_AUTH_PREFIX = "!auth ";

/** ZMQ_SUBSCRIBE / ZMQ_UNSUBSCRIBE: on an XPUB in manual mode they apply to the last peer read. */
const ZMQ_SUBSCRIBE = 6;
const ZMQ_UNSUBSCRIBE = 7;
/** Shared secrets kept (one X25519 per key, not per subscription). */
const MAX_SECRETS = 10_000;
/** Distinct proven topics remembered; beyond, every topic counts as wanted. */
const MAX_PROVEN_TOPICS = 10_000;

interface ManualXPub {
  setStringOption(option: number, value: string | null): void;
}

/**
 * Reads subscription messages of one XPUB and subscribes peers to what they may receive. libzmq
 * remembers the sending peer only of subscription messages: once anything else was read (a user
 * message from an XSUB, several frames, an empty frame) the gate applies no more subscriptions
 * and calls `onUntrusted`, whose owner replaces the socket (every subscriber reconnects and
 * proves its topics again).
 */
export class SubscriptionGate {
  readonly #socket: XPublisher;
  readonly #auth: PublisherAuth;
  readonly #logger: Logger;
  readonly #secrets = new Map<string, Buffer>();

  readonly #onUntrusted: () => void;
  /** A message that is not a subscription was read: no subscription is attributable any more. */
  #untrusted = false;
  /** Topics applied to some connection since the socket was bound (ending with `|`). */
  readonly #proven = new Set<string>();
  /** Applied topics that do not end with `|` (`""`, `"lo"`...): matched with `startsWith`. */
  readonly #provenIrregular: string[] = [];
  /** More distinct topics than {@link MAX_PROVEN_TOPICS} were applied: assume every topic is wanted. */
  #provenAll = false;

  constructor(socket: XPublisher, auth: PublisherAuth, logger: Logger, onUntrusted: () => void = () => undefined) {
    this.#socket = socket;
    this.#auth = auth;
    this.#logger = logger;
    this.#onUntrusted = onUntrusted;
  }

  /**
   * Whether a message on `topic` may reach anyone: false when no connection of this socket has
   * been subscribed, since it was bound, to a prefix of it (so publishing it is wasted work). Never
   * forgets: a subscriber that went away still counts (the unsubscriptions libzmq reports on a
   * disconnect cannot be told from ones any peer may send, and must not silence a watcher).
   */
  mayHaveSubscribers(topic: string): boolean {
    return topicProven(this.#provenAll, this.#proven, this.#provenIrregular, topic);
  }

  /**
   * What {@link mayHaveSubscribers} answers from, as plain data (another thread matches topics
   * against it with {@link ProvenTopicSet}); `count` grows with every newly proven topic.
   */
  provenTopics(): ProvenTopics {
    return {
      all: this.#provenAll,
      prefixes: [...this.#proven],
      irregular: [...this.#provenIrregular],
      count: this.#proven.size + this.#provenIrregular.length + (this.#provenAll ? 1 : 0),
    };
  }

  /** Changes whenever a topic is newly proven (cheap: compare before asking {@link provenTopics}). */
  get provenCount(): number {
    return this.#proven.size + this.#provenIrregular.length + (this.#provenAll ? 1 : 0);
  }

  /** Remember that `topic` was applied to a connection. */
  #remember(topic: string): void {
    if (this.#provenAll || this.#proven.has(topic) || this.#provenIrregular.includes(topic)) return;
    if (this.#proven.size + this.#provenIrregular.length >= MAX_PROVEN_TOPICS) this.#provenAll = true;
    else if (topic.endsWith("|")) this.#proven.add(topic);
    else this.#provenIrregular.push(topic);
    this.onProven?.();
  }

  /** Called synchronously whenever a topic is newly proven ({@link provenTopics} changed). */
  onProven: (() => void) | null = null;

  /** Start reading subscription messages until the socket closes. */
  start(): void {
    void this.#loop();
  }

  async #loop(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.#socket.receive();
      } catch {
        if (this.#socket.closed) return;
        continue;
      }
      const message = frames[0];
      if (
        frames.length !== 1 ||
        message === undefined ||
        message.length === 0 ||
        (message[0] !== 0 && message[0] !== 1)
      ) {
        // Not a subscription: libzmq queued it without its peer, so "the last peer read" is off
        // by one for every subscription behind it (it would land on another connection).
        this.#distrust(frames.length);
        continue;
      }
      if (this.#untrusted || message.length < 2) continue;
      const subscribe = message[0] === 1;
      try {
        // Awaited before the next receive: "the last peer read" must still be this one.
        await this.#handle(message.subarray(1).toString("utf8"), subscribe);
      } catch (e) {
        this.#logger.warn("publish: a subscription could not be checked; ignored", { error: e });
      }
    }
  }

  async #handle(text: string, subscribe: boolean): Promise<void> {
    // A plain topic (the subscriber's local filter) does nothing: only proven ones count.
    if (!text.startsWith(SUBSCRIPTION_AUTH_PREFIX)) return;
    const [publicKey = "", proof = "", ...rest] = text.slice(SUBSCRIPTION_AUTH_PREFIX.length).split(" ");
    const topic = rest.join(" ");
    const identity = this.#auth.identify(publicKey);
    if (identity === undefined) return;
    if (!sameProof(subscribeProof(this.#secret(publicKey), topic), proof)) {
      this.#logger.warn("publish: subscription with a wrong proof ignored", { key: identity.name });
      return;
    }
    const xpub = this.#socket as unknown as ManualXPub;
    if (!subscribe) {
      xpub.setStringOption(ZMQ_UNSUBSCRIBE, topic);
      return;
    }
    if (!(await this.#auth.permitsTopic(identity, topic))) {
      this.#logger.info("publish: subscription refused", { key: identity.name, role: identity.role, topic });
      return;
    }
    xpub.setStringOption(ZMQ_SUBSCRIBE, topic);
    this.#remember(topic);
  }

  /** From now on apply no subscription, and ask for a fresh socket (once). */
  #distrust(frames: number): void {
    if (this.#untrusted) return;
    this.#untrusted = true;
    this.#logger.warn(
      "publish: a peer sent something upstream that is not a subscription; subscriptions can no longer be attributed to their connection, so none is applied until the publish socket is replaced",
      { frames },
    );
    this.#onUntrusted();
  }

  #secret(publicKey: string): Buffer {
    let secret = this.#secrets.get(publicKey);
    if (secret === undefined) {
      secret = sharedSecret(this.#auth.keyPair.secretKey, publicKey);
      if (this.#secrets.size >= MAX_SECRETS) this.#secrets.clear();
      this.#secrets.set(publicKey, secret);
    }
    return secret;
  }
}

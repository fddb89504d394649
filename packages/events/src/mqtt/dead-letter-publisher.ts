/**
 * The MQTT listener's second connection, opened on the first parked message: it republishes
 * parked messages to the dead-letter topic at QoS 1 and waits for the broker's PUBACK.
 *
 * Why a second connection: MQTT.js hands incoming messages over one at a time and reads no other
 * packet until the message in hand is settled, so a PUBACK for a publish made on the consuming
 * connection could never be read before that message's own acknowledgement: it would wait forever.
 */
import { connectAsync, type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import { errorMessage, type Logger } from "@cdktr/protocol";
import { DeadLetterError } from "../errors.js";

/** Options of {@link DeadLetterPublisher}. */
export interface DeadLetterPublisherOptions {
  url: string;
  /** Connection options (credentials, TLS, client id: a clean session of its own). */
  client: IClientOptions;
  topic: string;
  logger: Logger;
}

/** Publishes to one dead-letter topic; reconnects on the next publish after a connection loss. */
export class DeadLetterPublisher {
  readonly #opts: DeadLetterPublisherOptions;
  #client: MqttClient | null = null;
  #connecting: Promise<MqttClient> | null = null;
  /** Bumped by {@link close}: a connection opened for an older generation is closed at once. */
  #generation = 0;

  constructor(opts: DeadLetterPublisherOptions) {
    this.#opts = opts;
  }

  /**
   * Publish `payload` with `properties` at QoS 1 and resolve once the broker acknowledged it.
   * @throws DeadLetterError when not connected within `timeoutMs`, when the broker refuses the publish (an
   *   MQTT 5 reason code, e.g. not authorized) or does not acknowledge it within `timeoutMs`
   */
  async publish(payload: Buffer, properties: IPublishPacket["properties"], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const client = await withTimeout(this.#connect(), timeoutMs, "connecting for the dead-letter topic");
    await withTimeout(
      client.publishAsync(this.#opts.topic, payload, { qos: 1, retain: false, ...(properties ? { properties } : {}) }),
      Math.max(1, deadline - Date.now()),
      `waiting for the broker to acknowledge the dead-letter publish to ${this.#opts.topic}`,
    );
  }

  /**
   * Close the connection (waiting at most 2 s for publishes in flight); a connection still being
   * opened is closed as soon as it opens. The next publish connects again. Idempotent.
   */
  async close(): Promise<void> {
    this.#generation += 1;
    this.#connecting = null;
    const client = this.#client;
    this.#client = null;
    if (client === null) return;
    await withTimeout(client.endAsync(false), 2000, "closing").catch(() => client.end(true));
  }

  #connect(): Promise<MqttClient> {
    if (this.#client?.connected === true) return Promise.resolve(this.#client);
    const generation = this.#generation;
    this.#connecting ??= (async () => {
      const old = this.#client;
      this.#client = null;
      if (old !== null) old.end(true);
      let client: MqttClient;
      try {
        client = await connectAsync(
          this.#opts.url,
          { ...this.#opts.client, reconnectPeriod: 0, clean: true, protocolVersion: 5 },
          false,
        );
      } catch (e) {
        throw new DeadLetterError(`cannot connect to publish to the dead-letter topic: ${errorMessage(e)}`, {
          cause: e,
        });
      } finally {
        if (generation === this.#generation) this.#connecting = null;
      }
      client.on("error", (e) => this.#opts.logger.warn("mqtt dead-letter connection error", { error: e.message }));
      if (generation !== this.#generation) {
        client.end(true);
        throw new DeadLetterError("closed while connecting: the listener is stopping");
      }
      this.#client = client;
      return client;
    })();
    return this.#connecting;
  }
}

/** `p`, or a rejection after `ms` (the work itself is not cancelled). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadLetterError(`timed out after ${ms} ms ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

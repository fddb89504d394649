import { randomBytes } from "node:crypto";
import { Dealer } from "zeromq";
import { CdktrError, errorMessage } from "../errors.js";
import type { ReplyOf, RequestOf, VerbTable } from "../messages.js";
import { noopLogger, type Logger } from "../logging/logger.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  PROTOCOL,
  ZMQ_MAX_MESSAGE_BYTES,
  formatZodIssues,
  frameText,
  newRequestId,
} from "./frames.js";
import { decodeReply } from "./reply-frames.js";
import { SendQueue } from "./send-queue.js";
import { backoffDelay } from "../util/backoff.js";
import type { KeyIdentity } from "../security/identity.js";
import type { ClientKey } from "../security/key-file.js";
import { helloProof, sharedSecret } from "../security/proofs.js";
import { HelloReplySchema } from "../messages.js";

/** Retry policy of idempotent verbs. */
export interface RetryOptions {
  /** Total attempts including the first. @default 3 */
  attempts?: number | undefined;
  /** First backoff delay; doubles each attempt, with jitter. @default 200 */
  baseDelayMs?: number | undefined;
  /** Largest backoff delay. @default 2000 */
  maxDelayMs?: number | undefined;
}

/** Options of {@link RpcClient}. */
export interface RpcClientOptions<T extends VerbTable> {
  /** Where the server listens, e.g. `tcp://127.0.0.1:5561`. */
  endpoint: string;
  /** The verb table spoken (`API_VERBS` or `LOG_VERBS`). */
  verbs: T;
  /** Time one attempt may take, from sending to the reply. @default 5000 */
  timeoutMs?: number | undefined;
  /** Retry of idempotent verbs on TIMEOUT / retryable errors. */
  retry?: RetryOptions | undefined;
  /** Requests larger than this are refused locally with `MESSAGE_TOO_LARGE`. @default 1048576 */
  maxMessageBytes?: number | undefined;
  /** @default noopLogger */
  logger?: Logger | undefined;
  /** Appended to TIMEOUT messages. @default "is the principal running? (`cdktr start principal`)" */
  hint?: string | undefined;
  /**
   * The client's key: the connection is CURVE-encrypted to the pinned principal key, and `hello`
   * binds it to this key before the first request (again after the server forgot it). Absent
   * or null: plaintext, for a principal running with `CDKTR_AUTH=off`.
   */
  key?: ClientKey | null | undefined;
  /**
   * Errors this client throws at once instead of retrying, because its owner handles them (a
   * client of several principals moves to the leader on `NOT_LEADER`, or to another principal
   * on `TIMEOUT`). @default none
   */
  failFast?: ((error: CdktrError) => boolean) | undefined;
}

/** Per-call options of {@link RpcClient.request}. */
export interface RequestOptions {
  /** Overrides the client's `timeoutMs` for each attempt of this call. */
  timeoutMs?: number | undefined;
  /** `false` disables retries for this call (retries only ever apply to idempotent verbs). */
  retry?: boolean | undefined;
}

interface Pending {
  verb: string;
  resolve: (v: unknown) => void;
  reject: (e: CdktrError) => void;
  timer: NodeJS.Timeout;
}

/**
 * The client half of the request/reply channel: ONE persistent DEALER socket with a random
 * routing id, many requests in flight, replies matched by request id.
 *
 * - `immediate` is set, so nothing is queued while the server is absent: a request made while no
 *   server runs fails with `TIMEOUT` and is never executed by a server started later.
 * - Each attempt carries a deadline; the server drops expired requests; a late reply is discarded.
 * - Idempotent verbs (`verbs[verb].idempotent`) are retried with jittered exponential backoff on
 *   `TIMEOUT` and retryable server errors, except when the request could not even be sent
 *   (no server reachable for the whole timeout).
 * - Replies are validated with the verb's reply schema (`INTERNAL` when invalid).
 * - After {@link close} no socket or timer is left, so the process can exit by itself.
 */
export class RpcClient<T extends VerbTable> {
  /** The server endpoint this client connects to. */
  readonly endpoint: string;
  private readonly verbs: T;
  private readonly socket: Dealer;
  private readonly queue: SendQueue;
  private readonly pending = new Map<string, Pending>();
  private readonly sleeps = new Set<{ timer: NodeJS.Timeout; reject: (e: CdktrError) => void }>();
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxMessageBytes: number;
  protected readonly logger: Logger;
  private readonly hint: string;
  private closed = false;
  private readonly key: ClientKey | null;
  private shared: Buffer | null = null;
  private helloing: Promise<KeyIdentity> | null = null;
  private proven: KeyIdentity | null = null;
  private readonly failFast: (error: CdktrError) => boolean;

  constructor(opts: RpcClientOptions<T>) {
    this.endpoint = opts.endpoint;
    this.verbs = opts.verbs;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.attempts = Math.max(1, opts.retry?.attempts ?? 3);
    this.baseDelayMs = opts.retry?.baseDelayMs ?? 200;
    this.maxDelayMs = opts.retry?.maxDelayMs ?? 2000;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.logger = opts.logger ?? noopLogger;
    this.key = opts.key ?? null;
    this.failFast = opts.failFast ?? (() => false);
    this.hint =
      opts.hint ??
      (this.key === null
        ? "is the principal running? (`cdktr start principal`); a principal with authentication on answers only clients with a key (CDKTR_KEY_FILE)"
        : `is the principal running, and is key \`${this.key.name}\` enrolled there with this principal's public key pinned? (a principal answers nothing to a key it does not know)`);
    this.socket = new Dealer({
      routingId: `c-${randomBytes(12).toString("hex")}`,
      immediate: true,
      linger: 0,
      maxMessageSize: ZMQ_MAX_MESSAGE_BYTES,
      reconnectInterval: 100,
      reconnectMaxInterval: 2000,
      sendHighWaterMark: 10_000,
      receiveHighWaterMark: 10_000,
    });
    if (this.key !== null) {
      this.socket.curveServerKey = this.key.principalPublicKey;
      this.socket.curvePublicKey = this.key.publicKey;
      this.socket.curveSecretKey = this.key.secretKey;
    }
    this.socket.connect(this.endpoint);
    this.queue = new SendQueue(this.socket);
    void this.receiveLoop();
  }

  /**
   * Send `verb` with `body` and resolve with the validated reply.
   * @throws CdktrError `TIMEOUT` (no reply in time), `CLOSED` (client closed), `BAD_REQUEST`
   *   (body fails the request schema, checked locally), `MESSAGE_TOO_LARGE`, `INTERNAL` (invalid
   *   reply) or the server's code.
   */
  async request<V extends keyof T & string>(
    verb: V,
    body: RequestOf<T, V>,
    opts: RequestOptions = {},
  ): Promise<ReplyOf<T, V>> {
    const spec = this.verbs[verb];
    if (spec === undefined) {
      throw new CdktrError(
        "UNKNOWN_VERB",
        `unknown verb ${JSON.stringify(verb)}; known: ${Object.keys(this.verbs).join(", ")}`,
      );
    }
    const checked = spec.request.safeParse(body);
    if (!checked.success) {
      throw new CdktrError("BAD_REQUEST", `invalid ${verb} request: ${formatZodIssues(checked.error, "body")}`, {
        retryable: false,
      });
    }
    const text = JSON.stringify(body ?? {});
    const size = PROTOCOL.length + 36 + 16 + verb.length + Buffer.byteLength(text);
    if (size > this.maxMessageBytes) {
      throw new CdktrError(
        "MESSAGE_TOO_LARGE",
        `${verb} request of ${size} bytes exceeds the limit of ${this.maxMessageBytes} bytes; send smaller batches`,
        { retryable: false },
      );
    }
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const attempts = spec.idempotent && opts.retry !== false ? this.attempts : 1;
    let rehello = true;
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.key !== null && verb !== "hello") await this.hello(timeoutMs);
        const raw = await this.attempt(verb, text, timeoutMs).catch((e: unknown) => {
          // The server forgot this connection (it restarted, or evicted it): prove the key again
          // and resend, once, without counting an attempt.
          if (rehello && this.key !== null && (e as { code?: unknown }).code === "UNAUTHENTICATED") {
            rehello = false;
            this.proven = null;
            return this.hello(timeoutMs).then(() => this.attempt(verb, text, timeoutMs));
          }
          throw e;
        });
        const parsed = spec.reply.safeParse(raw);
        if (!parsed.success) {
          throw new CdktrError(
            "INTERNAL",
            `invalid ${verb} reply from ${this.endpoint}: ${formatZodIssues(parsed.error, "reply")}; are client and server the same cdktr version?`,
            { retryable: false },
          );
        }
        return parsed.data as ReplyOf<T, V>;
      } catch (e) {
        const err = e instanceof CdktrError ? e : new CdktrError("INTERNAL", errorMessage(e), { cause: e });
        const unsent = err.context.unsent === true;
        if (attempt >= attempts || !err.retryable || unsent || this.closed || this.failFast(err)) throw err;
        const delay = this.backoff(attempt);
        this.logger.debug("rpc retry", { verb, attempt, code: err.code, delayMs: delay });
        await this.sleep(delay);
      }
    }
  }

  /** The identity `hello` proved (null before the first request, and without a key). */
  get identity(): KeyIdentity | null {
    return this.proven;
  }

  /**
   * Bind this connection to the key (single flight): `hello` returns a challenge, the client
   * answers with an HMAC under the X25519 secret it shares with the principal.
   */
  private hello(timeoutMs: number): Promise<KeyIdentity> {
    const key = this.key;
    if (key === null) return Promise.reject(new CdktrError("INTERNAL", "hello without a key", { retryable: false }));
    if (this.proven !== null) return Promise.resolve(this.proven);
    this.helloing ??= (async () => {
      try {
        this.shared ??= sharedSecret(key.secretKey, key.principalPublicKey);
        const first = HelloReplySchema.parse(
          await this.attempt("hello", JSON.stringify({ publicKey: key.publicKey }), timeoutMs),
        );
        if (first.challenge === null) {
          throw new CdktrError(
            "UNAUTHENTICATED",
            `${this.endpoint} runs without authentication (CDKTR_AUTH=off) but this client has key \`${key.name}\`: set CDKTR_AUTH=off here too`,
            { retryable: false },
          );
        }
        const proof = helloProof(this.shared, first.challenge, key.publicKey, key.principalPublicKey);
        const second = HelloReplySchema.parse(
          await this.attempt(
            "hello",
            JSON.stringify({ publicKey: key.publicKey, challenge: first.challenge, proof }),
            timeoutMs,
          ),
        );
        if (second.identity === null) {
          throw new CdktrError("UNAUTHENTICATED", `${this.endpoint} did not confirm key \`${key.name}\``, {
            retryable: false,
          });
        }
        this.proven = second.identity;
        this.logger.debug("rpc client: key proven", {
          endpoint: this.endpoint,
          key: key.name,
          role: second.identity.role,
        });
        return second.identity;
      } finally {
        this.helloing = null;
      }
    })();
    return this.helloing;
  }

  /** Close the socket; pending calls reject with `CLOSED`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new CdktrError("CLOSED", `client of ${this.endpoint} was closed`, { retryable: false });
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
    for (const s of this.sleeps) {
      clearTimeout(s.timer);
      s.reject(err);
    }
    this.sleeps.clear();
    this.queue.close(err);
    this.socket.close();
  }

  /** Whether {@link close} was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  private backoff(attempt: number): number {
    return backoffDelay(attempt, { initialMs: this.baseDelayMs, maxMs: this.maxDelayMs });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const entry = {
        timer: setTimeout(() => {
          this.sleeps.delete(entry);
          resolve();
        }, ms),
        reject,
      };
      this.sleeps.add(entry);
    });
  }

  /** One attempt: resolves with the raw reply JSON or rejects with a CdktrError. */
  private attempt(verb: string, body: string, timeoutMs: number): Promise<unknown> {
    if (this.closed) {
      return Promise.reject(new CdktrError("CLOSED", `client of ${this.endpoint} was closed`, { retryable: false }));
    }
    const requestId = newRequestId();
    const deadline = Date.now() + timeoutMs;
    let sent = false;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(
          sent
            ? new CdktrError(
                "TIMEOUT",
                `no reply from ${this.endpoint} within ${timeoutMs} ms to ${verb}: ${this.hint}`,
                { context: { verb, endpoint: this.endpoint } },
              )
            : new CdktrError(
                "TIMEOUT",
                `could not reach ${this.endpoint} within ${timeoutMs} ms to send ${verb}: ${this.hint}`,
                { context: { verb, endpoint: this.endpoint, unsent: true } },
              ),
        );
      }, timeoutMs);
      this.pending.set(requestId, { verb, resolve, reject, timer });
      this.queue.push([PROTOCOL, requestId, String(deadline), verb, body], { deadline }).then(
        () => {
          sent = true;
        },
        (e: unknown) => {
          const p = this.pending.get(requestId);
          if (p === undefined) return; // timed out or closed already
          const code = (e as { code?: unknown }).code;
          if (code === "EAGAIN" || code === "EXPIRED") return; // no peer until the deadline: the timer reports it
          clearTimeout(p.timer);
          this.pending.delete(requestId);
          p.reject(
            new CdktrError("UNAVAILABLE", `cannot send ${verb} to ${this.endpoint}: ${errorMessage(e)}`, {
              cause: e,
              context: { verb, endpoint: this.endpoint },
            }),
          );
        },
      );
    });
  }

  private async receiveLoop(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch (e) {
        if (this.closed || this.socket.closed) return;
        this.logger.warn("rpc client receive failed", { endpoint: this.endpoint, error: e });
        continue;
      }
      this.onReply(frames);
    }
  }

  private onReply(frames: Buffer[]): void {
    const requestId = frameText(frames[1]);
    const p = this.pending.get(requestId);
    if (p === undefined) {
      this.logger.debug("rpc late or unknown reply discarded", { endpoint: this.endpoint, requestId });
      return;
    }
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    const reply = decodeReply(frames, p.verb, this.endpoint);
    if (reply.ok) p.resolve(reply.json);
    else p.reject(reply.error);
  }
}

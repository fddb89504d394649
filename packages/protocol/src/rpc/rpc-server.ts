import { Router } from "zeromq";
import { CdktrError, UsageError, errorMessage, toCdktrError, type ErrorCode, type WireError } from "../errors.js";
import type { ParsedRequestOf, ReplyOf, ServerHealth, VerbTable } from "../messages.js";
import { noopLogger, type Logger } from "../logging/logger.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_REQUEST_ID_BYTES,
  PROTOCOL,
  formatZodIssues,
  frameBytes,
  frameText,
  isUtf8Frame,
  peerName,
  serverFrameLimit,
} from "./frames.js";
import { SendQueue } from "./send-queue.js";
import { bindOrExplain } from "./bind.js";
import { packageVersion } from "../util/package-version.js";
import type { KeyIdentity } from "../security/identity.js";
import { HelloRequestSchema } from "../messages.js";
import { ServerSessions, type ServerAuth } from "../security/server-sessions.js";
import { registerZapDomain } from "../security/zap.js";

const PROTOCOL_PACKAGE_VERSION = packageVersion(import.meta.url);

/** What a handler learns about the request besides its body. */
export interface RequestContext {
  /** The caller's routing id (printable form). */
  peer: string;
  requestId: string;
  /** Epoch ms after which the caller no longer waits; null when it sent none. */
  deadline: number | null;
  /** Aborted at the deadline and when the server closes. */
  signal: AbortSignal;
  /** The key behind the connection (after `hello`); null when the server runs without authentication. */
  identity: KeyIdentity | null;
}

/** A verb handler: return the reply body or throw a {@link CdktrError}. */
export type Handler<T extends VerbTable, V extends keyof T & string> = (
  body: ParsedRequestOf<T, V>,
  ctx: RequestContext,
) => ReplyOf<T, V> | Promise<ReplyOf<T, V>>;

/**
 * A check of a request's JSON body before its schema is applied and its handler runs: throw a
 * CdktrError to refuse the request with it (e.g. a log batch beyond its agent's budget, refused
 * without the cost of validating 2,000 lines). It sees untrusted JSON: check every field's type.
 * Runs only for a connection that may call the verb (`identity` as the handler would see it).
 */
export type Precheck = (json: unknown, ctx: { peer: string; identity: KeyIdentity | null }) => void;

/** Options of {@link RpcServer}. */
export interface RpcServerOptions<T extends VerbTable> {
  /** Where to bind, e.g. `tcp://127.0.0.1:5561`; port 0 picks a free port. */
  endpoint: string;
  /** The verb table served (`API_VERBS` or `LOG_VERBS`). */
  verbs: T;
  /**
   * Requests larger than this (all frames) get `MESSAGE_TOO_LARGE`; a single frame larger than
   * this (at least 1 MiB, plus {@link FRAME_OVERHEAD_BYTES}) is refused by libzmq before it is
   * buffered, and the connection is dropped without a reply. @default 1048576 (1 MiB)
   */
  maxMessageBytes?: number | undefined;
  /** Replies larger than this are replaced by a `MESSAGE_TOO_LARGE` error. @default 33554432 (32 MiB) */
  maxReplyBytes?: number | undefined;
  /**
   * Requests one connection may have running at once; one more is answered at once with a
   * retryable `RESOURCE_EXHAUSTED` (a client pipelining without reading replies cannot pile up
   * handlers). @default 1000
   */
  maxInFlightPerPeer?: number | undefined;
  /** @default noopLogger */
  logger?: Logger | undefined;
  /** Reported by the built-in `ping` handler as `principalId`. @default "cdktr" */
  serverId?: string | undefined;
  /** Reported by the built-in `ping` handler as `version`. @default the version of `@cdktr/protocol` */
  version?: string | undefined;
  /** How long `close()` waits for running handlers before dropping their replies. @default 2000 */
  closeTimeoutMs?: number | undefined;
  /**
   * The `health` and `problems` of the built-in `ping` reply, asked on every ping (keep it cheap).
   * @default always `{ health: "ok", problems: [] }`
   */
  health?: (() => ServerHealth) | undefined;
  /**
   * CURVE encryption, ZAP admission of enrolled keys only, `hello` and per-verb permissions
   * (docs/protocol.md section 2). Absent: plaintext, every verb allowed, `identity` null.
   */
  auth?: ServerAuth | undefined;
}

/** Default of {@link RpcServerOptions.maxInFlightPerPeer}. */
export const DEFAULT_MAX_IN_FLIGHT_PER_PEER = 1000;

/**
 * Longest the receive loop dispatches queued requests before it lets the event loop run: zeromq.js
 * resolves a receive synchronously while messages are queued (up to 512 in a row), and a 2,000-line
 * log batch takes milliseconds to parse, so a flood on one socket would hold up every other socket.
 */
const RECEIVE_SLICE_MS = 1;

/** Pause before closing the socket when replies were sent during `close()`. */
const CLOSE_GRACE_MS = 100;

/** A running handler. Its abort controller (and deadline timer) exist once it reads `ctx.signal`. */
interface InFlight {
  controller: AbortController | null;
  timer: NodeJS.Timeout | undefined;
  /** Settles once the reply was queued. */
  done: Promise<void>;
}

interface Parsed {
  routingId: Buffer;
  /** The request id as text (for handlers and logs). */
  requestId: string;
  /** The request id exactly as the client sent it, echoed in the reply so that it can match it. */
  rawRequestId: Buffer | string;
}

/** A message with more frames than this is logged at warn, naming its sender's key. */
const MANY_FRAMES = 64;
/** Shortest interval between two of those warnings. */
const MANY_FRAMES_WARN_MS = 10_000;

/**
 * Names of the frames by index of `frames` (the routing id first), for error messages; those
 * name a frame by its number in docs/protocol.md (protocol = 0), one less than the index.
 */
const FRAME_NAMES = ["routing id", "protocol", "requestId", "deadline", "verb", "body"] as const;

/**
 * The server half of the request/reply channel: a ROUTER socket that validates every request
 * against its verb's zod schema, runs handlers concurrently and replies (possibly out of order).
 * Malformed input of any kind gets an error reply when the sender is routable and never stops
 * the receive loop.
 *
 * @example
 * const server = new RpcServer({ endpoint: "tcp://127.0.0.1:5561", verbs: API_VERBS, logger })
 *   .handle("getRun", async ({ runId }) => store.getRun(runId));
 * const endpoint = await server.bind();
 */
export class RpcServer<T extends VerbTable> {
  private readonly socket: Router;
  private readonly queue: SendQueue;
  private readonly handlers = new Map<string, Handler<T, keyof T & string>>();
  private readonly prechecks = new Map<string, Precheck>();
  private readonly inFlight = new Map<string, InFlight>();
  private readonly verbs: T;
  private readonly maxMessageBytes: number;
  private readonly maxReplyBytes: number;
  private readonly maxInFlightPerPeer: number;
  /** Requests running per connection (routing id, hex). */
  private readonly inFlightByPeer = new Map<string, number>();
  private readonly logger: Logger;
  private readonly serverId: string;
  private readonly version: string;
  private readonly closeTimeoutMs: number;
  private readonly health: () => ServerHealth;
  private readonly requestedEndpoint: string;
  private bound: string | null = null;
  private state: "new" | "running" | "closing" | "closed" = "new";
  private loop: Promise<void> | null = null;
  private seq = 0;
  private repliedWhileClosing = false;
  private readonly sessions: ServerSessions | null;
  private releaseZap: (() => void) | null = null;
  private manyFramesWarnedAt = 0;
  private manyFramesUnlogged = 0;

  constructor(opts: RpcServerOptions<T>) {
    this.verbs = opts.verbs;
    this.requestedEndpoint = opts.endpoint;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxReplyBytes = opts.maxReplyBytes ?? 32 * 1024 * 1024;
    this.maxInFlightPerPeer = Math.max(1, opts.maxInFlightPerPeer ?? DEFAULT_MAX_IN_FLIGHT_PER_PEER);
    this.logger = opts.logger ?? noopLogger;
    this.serverId = opts.serverId ?? "cdktr";
    this.version = opts.version ?? PROTOCOL_PACKAGE_VERSION;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 2000;
    this.health = opts.health ?? (() => ({ health: "ok", problems: [] }));
    this.socket = new Router({
      linger: 0,
      mandatory: true,
      sendTimeout: 0,
      // One frame above the whole request limit is refused as its size header arrives: an 80 MiB
      // frame is never buffered (docs/operations.md, "Wire limits").
      maxMessageSize: serverFrameLimit(this.maxMessageBytes),
      receiveHighWaterMark: 10_000,
      sendHighWaterMark: 10_000,
    });
    this.queue = new SendQueue(this.socket);
    this.sessions = opts.auth === undefined ? null : new ServerSessions(opts.auth);
    if (opts.auth !== undefined) {
      this.socket.curveServer = true;
      this.socket.curvePublicKey = opts.auth.keyPair.publicKey;
      this.socket.curveSecretKey = opts.auth.keyPair.secretKey;
      this.socket.zapEnforceDomain = true;
    }
    this.admit = opts.auth === undefined ? null : (key: string) => opts.auth?.identify(key) !== undefined;
  }

  private readonly admit: ((publicKey: string) => boolean) | null;

  /** Register the handler of `verb` (replacing any previous one). Returns `this` for chaining. */
  handle<V extends keyof T & string>(verb: V, handler: Handler<T, V>): this {
    if (!(verb in this.verbs))
      throw new UsageError("INVALID_ARGUMENT", `RpcServer.handle: ${verb} is not in the verb table`);
    this.handlers.set(verb, handler);
    return this;
  }

  /**
   * Register the {@link Precheck} of `verb` (replacing any previous one). Returns `this`.
   * @throws UsageError INVALID_ARGUMENT when `verb` is not in the verb table
   */
  precheck<V extends keyof T & string>(verb: V, check: Precheck): this {
    if (!(verb in this.verbs))
      throw new UsageError("INVALID_ARGUMENT", `RpcServer.precheck: ${verb} is not in the verb table`);
    this.prechecks.set(verb, check);
    return this;
  }

  /** The bound endpoint (after {@link bind}), e.g. `tcp://127.0.0.1:40123`. */
  get endpoint(): string | null {
    return this.bound;
  }

  /**
   * Bind the socket and start serving.
   * @returns the actual endpoint (with the chosen port when the requested one was 0)
   * @throws BindError when the address is in use or invalid (`code` `EADDRINUSE`, ...)
   * @throws UsageError `INVALID_STATE` when already bound or closed
   */
  async bind(): Promise<string> {
    if (this.state !== "new") throw new UsageError("INVALID_STATE", "RpcServer.bind: already bound or closed");
    const ep = this.requestedEndpoint.replace(/:0$/, ":*");
    if (this.admit !== null) {
      // ZAP first: a CURVE socket bound without its domain registered would refuse everyone.
      const zap = await registerZapDomain(this.admit, this.logger);
      this.releaseZap = zap.release;
      this.socket.zapDomain = zap.domain;
    }
    try {
      await bindOrExplain(this.socket, ep);
    } catch (e) {
      this.releaseZap?.();
      this.releaseZap = null;
      throw e;
    }
    this.bound = this.socket.lastEndpoint ?? this.requestedEndpoint;
    this.state = "running";
    this.loop = this.receiveLoop();
    this.logger.debug("rpc server bound", { endpoint: this.bound });
    return this.bound;
  }

  /**
   * Stop serving: requests arriving from now on get `SHUTTING_DOWN`, running handlers see their
   * signal aborted and get up to `closeTimeoutMs` to reply, then the socket closes.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.state === "closed" || this.state === "closing") {
      if (this.loop !== null) await this.loop;
      return;
    }
    if (this.state === "new") {
      this.state = "closed";
      this.socket.close();
      return;
    }
    this.releaseZap?.();
    this.releaseZap = null;
    this.state = "closing";
    for (const f of this.inFlight.values())
      f.controller?.abort(new CdktrError("SHUTTING_DOWN", "the server is shutting down"));
    const pending = [...this.inFlight.values()].map((f) => f.done);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(pending),
      new Promise<void>((r) => {
        timer = setTimeout(r, this.closeTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    await Promise.race([
      this.queue.drain(),
      new Promise<void>((r) => {
        timer = setTimeout(r, 500);
      }),
    ]);
    clearTimeout(timer);
    if (this.repliedWhileClosing) {
      // With `immediate` set, a DEALER drops replies it had received but not yet read when the
      // connection goes away. Give clients a moment to read the final replies.
      await new Promise<void>((r) => {
        timer = setTimeout(r, CLOSE_GRACE_MS);
      });
    }
    this.state = "closed";
    this.queue.close(new CdktrError("CLOSED", "server closed", { retryable: false }));
    // send() resolves once libzmq queued a reply, not once it left: give queued replies a
    // bounded time to be transmitted instead of discarding them (linger 0).
    this.socket.linger = 1000;
    this.socket.close();
    if (this.loop !== null) await this.loop;
    this.logger.debug("rpc server closed", { endpoint: this.bound });
  }

  private async receiveLoop(): Promise<void> {
    /** Time spent dispatching since the last turn of the event loop (waiting does not count). */
    let busy = 0;
    while (this.state === "running" || this.state === "closing") {
      if (busy >= RECEIVE_SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        busy = 0;
      }
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch (e) {
        if (this.socket.closed) break;
        this.logger.warn("rpc receive failed", { error: e });
        continue;
      }
      const started = performance.now();
      try {
        this.dispatch(frames);
      } catch (e) {
        this.logger.error("rpc dispatch failed", { error: e });
      }
      busy += performance.now() - started;
    }
  }

  /** Validate one message and start its handler (never awaits the handler). */
  private dispatch(frames: Buffer[]): void {
    const routingId = frames[0];
    if (routingId === undefined) return;
    const idFrame = frames[2];
    const echoId = idFrame !== undefined && idFrame.length <= MAX_REQUEST_ID_BYTES;
    const requestId = echoId ? frameText(idFrame) : "";
    const p: Parsed = { routingId, requestId, rawRequestId: echoId ? idFrame : "" };
    const peer = peerName(routingId);
    const fail = (code: ErrorCode, message: string): void => {
      this.logger.debug("rpc request refused", { peer, requestId, code, message });
      this.replyError(p, new CdktrError(code, message));
    };

    const proto = frameText(frames[1]);
    if (frames.length < 2 || proto !== PROTOCOL) {
      const got = frames.length < 2 ? "no frames" : JSON.stringify(proto.slice(0, 40));
      fail(
        "PROTOCOL_MISMATCH",
        `this server speaks ${PROTOCOL}; the first frame was ${got}. Use a client of protocol ${PROTOCOL} (see docs/protocol.md)`,
      );
      return;
    }
    if (frames.length !== 6) {
      if (frames.length > MANY_FRAMES) this.warnManyFrames(routingId, peer, frames.length - 1);
      fail("BAD_REQUEST", `expected 5 frames [${PROTOCOL}, requestId, deadline, verb, body], got ${frames.length - 1}`);
      return;
    }
    const size = frameBytes(frames) - routingId.length;
    if (size > this.maxMessageBytes) {
      fail(
        "MESSAGE_TOO_LARGE",
        `request of ${size} bytes exceeds the limit of ${this.maxMessageBytes} bytes; send smaller batches`,
      );
      return;
    }
    if (requestId === "") {
      fail("BAD_REQUEST", `requestId must be 1 to ${MAX_REQUEST_ID_BYTES} bytes`);
      return;
    }
    // Frames are UTF-8 text: invalid bytes are refused, never repaired into U+FFFD and executed.
    for (let i = 2; i < frames.length; i++) {
      if (!isUtf8Frame(frames[i])) {
        fail(
          "BAD_REQUEST",
          `frame ${i - 1} (${FRAME_NAMES[i] ?? "?"}) is not valid UTF-8; every frame of a request is UTF-8 text (docs/protocol.md)`,
        );
        return;
      }
    }
    const deadlineText = frameText(frames[3]);
    if (!/^\d{1,16}$/.test(deadlineText)) {
      fail(
        "BAD_REQUEST",
        `deadline must be epoch milliseconds as a decimal string ("0" = none), got ${JSON.stringify(deadlineText.slice(0, 40))}`,
      );
      return;
    }
    const deadlineNum = Number(deadlineText);
    const deadline = deadlineNum === 0 ? null : deadlineNum;
    if (deadline !== null && deadline <= Date.now()) {
      fail(
        "DEADLINE_EXCEEDED",
        `the request's deadline passed ${Date.now() - deadline} ms before it was handled; retry with a longer timeout`,
      );
      return;
    }
    const verb = frameText(frames[4]);
    const spec = Object.hasOwn(this.verbs, verb) ? this.verbs[verb] : undefined;
    if (spec === undefined) {
      fail(
        "UNKNOWN_VERB",
        `unknown verb ${JSON.stringify(verb.slice(0, 64))}; this server accepts: ${Object.keys(this.verbs).join(", ")}`,
      );
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(frameText(frames[5]));
    } catch (e) {
      fail("BAD_REQUEST", `body of ${verb} is not valid JSON (${errorMessage(e)})`);
      return;
    }
    const check = this.prechecks.get(verb);
    if (check !== undefined && !this.passesPrecheck(p, verb, json, check)) return;
    const parsed = spec.request.safeParse(json);
    if (!parsed.success) {
      fail("BAD_REQUEST", `invalid ${verb} request: ${formatZodIssues(parsed.error, "body")}`);
      return;
    }
    if (this.state !== "running") {
      fail("SHUTTING_DOWN", "the server is shutting down; retry against the restarted server");
      return;
    }
    let identity: KeyIdentity | null = null;
    if (verb === "hello") {
      this.hello(p, parsed.data);
      return;
    }
    if (this.sessions !== null) {
      const known = this.sessions.identityOf(routingId.toString("hex"));
      if (known === undefined) {
        fail("UNAUTHENTICATED", `send hello first: this connection is not bound to a key yet (${verb} refused)`);
        return;
      }
      if (!this.sessions.permits(known, verb)) {
        fail(
          "PERMISSION_DENIED",
          `key \`${known.name}\` (role ${known.role}) may not call ${verb}: use a key whose role allows it (docs/security.md)`,
        );
        return;
      }
      identity = known;
    }
    this.run(p, verb, parsed.data, { peer, requestId, deadline, identity });
  }

  /** Run `check` for a connection that may call `verb`; false when it refused (and was answered). */
  private passesPrecheck(p: Parsed, verb: string, json: unknown, check: Precheck): boolean {
    let identity: KeyIdentity | null = null;
    if (this.sessions !== null) {
      const known = this.sessions.identityOf(p.routingId.toString("hex"));
      // Not allowed to call it: the usual checks answer that, after the schema.
      if (known === undefined || !this.sessions.permits(known, verb)) return true;
      identity = known;
    }
    try {
      check(json, { peer: peerName(p.routingId), identity });
      return true;
    } catch (e) {
      this.replyError(p, toCdktrError(e));
      return false;
    }
  }

  /**
   * No socket option bounds a frame count (docs/operations.md, "Wire limits"): name the sender
   * so that an operator can revoke its key. At most one line per {@link MANY_FRAMES_WARN_MS}, with
   * the number of such messages left unlogged, so that a flood cannot fill the log.
   */
  private warnManyFrames(routingId: Buffer, peer: string, frames: number): void {
    const now = Date.now();
    if (now - this.manyFramesWarnedAt < MANY_FRAMES_WARN_MS) {
      this.manyFramesUnlogged++;
      return;
    }
    this.manyFramesWarnedAt = now;
    this.logger.warn("rpc message with an abusive number of frames refused", {
      peer,
      key: this.sessions?.identityOf(routingId.toString("hex"))?.name ?? null,
      frames,
      unloggedSinceLast: this.manyFramesUnlogged,
    });
    this.manyFramesUnlogged = 0;
  }

  /** `hello`, answered by the server itself (docs/protocol.md section 2). */
  private hello(p: Parsed, body: unknown): void {
    if (this.sessions === null) {
      this.replyOk(p, "hello", { challenge: null, identity: null });
      return;
    }
    try {
      this.replyOk(p, "hello", this.sessions.hello(p.routingId.toString("hex"), HelloRequestSchema.parse(body)));
    } catch (e) {
      this.replyError(p, toCdktrError(e));
    }
  }

  private run(p: Parsed, verb: string, body: unknown, base: Omit<RequestContext, "signal">): void {
    const connection = p.routingId.toString("hex");
    const running = this.inFlightByPeer.get(connection) ?? 0;
    if (running >= this.maxInFlightPerPeer) {
      this.replyError(
        p,
        new CdktrError(
          "RESOURCE_EXHAUSTED",
          `${running} requests of this connection are running (at most ${this.maxInFlightPerPeer}): wait for their replies before sending more`,
          { retryable: true },
        ),
      );
      return;
    }
    this.inFlightByPeer.set(connection, running + 1);
    // Most handlers never look at their signal: the AbortController and the deadline timer are
    // only created when `ctx.signal` is read (with the same meaning as if made up front).
    const flight: InFlight = { controller: null, timer: undefined, done: Promise.resolve() };
    const signal = (): AbortSignal => {
      if (flight.controller === null) {
        const controller = new AbortController();
        flight.controller = controller;
        if (this.state !== "running") {
          controller.abort(new CdktrError("SHUTTING_DOWN", "the server is shutting down"));
        } else if (base.deadline !== null) {
          const passed = (): void =>
            controller.abort(new CdktrError("DEADLINE_EXCEEDED", "the caller's deadline passed"));
          const left = base.deadline - Date.now();
          if (left <= 0) passed();
          else flight.timer = setTimeout(passed, left);
        }
      }
      return flight.controller.signal;
    };
    const key = `${++this.seq}`;
    const ctx: RequestContext = {
      peer: base.peer,
      requestId: base.requestId,
      deadline: base.deadline,
      identity: base.identity,
      get signal() {
        return signal();
      },
    };
    const handler = this.handlers.get(verb);
    this.inFlight.set(key, flight);
    const done = (async () => {
      try {
        let reply: unknown;
        if (handler !== undefined) {
          reply = await handler(body as never, ctx);
        } else if (verb === "ping") {
          const { health, problems } = this.health();
          reply = {
            principalId: this.serverId,
            version: this.version,
            time: new Date().toISOString(),
            health,
            problems,
          };
        } else {
          throw new CdktrError("UNKNOWN_VERB", `verb ${verb} is not served here (no handler registered)`, {
            retryable: false,
          });
        }
        this.replyOk(p, verb, reply);
      } catch (e) {
        const err = toCdktrError(e);
        if (err.code === "INTERNAL" && !(e instanceof CdktrError)) {
          this.logger.error(`handler of ${verb} failed`, { peer: base.peer, requestId: base.requestId, error: e });
        } else {
          this.logger.debug(`handler of ${verb} refused`, {
            requestId: base.requestId,
            code: err.code,
            message: err.message,
          });
        }
        this.replyError(p, err);
      } finally {
        clearTimeout(flight.timer);
        this.inFlight.delete(key);
        const left = (this.inFlightByPeer.get(connection) ?? 1) - 1;
        if (left > 0) this.inFlightByPeer.set(connection, left);
        else this.inFlightByPeer.delete(connection);
      }
    })();
    flight.done = done;
  }

  private replyOk(p: Parsed, verb: string, reply: unknown): void {
    let text: string;
    try {
      text = JSON.stringify(reply === undefined ? null : reply);
    } catch (e) {
      this.replyError(
        p,
        new CdktrError("INTERNAL", `internal error: reply of ${verb} is not serialisable`, { cause: e }),
      );
      return;
    }
    if (Buffer.byteLength(text) > this.maxReplyBytes) {
      this.replyError(
        p,
        new CdktrError(
          "MESSAGE_TOO_LARGE",
          `reply of ${verb} exceeds ${this.maxReplyBytes} bytes; ask for a smaller page (limit)`,
          { retryable: false },
        ),
      );
      return;
    }
    this.send(p, "ok", text);
  }

  private replyError(p: Parsed, err: CdktrError): void {
    const wire: WireError = err.toWire();
    this.send(p, "error", JSON.stringify(wire));
  }

  private send(p: Parsed, status: "ok" | "error", body: string): void {
    if (this.state === "closed") return;
    if (this.state === "closing") this.repliedWhileClosing = true;
    this.queue.push([p.routingId, PROTOCOL, p.rawRequestId, status, body]).catch((e: unknown) => {
      const code = (e as { code?: unknown }).code;
      // EHOSTUNREACH: the peer is gone (mandatory ROUTER); EAGAIN: its queue is full. Drop.
      this.logger.debug("rpc reply dropped", { peer: peerName(p.routingId), requestId: p.requestId, code, error: e });
    });
  }
}

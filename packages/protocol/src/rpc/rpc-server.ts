import { Router } from "zeromq";
import { CdktrError, UsageError, toCdktrError, type ErrorCode } from "../errors.js";
import type { ServerHealth, VerbTable } from "../messages.js";
import { noopLogger, type Logger } from "../logging/logger.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_REQUEST_ID_BYTES,
  formatZodIssues,
  frameText,
  peerName,
  serverFrameLimit,
} from "./frames.js";
import type { Handler, Precheck, RequestContext } from "./handler.js";
import { InFlightRequests, refusalError } from "./in-flight.js";
import { MANY_FRAMES, ManyFramesWarning } from "./many-frames-warning.js";
import { Replies, type ReplyTarget } from "./replies.js";
import { checkRequestFrames } from "./request-check.js";
import { SendQueue } from "./send-queue.js";
import { bindOrExplain } from "./bind.js";
import { settleWithin } from "../util/settle-within.js";
import { packageVersion } from "../util/package-version.js";
import type { KeyIdentity } from "../security/identity.js";
import { HelloRequestSchema } from "../messages.js";
import { ServerSessions, type ServerAuth } from "../security/server-sessions.js";
import { registerZapDomain } from "../security/zap.js";

const PROTOCOL_PACKAGE_VERSION = packageVersion(import.meta.url);

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
  /**
   * Requests one key may have running at once over all its connections (with `auth`); one more
   * is answered at once with a retryable `RESOURCE_EXHAUSTED` (more connections buy no more).
   * @default 5000
   */
  maxInFlightPerKey?: number | undefined;
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
  /**
   * With `auth`: the ZAP domain of this socket, registered by another thread of this process
   * ({@link registerZapDomain}; ZeroMQ's context, hence its one ZAP handler, is shared by every
   * thread). Absent: the server registers its own domain when it binds.
   */
  zapDomain?: string | undefined;
}

/** Default of {@link RpcServerOptions.maxInFlightPerPeer}. */
export const DEFAULT_MAX_IN_FLIGHT_PER_PEER = 1000;
/** Default of {@link RpcServerOptions.maxInFlightPerKey}. */
export const DEFAULT_MAX_IN_FLIGHT_PER_KEY = 5000;

/**
 * Longest the receive loop dispatches queued requests before it lets the event loop run: zeromq.js
 * resolves a receive synchronously while messages are queued (up to 512 in a row), and a 2,000-line
 * log batch takes milliseconds to parse, so a flood on one socket would hold up every other socket.
 */
const RECEIVE_SLICE_MS = 1;

/** Pause before closing the socket when replies were sent during `close()`. */
const CLOSE_GRACE_MS = 100;

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
  private readonly inFlight: InFlightRequests;
  private readonly verbs: T;
  private readonly maxMessageBytes: number;
  private readonly replies: Replies;
  private readonly logger: Logger;
  private readonly serverId: string;
  private readonly version: string;
  private readonly closeTimeoutMs: number;
  private readonly health: () => ServerHealth;
  private readonly requestedEndpoint: string;
  private bound: string | null = null;
  private state: "new" | "running" | "closing" | "closed" = "new";
  private loop: Promise<void> | null = null;
  /** The {@link bind} in progress or done: {@link close} lets it settle first. */
  private binding: Promise<string> | null = null;
  private readonly sessions: ServerSessions | null;
  private releaseZap: (() => void) | null = null;
  private readonly manyFrames: ManyFramesWarning;

  constructor(opts: RpcServerOptions<T>) {
    this.verbs = opts.verbs;
    this.requestedEndpoint = opts.endpoint;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.inFlight = new InFlightRequests(
      Math.max(1, opts.maxInFlightPerPeer ?? DEFAULT_MAX_IN_FLIGHT_PER_PEER),
      Math.max(1, opts.maxInFlightPerKey ?? DEFAULT_MAX_IN_FLIGHT_PER_KEY),
      () => this.state !== "running",
    );
    this.logger = opts.logger ?? noopLogger;
    this.manyFrames = new ManyFramesWarning(this.logger);
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
    this.replies = new Replies(this.queue, opts.maxReplyBytes ?? 32 * 1024 * 1024, this.logger, () => this.state);
    this.sessions = opts.auth === undefined ? null : new ServerSessions(opts.auth);
    if (opts.auth !== undefined) {
      this.socket.curveServer = true;
      this.socket.curvePublicKey = opts.auth.keyPair.publicKey;
      this.socket.curveSecretKey = opts.auth.keyPair.secretKey;
      this.socket.zapEnforceDomain = true;
    }
    this.admit = opts.auth === undefined ? null : (key: string) => opts.auth?.identify(key) !== undefined;
    this.zapDomain = opts.zapDomain ?? null;
  }

  private readonly zapDomain: string | null;

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
  bind(): Promise<string> {
    if (this.state !== "new" || this.binding !== null) {
      return Promise.reject(new UsageError("INVALID_STATE", "RpcServer.bind: already bound or closed"));
    }
    this.binding = this.bindOnce();
    return this.binding;
  }

  private async bindOnce(): Promise<string> {
    const ep = this.requestedEndpoint.replace(/:0$/, ":*");
    if (this.admit !== null && this.zapDomain !== null) this.socket.zapDomain = this.zapDomain;
    else if (this.admit !== null) {
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
    // Closing a zeromq.js socket while its bind is still running can leave the port bound and
    // the process unable to exit: let the bind settle first.
    if (this.state === "new") await this.binding?.catch(() => undefined);
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
    this.inFlight.abortAll(new CdktrError("SHUTTING_DOWN", "the server is shutting down"));
    await settleWithin(Promise.allSettled(this.inFlight.pending()), this.closeTimeoutMs);
    await settleWithin(this.queue.drain(), 500);
    if (this.replies.repliedWhileClosing) {
      // With `immediate` set, a DEALER drops replies it had received but not yet read when the
      // connection goes away. Give clients a moment to read the final replies.
      await new Promise<void>((r) => setTimeout(r, CLOSE_GRACE_MS));
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
    const p: ReplyTarget = { routingId, requestId, rawRequestId: echoId ? idFrame : "" };
    const peer = peerName(routingId);
    const fail = (code: ErrorCode, message: string): void => {
      this.logger.debug("rpc request refused", { peer, requestId, code, message });
      this.replies.error(p, new CdktrError(code, message));
    };

    const checked = checkRequestFrames(frames, routingId, requestId, this.verbs, this.maxMessageBytes);
    if (!checked.ok) {
      const frameCount = checked.wrongFrameCount ?? 0;
      if (frameCount > MANY_FRAMES) {
        const key = (): string | null => this.sessions?.identityOf(routingId.toString("hex"))?.name ?? null;
        this.manyFrames.note(peer, key, frameCount);
      }
      fail(checked.code, checked.message);
      return;
    }
    const { verb, deadline, json } = checked;
    const spec = this.verbs[verb] as T[string];
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
  private passesPrecheck(p: ReplyTarget, verb: string, json: unknown, check: Precheck): boolean {
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
      this.replies.error(p, toCdktrError(e));
      return false;
    }
  }

  /** `hello`, answered by the server itself (docs/protocol.md section 2). */
  private hello(p: ReplyTarget, body: unknown): void {
    if (this.sessions === null) {
      this.replies.ok(p, "hello", { challenge: null, identity: null });
      return;
    }
    try {
      this.replies.ok(p, "hello", this.sessions.hello(p.routingId.toString("hex"), HelloRequestSchema.parse(body)));
    } catch (e) {
      this.replies.error(p, toCdktrError(e));
    }
  }

  private run(p: ReplyTarget, verb: string, body: unknown, base: Omit<RequestContext, "signal">): void {
    const connection = p.routingId.toString("hex");
    const flight = this.inFlight.begin(connection, base.identity?.name ?? null, base.deadline);
    if ("bound" in flight) {
      this.replies.error(p, refusalError(flight, base.identity?.name ?? null));
      return;
    }
    const ctx: RequestContext = {
      peer: base.peer,
      requestId: base.requestId,
      deadline: base.deadline,
      identity: base.identity,
      get signal() {
        return flight.signal();
      },
    };
    const handler = this.handlers.get(verb);
    flight.done = (async () => {
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
        this.replies.ok(p, verb, reply);
      } catch (e) {
        this.replies.thrown(p, verb, base.peer, e);
      } finally {
        flight.end();
      }
    })();
  }
}

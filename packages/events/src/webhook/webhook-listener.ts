/**
 * A webhook event listener on node:http: `POST /trigger/<workflowId>` triggers a run, and so does
 * a POST to each configured route (GitHub, GitLab, generic HMAC or cdktr-signed).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { WorkflowIdSchema, errorMessage, type Logger, type Params } from "@cdktr/protocol";
import { BodyTooLarge, ReplayCacheError } from "../errors.js";
import { EventListener, type EventListenerOptions, type TriggerResult } from "../listener/event-listener.js";
import { ReplayCache, replayCacheDirName } from "./replay-cache.js";
import {
  DEFAULT_SIGNATURE_TOLERANCE_MS,
  IDEMPOTENCY_KEY_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  verifyWebhookSignature,
  webhookTriggerPath,
} from "./signature.js";
import { deferred, errorBody, header, parseParams, readBody, refuseTooLarge, send, type Reply } from "./http-io.js";
import { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";
import { GITHUB_EVENT_HEADER } from "./route-signature.js";
import {
  compileWebhookRoutes,
  routeKey,
  verifyRouteRequest,
  webhookEvent,
  type CompiledRoute,
  type RouteKey,
  type WebhookRoute,
} from "./webhook-route.js";

/** Options of {@link WebhookListener}. */
export interface WebhookListenerOptions extends EventListenerOptions {
  /** Interface to bind. @default "127.0.0.1" */
  host?: string;
  /** TCP port; 0 picks a free one (see {@link WebhookListener.address}). @default 8080 */
  port?: number;
  /**
   * Shared secret. When set, every trigger must carry `X-Cdktr-Timestamp` (Unix seconds) and
   * `X-Cdktr-Signature: v2=<hex HMAC-SHA256 of "v2\n<timestamp>\n<METHOD>\n<path>\n<Idempotency-Key>\n<raw body>">`
   * (see {@link signWebhookRequest}), and a signature is accepted once.
   */
  secret?: string;
  /** Largest accepted distance between the signed timestamp and now. @default 300000 */
  signatureToleranceMs?: number;
  /**
   * Directory of the replay cache (signatures accepted within the tolerance window), kept so that
   * a captured request cannot be replayed after a restart. The cache is the subdirectory
   * `webhook-replay-<id>`, `id` derived from the secret: listeners sharing a secret share it.
   * @default `~/.cdktr/listeners` (HOME from `env`)
   */
  stateDir?: string;
  /**
   * `"file"` keeps the replay cache in {@link stateDir} (it survives restarts); `"memory"` keeps it
   * in this process only (a restart forgets it: for tests and throw-away listeners). @default "file"
   */
  replayCache?: "file" | "memory";
  /**
   * Most signatures remembered at once (those of the last tolerance window); past it signed
   * requests get 503 until older ones expire. @default 100000
   */
  maxReplayEntries?: number;
  /** Largest accepted body; larger requests get 413 and are not read further. @default 1048576 */
  maxBodyBytes?: number;
  /** Deadline of the run request to the principal; past it the caller gets 503. @default 3000 */
  triggerTimeoutMs?: number;
  /** Value of `Retry-After` (seconds) on 503 replies. @default 5 */
  retryAfterS?: number;
  /**
   * When set, only these workflow ids can be triggered (others get 404); every route's workflow
   * must be one of them.
   */
  workflows?: readonly string[];
  /**
   * Routes: paths that each trigger one workflow, authenticated as their sender can (GitHub,
   * GitLab, a generic HMAC, cdktr's signature), the request mapped into the run's params. See
   * {@link WebhookRoute}; docs/listeners.md, "Routes".
   * @throws UsageError (from the constructor) listing every invalid route
   */
  routes?: readonly WebhookRoute[];
  /**
   * Serve `POST /trigger/<workflowId>`. Set false to serve only the routes (and `/healthz`), e.g.
   * when the listener is reachable from the internet for GitHub and has no `secret`. @default true
   */
  triggerPath?: boolean;
  /** Clock for signature timestamps (epoch ms). @default Date.now */
  now?: () => number;
}

/** Where a started {@link WebhookListener} listens. */
export interface WebhookAddress {
  host: string;
  port: number;
  /** e.g. `http://127.0.0.1:8080` */
  url: string;
}

const TRIGGER_PREFIX = "/trigger/";
const MAX_KEY_LENGTH = 256;

/** A request that passed (or needed no) cdktr signature check, and the signature to release if it triggers nothing. */
type CdktrCheck = { ok: true; spent: { cache: ReplayCache; signature: string } | null } | { ok: false; reply: Reply };

/**
 * Receives HTTP webhooks and triggers workflows.
 *
 * - `POST /trigger/<workflowId>` with an optional JSON object body of run params and an optional
 *   `Idempotency-Key` header (the same key always maps to the same run). Replies 202
 *   `{status: "triggered", workflow, runId, duplicate, skipped}`.
 * - 400 malformed body or invalid params, 401 missing/bad/stale/replayed signature (when a
 *   secret is set), 404 unknown workflow or path, 405 wrong method, 409 idempotency key reused
 *   with other params, 413 body too large, 503 (with `Retry-After`) when the principal does not
 *   answer within `triggerTimeoutMs` or the replay cache cannot record the signature (full disk).
 * - With a secret, the signature covers method, path, idempotency key, timestamp and body, and
 *   each one is accepted once: the replay cache in `stateDir` remembers them across restarts.
 * - `GET /healthz` answers `{status: "ok"}`.
 * - Each of the `routes` (`POST <path>`) checks its flavour's signature on the raw body (401),
 *   builds the request's event document `{body, headers, query, path, method}`, answers 202
 *   `{status: "ignored", reason}` without a run when the route's `when` filter is false, 422
 *   `UNMAPPED_EVENT` when a mapped param finds nothing, else triggers its workflow like
 *   `/trigger` (same replies). GitHub's `ping` event gets 200 `{status: "pong"}`.
 *
 * Every reply is JSON; errors are `{status: "error", code, message}`.
 */
export class WebhookListener extends EventListener {
  readonly #host: string;
  readonly #port: number;
  readonly #secret: string | undefined;
  readonly #tolerance: number;
  readonly #maxBody: number;
  readonly #triggerTimeout: number;
  readonly #retryAfter: number;
  readonly #allow: ReadonlySet<string> | null;
  readonly #now: () => number;
  readonly #stateDir: string;
  readonly #replayMode: "file" | "memory";
  readonly #maxReplayEntries: number;
  readonly #routes: ReadonlyMap<string, CompiledRoute>;
  readonly #triggerPath: boolean;
  /**
   * Per cdktr secret (the listener's, and those of `cdktr` routes): the signatures that already
   * triggered a run (or are in flight). Open while listening.
   */
  #replays = new Map<string, ReplayCache>();
  #address: WebhookAddress | null = null;
  #listening: { promise: Promise<WebhookAddress>; resolve: (a: WebhookAddress) => void; reject: (e: unknown) => void };

  constructor(options: WebhookListenerOptions = {}) {
    super({ ...options, source: options.source ?? "webhook" });
    this.#host = options.host ?? "127.0.0.1";
    this.#port = options.port ?? 8080;
    this.#secret = options.secret !== undefined && options.secret !== "" ? options.secret : undefined;
    this.#tolerance = options.signatureToleranceMs ?? DEFAULT_SIGNATURE_TOLERANCE_MS;
    this.#maxBody = options.maxBodyBytes ?? 1024 * 1024;
    this.#triggerTimeout = options.triggerTimeoutMs ?? 3000;
    this.#retryAfter = options.retryAfterS ?? 5;
    this.#allow = options.workflows !== undefined ? new Set(options.workflows) : null;
    this.#now = options.now ?? Date.now;
    this.#stateDir = options.stateDir ?? join(this.env.HOME ?? homedir(), ".cdktr", "listeners");
    this.#replayMode = options.replayCache ?? "file";
    this.#maxReplayEntries = options.maxReplayEntries ?? 100_000;
    this.#routes = compileWebhookRoutes(options.routes ?? [], { listenerSecret: this.#secret, allow: this.#allow });
    this.#triggerPath = options.triggerPath ?? true;
    this.#listening = deferred<WebhookAddress>();
  }

  /** The bound address once listening, else null. */
  get address(): WebhookAddress | null {
    return this.#address;
  }

  /**
   * Resolves with the bound address once the server listens (after `start()`); rejects when
   * binding fails (e.g. the port is taken).
   */
  listening(): Promise<WebhookAddress> {
    return this.#listening.promise;
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((e: unknown) => {
        this.logger.error("webhook handler failed", { error: errorMessage(e) });
        if (!res.headersSent)
          send(res, {
            status: 500,
            body: errorBody("INTERNAL", "internal error in the webhook listener; see its logs"),
          });
        else res.destroy();
      });
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    try {
      for (const secret of this.#cdktrSecrets()) {
        this.#replays.set(
          secret,
          await ReplayCache.open({
            dir: this.#replayMode === "memory" ? null : join(this.#stateDir, replayCacheDirName(secret)),
            toleranceMs: this.#tolerance,
            maxEntries: this.#maxReplayEntries,
            now: this.#now,
            logger: this.logger,
          }),
        );
      }
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.#port, this.#host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      this.#closeReplays();
      this.#listening.reject(e);
      this.#listening = deferred<WebhookAddress>();
      throw e;
    }
    const addr = server.address() as AddressInfo;
    const hostForUrl = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    this.#address = { host: addr.address, port: addr.port, url: `http://${hostForUrl}:${addr.port}` };
    this.#listening.resolve(this.#address);
    const replay = this.#secret !== undefined ? this.#replays.get(this.#secret) : undefined;
    this.logger.info("webhook listening", {
      url: this.#address.url,
      signed: this.#secret !== undefined,
      ...(replay !== undefined ? { replayCache: replay.dir ?? "memory" } : {}),
      ...(this.#routes.size > 0
        ? {
            routes: [...this.#routes.values()].map((r) => ({
              path: r.path,
              flavour: r.flavour,
              workflow: r.workflow,
              signed: r.secret !== undefined,
            })),
            triggerPath: this.#triggerPath,
          }
        : {}),
    });
    if (this.#triggerPath && this.#secret === undefined && this.#routes.size > 0)
      this.logger.warn(
        `webhook: POST /trigger/<workflowId> is served unsigned next to the routes: whoever reaches this port can trigger ${this.#allow === null ? "any workflow" : "the workflows of `workflows`"} with any params; set a secret, or triggerPath false (trigger_path: false in the listeners file)`,
      );
    for (const r of this.#routes.values())
      if (r.secret === undefined)
        this.logger.warn(
          `webhook: route ${r.path} (flavour cdktr) is unsigned: whoever reaches this port can trigger ${r.workflow}; give the route or the listener a secret`,
        );
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      // In-flight requests get a moment to finish; then every connection is cut.
      setTimeout(() => server.closeAllConnections(), 2000).unref();
    });
    this.#closeReplays();
    this.#address = null;
    this.#listening = deferred<WebhookAddress>();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/healthz") {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return send(res, {
          status: 405,
          headers: { allow: "GET" },
          body: errorBody("METHOD_NOT_ALLOWED", "use GET /healthz"),
        });
      }
      return send(res, { status: 200, body: { status: "ok" } });
    }
    const route = this.#routes.get(url.pathname);
    if (route !== undefined) return this.#handleRoute(route, req, res, url);
    if (!this.#triggerPath || !url.pathname.startsWith(TRIGGER_PREFIX)) {
      this.rejectEvent("not_found", `no route ${url.pathname}`);
      return send(res, {
        status: 404,
        body: errorBody("NOT_FOUND", `no route ${url.pathname}: ${this.#pathsHint()}`),
      });
    }
    if (req.method !== "POST") {
      this.rejectEvent("method", `${req.method ?? "?"} instead of POST`);
      return send(res, {
        status: 405,
        headers: { allow: "POST" },
        body: errorBody("METHOD_NOT_ALLOWED", "use POST /trigger/<workflowId>"),
      });
    }
    let workflowId: string;
    try {
      workflowId = decodeURIComponent(url.pathname.slice(TRIGGER_PREFIX.length));
    } catch {
      this.rejectEvent("not_found", "the workflow id in the path is not valid percent-encoding");
      return send(res, {
        status: 404,
        body: errorBody("WORKFLOW_NOT_FOUND", "the workflow id in the path is not valid percent-encoding"),
      });
    }
    const log = this.logger.child({ workflowId });
    if (!WorkflowIdSchema.safeParse(workflowId).success || (this.#allow !== null && !this.#allow.has(workflowId))) {
      log.warn("webhook refused: unknown workflow", { status: 404 });
      this.rejectEvent("not_found", `no workflow ${JSON.stringify(workflowId)} can be triggered here`);
      return send(res, {
        status: 404,
        body: errorBody("WORKFLOW_NOT_FOUND", `no workflow ${JSON.stringify(workflowId)} can be triggered here`),
      });
    }

    const raw = await this.#readBody(req, res, log);
    if (raw === null) return;

    const key = header(req, IDEMPOTENCY_KEY_HEADER);
    let spent: { cache: ReplayCache; signature: string } | null = null;
    if (this.#secret !== undefined) {
      const check = await this.#checkCdktrSignature(req, raw, this.#secret, webhookTriggerPath(workflowId), key, log);
      if (!check.ok) return send(res, check.reply);
      spent = check.spent;
    }

    let accepted = false;
    try {
      const params = parseParams(raw);
      if (!params.ok) {
        log.warn("webhook refused: malformed body", { status: 400 });
        this.rejectEvent("malformed", params.error);
        return send(res, { status: 400, body: errorBody("BAD_REQUEST", params.error) });
      }
      if (key !== undefined && (key.length === 0 || key.length > MAX_KEY_LENGTH)) {
        this.rejectEvent("malformed", `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters`);
        return send(res, {
          status: 400,
          body: errorBody("BAD_REQUEST", `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters`),
        });
      }
      const result = await this.runWorkflow(workflowId, {
        ...(params.params !== undefined ? { params: params.params } : {}),
        ...(key !== undefined ? { idempotencyKey: `webhook:${key}` } : {}),
        retry: false,
        timeoutMs: this.#triggerTimeout,
      });
      const reply = this.#replyFor(workflowId, result);
      accepted = reply.status === 202;
      this.#logTrigger(log, result, reply);
      return send(res, reply);
    } finally {
      // A signature is spent only once it triggered something; a 503 may be retried as is.
      if (spent !== null && !accepted) await spent.cache.release(spent.signature);
    }
  }

  /** What the 404 of an unknown path suggests. */
  #pathsHint(): string {
    if (this.#routes.size === 0) return "use POST /trigger/<workflowId> or GET /healthz";
    return this.#triggerPath
      ? "use POST /trigger/<workflowId>, POST to one of this listener's routes, or GET /healthz"
      : "use POST to one of this listener's routes, or GET /healthz";
  }

  /** The whole body, or null once a 413 has been sent (too large, announced or streamed). */
  async #readBody(req: IncomingMessage, res: ServerResponse, log: Logger): Promise<Buffer | null> {
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > this.#maxBody) {
      log.warn("webhook refused: body too large", { status: 413, contentLength: declared });
      this.rejectEvent("too_large", `a body of ${declared} bytes, more than ${this.#maxBody}`);
      refuseTooLarge(req, res, this.#maxBody);
      return null;
    }
    try {
      return await readBody(req, this.#maxBody);
    } catch (e) {
      if (e instanceof BodyTooLarge) {
        log.warn("webhook refused: body too large", { status: 413 });
        this.rejectEvent("too_large", `a body of more than ${this.#maxBody} bytes`);
        refuseTooLarge(req, res, this.#maxBody);
        return null;
      }
      throw e;
    }
  }

  /**
   * cdktr's own signature (`X-Cdktr-Signature` v2 over `path`) with `secret`, and its claim in
   * that secret's replay cache: a refusal is the reply to send (401, or 503 when the cache cannot
   * record it).
   */
  async #checkCdktrSignature(
    req: IncomingMessage,
    raw: Buffer,
    secret: string,
    path: string,
    key: string | undefined,
    log: Logger,
  ): Promise<CdktrCheck> {
    const replay = this.#replays.get(secret);
    if (replay === undefined) {
      this.rejectEvent("unrecordable", "the replay cache is closed");
      return { ok: false, reply: this.#unrecordable() };
    }
    const check = verifyWebhookSignature({
      secret,
      timestamp: header(req, TIMESTAMP_HEADER),
      signature: header(req, SIGNATURE_HEADER),
      method: req.method ?? "POST",
      path,
      idempotencyKey: key,
      rawBody: raw,
      nowMs: this.#now(),
      toleranceMs: this.#tolerance,
    });
    if (!check.ok) {
      log.warn("webhook refused: signature", { status: 401, reason: check.reason });
      this.rejectEvent("signature", check.message);
      return { ok: false, reply: { status: 401, body: errorBody("UNAUTHORIZED", check.message) } };
    }
    const lostAt = replay.lostAtMs;
    if (lostAt !== null && check.timestampMs < Math.floor(lostAt / 1000) * 1000) {
      log.warn("webhook refused: signed before a start that lost the replay cache", {
        status: 401,
        reason: "replay_cache_lost",
      });
      this.rejectEvent("signature", "signed before a start that lost the replay cache");
      return {
        ok: false,
        reply: {
          status: 401,
          body: errorBody(
            "UNAUTHORIZED",
            "this request was signed before the listener restarted, and its replay cache was damaged: sign it again (a new timestamp)",
          ),
        },
      };
    }
    let fresh: boolean;
    try {
      fresh = await replay.claim(check.signature, check.timestampMs + this.#tolerance);
    } catch (e) {
      if (!(e instanceof ReplayCacheError)) throw e;
      // The details (a path, an errno) go to the log, not to the caller.
      log.error("webhook refused: the replay cache cannot record the signature", {
        status: 503,
        error: e.message,
      });
      this.rejectEvent("unrecordable", "the replay cache cannot record the signature");
      return { ok: false, reply: this.#unrecordable() };
    }
    if (!fresh) {
      log.warn("webhook refused: replayed signature", { status: 401, reason: "replayed" });
      this.rejectEvent("replayed", "this signature was already used");
      return {
        ok: false,
        reply: {
          status: 401,
          body: errorBody(
            "UNAUTHORIZED",
            "this signature was already used: sign every request afresh (a new timestamp), and send an Idempotency-Key to make retries safe",
          ),
        },
      };
    }
    return { ok: true, spent: { cache: replay, signature: check.signature } };
  }

  /** `POST <route.path>`: signature, then ping, filter, mapping, key, trigger. */
  async #handleRoute(route: CompiledRoute, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const log = this.logger.child({ route: route.path, workflowId: route.workflow });
    if (req.method !== "POST") {
      this.rejectEvent("method", `${req.method ?? "?"} instead of POST`);
      return send(res, {
        status: 405,
        headers: { allow: "POST" },
        body: errorBody("METHOD_NOT_ALLOWED", `use POST ${route.path}`),
      });
    }
    const raw = await this.#readBody(req, res, log);
    if (raw === null) return;

    // The signature is checked on the raw bytes, before anything parses them.
    let spent: { cache: ReplayCache; signature: string } | null = null;
    if (route.flavour === "cdktr") {
      if (route.secret !== undefined) {
        const check = await this.#checkCdktrSignature(
          req,
          raw,
          route.secret,
          route.path,
          header(req, IDEMPOTENCY_KEY_HEADER),
          log,
        );
        if (!check.ok) return send(res, check.reply);
        spent = check.spent;
      }
    } else {
      const check = verifyRouteRequest(route, req, raw);
      if (!check.ok) {
        log.warn("webhook refused: signature", { status: 401, flavour: route.flavour, reason: check.reason });
        this.rejectEvent("signature", check.message);
        return send(res, { status: 401, body: errorBody("UNAUTHORIZED", check.message) });
      }
    }

    let accepted = false;
    try {
      const reply = await this.#routeReply(route, req, url, raw, log);
      accepted = reply.status >= 200 && reply.status < 300;
      return send(res, reply);
    } finally {
      if (spent !== null && !accepted) await spent.cache.release(spent.signature);
    }
  }

  /** The reply to an authenticated request of `route`, after triggering its run when it maps to one. */
  async #routeReply(route: CompiledRoute, req: IncomingMessage, url: URL, raw: Buffer, log: Logger): Promise<Reply> {
    const where = { route: route.path, workflow: route.workflow };
    if (route.flavour === "github" && header(req, GITHUB_EVENT_HEADER) === "ping") {
      log.info("webhook: GitHub ping answered, nothing triggered");
      return { status: 200, body: { status: "pong", ...where } };
    }
    const event = webhookEvent(req, url, raw, route.flavour);
    if (route.mapping !== null && !route.mapping.matches(event)) {
      const reason = `the request does not match this route's \`when\` filter: ${route.when ?? ""}`;
      log.debug("webhook request ignored: the route's `when` filter is false");
      this.rejectEvent("filtered", reason);
      return { status: 202, body: { status: "ignored", ...where, reason } };
    }
    let params: Params | undefined;
    let mappedKey: string | undefined;
    if (route.mapping !== null) {
      const mapped = route.mapping.map(event);
      if (!mapped.ok) {
        log.warn("webhook refused: the request does not map into the run", { status: 422, error: mapped.error });
        this.rejectEvent("unmapped", mapped.error);
        return { status: 422, body: errorBody("UNMAPPED_EVENT", `route ${route.path}: ${mapped.error}`) };
      }
      params = Object.keys(mapped.params).length > 0 ? mapped.params : undefined;
      mappedKey = mapped.idempotencyKey;
    }
    const key = routeKey(route.flavour, event.headers, mappedKey);
    if (key?.from === "Idempotency-Key" && (key.id.length === 0 || key.id.length > MAX_KEY_LENGTH)) {
      this.rejectEvent("malformed", `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters`);
      return {
        status: 400,
        body: errorBody("BAD_REQUEST", `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters`),
      };
    }
    if (key === undefined && route.requireKey) {
      const message = `route ${route.path} requires an idempotency key: ${keySources(route)}`;
      log.warn("webhook refused: no idempotency key", { status: 400 });
      this.rejectEvent("no_key", message);
      return { status: 400, body: errorBody("BAD_REQUEST", message) };
    }
    const result = await this.runWorkflow(route.workflow, {
      ...(params !== undefined ? { params } : {}),
      ...(key !== undefined ? { idempotencyKey: routeIdempotencyKey(route, key) } : {}),
      retry: false,
      timeoutMs: this.#triggerTimeout,
    });
    const reply = this.#replyFor(route.workflow, result);
    this.#logTrigger(log, result, reply);
    return reply;
  }

  #logTrigger(log: Logger, result: TriggerResult, reply: Reply): void {
    if (reply.status === 202) log.info("webhook triggered", { runId: result.runId, duplicate: result.duplicate });
    else
      log.warn("webhook trigger refused", {
        status: reply.status,
        code: result.error?.code,
        error: result.error?.message,
      });
  }

  /** The cdktr secrets whose replay caches are opened: the listener's and those of `cdktr` routes. */
  #cdktrSecrets(): Set<string> {
    const secrets = new Set<string>();
    if (this.#secret !== undefined) secrets.add(this.#secret);
    for (const r of this.#routes.values()) if (r.flavour === "cdktr" && r.secret !== undefined) secrets.add(r.secret);
    return secrets;
  }

  #closeReplays(): void {
    for (const cache of this.#replays.values()) cache.close();
    this.#replays.clear();
  }

  /** 503: a signature that could not be remembered across a restart is never acted on. */
  #unrecordable(): Reply {
    return {
      status: 503,
      headers: { "retry-after": String(this.#retryAfter) },
      body: errorBody(
        "UNAVAILABLE",
        `the webhook listener cannot record this signature in its replay cache (full, or its disk cannot be written); nothing was triggered, retry in ${this.#retryAfter} s`,
      ),
    };
  }

  #replyFor(workflowId: string, result: TriggerResult): Reply {
    if (result.success) {
      return {
        status: 202,
        body: {
          status: "triggered",
          workflow: workflowId,
          runId: result.runId,
          duplicate: result.duplicate,
          skipped: result.skipped,
        },
      };
    }
    const code = result.error?.code ?? "INTERNAL";
    const message = result.error?.message ?? "the principal refused the run";
    switch (code) {
      case "WORKFLOW_NOT_FOUND":
        return { status: 404, body: errorBody(code, message) };
      case "INVALID_PARAMS":
      case "BAD_REQUEST":
        return { status: 400, body: errorBody(code, message) };
      case "IDEMPOTENCY_CONFLICT":
        return { status: 409, body: errorBody(code, message) };
      case "TIMEOUT":
      case "UNAVAILABLE":
      case "SHUTTING_DOWN":
      case "DEADLINE_EXCEEDED":
      case "CLOSED":
        return {
          status: 503,
          headers: { "retry-after": String(this.#retryAfter) },
          body: errorBody(
            "UNAVAILABLE",
            `the cdktr principal is unavailable (${code}: ${message}); nothing was triggered, retry in ${this.#retryAfter} s`,
          ),
        };
      default:
        return {
          status: result.error?.retryable === true ? 503 : 500,
          headers: { "retry-after": String(this.#retryAfter) },
          body: errorBody(code, message),
        };
    }
  }
}

/** The run's idempotency key of a route request: `<flavour>:<path>:<id>` (hashed when too long). */
function routeIdempotencyKey(route: CompiledRoute, key: RouteKey): string {
  return scopedIdempotencyKey(`${route.flavour}:${route.path}:`, key.id);
}

/** Where a route's idempotency key can come from, for the `require_idempotency_key` refusal. */
function keySources(route: CompiledRoute): string {
  const headers =
    route.flavour === "github"
      ? "X-GitHub-Delivery (GitHub sends it) or Idempotency-Key"
      : route.flavour === "gitlab"
        ? "Idempotency-Key or X-Gitlab-Event-UUID (GitLab sends them)"
        : "Idempotency-Key";
  return `send the header ${headers}, or give the route an idempotency_key expression`;
}

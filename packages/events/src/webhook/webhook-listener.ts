/**
 * A webhook event listener on node:http: `POST /trigger/<workflowId>` triggers a run.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { WorkflowIdSchema, errorMessage } from "@cdktr/protocol";
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
  /** When set, only these workflow ids can be triggered (others get 404). */
  workflows?: readonly string[];
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
  /** Signatures that already triggered a run (or are in flight); open while listening with a secret. */
  #replay: ReplayCache | null = null;
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
      if (this.#secret !== undefined) {
        this.#replay = await ReplayCache.open({
          dir: this.#replayMode === "memory" ? null : join(this.#stateDir, replayCacheDirName(this.#secret)),
          toleranceMs: this.#tolerance,
          maxEntries: this.#maxReplayEntries,
          now: this.#now,
          logger: this.logger,
        });
      }
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.#port, this.#host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      this.#replay?.close();
      this.#replay = null;
      this.#listening.reject(e);
      this.#listening = deferred<WebhookAddress>();
      throw e;
    }
    const addr = server.address() as AddressInfo;
    const hostForUrl = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    this.#address = { host: addr.address, port: addr.port, url: `http://${hostForUrl}:${addr.port}` };
    this.#listening.resolve(this.#address);
    this.logger.info("webhook listening", {
      url: this.#address.url,
      signed: this.#secret !== undefined,
      ...(this.#replay !== null ? { replayCache: this.#replay.dir ?? "memory" } : {}),
    });
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
    this.#replay?.close();
    this.#replay = null;
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
    if (!url.pathname.startsWith(TRIGGER_PREFIX)) {
      this.rejectEvent("not_found", `no route ${url.pathname}`);
      return send(res, {
        status: 404,
        body: errorBody("NOT_FOUND", `no route ${url.pathname}: use POST /trigger/<workflowId> or GET /healthz`),
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

    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > this.#maxBody) {
      log.warn("webhook refused: body too large", { status: 413, contentLength: declared });
      this.rejectEvent("too_large", `a body of ${declared} bytes, more than ${this.#maxBody}`);
      return refuseTooLarge(req, res, this.#maxBody);
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, this.#maxBody);
    } catch (e) {
      if (e instanceof BodyTooLarge) {
        log.warn("webhook refused: body too large", { status: 413 });
        this.rejectEvent("too_large", `a body of more than ${this.#maxBody} bytes`);
        return refuseTooLarge(req, res, this.#maxBody);
      }
      throw e;
    }

    const key = header(req, IDEMPOTENCY_KEY_HEADER);
    let signature: string | null = null;
    const replay = this.#replay;
    if (this.#secret !== undefined) {
      if (replay === null) {
        this.rejectEvent("unrecordable", "the replay cache is closed");
        return send(res, this.#unrecordable());
      }
      const check = verifyWebhookSignature({
        secret: this.#secret,
        timestamp: header(req, TIMESTAMP_HEADER),
        signature: header(req, SIGNATURE_HEADER),
        method: req.method ?? "POST",
        path: webhookTriggerPath(workflowId),
        idempotencyKey: key,
        rawBody: raw,
        nowMs: this.#now(),
        toleranceMs: this.#tolerance,
      });
      if (!check.ok) {
        log.warn("webhook refused: signature", { status: 401, reason: check.reason });
        this.rejectEvent("signature", check.message);
        return send(res, { status: 401, body: errorBody("UNAUTHORIZED", check.message) });
      }
      const lostAt = replay.lostAtMs;
      if (lostAt !== null && check.timestampMs < Math.floor(lostAt / 1000) * 1000) {
        log.warn("webhook refused: signed before a start that lost the replay cache", {
          status: 401,
          reason: "replay_cache_lost",
        });
        this.rejectEvent("signature", "signed before a start that lost the replay cache");
        return send(res, {
          status: 401,
          body: errorBody(
            "UNAUTHORIZED",
            "this request was signed before the listener restarted, and its replay cache was damaged: sign it again (a new timestamp)",
          ),
        });
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
        return send(res, this.#unrecordable());
      }
      if (!fresh) {
        log.warn("webhook refused: replayed signature", { status: 401, reason: "replayed" });
        this.rejectEvent("replayed", "this signature was already used");
        return send(res, {
          status: 401,
          body: errorBody(
            "UNAUTHORIZED",
            "this signature was already used: sign every request afresh (a new timestamp), and send an Idempotency-Key to make retries safe",
          ),
        });
      }
      signature = check.signature;
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
      if (accepted) log.info("webhook triggered", { runId: result.runId, duplicate: result.duplicate });
      else
        log.warn("webhook trigger refused", {
          status: reply.status,
          code: result.error?.code,
          error: result.error?.message,
        });
      return send(res, reply);
    } finally {
      // A signature is spent only once it triggered something; a 503 may be retried as is.
      if (signature !== null && !accepted) await replay?.release(signature);
    }
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

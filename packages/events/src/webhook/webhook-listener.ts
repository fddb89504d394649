/**
 * A webhook event listener on node:http: `POST /trigger/<workflowId>` triggers a run.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WorkflowIdSchema, errorMessage } from "@cdktr/protocol";
import { BodyTooLarge } from "../errors.js";
import { EventListener, type EventListenerOptions, type TriggerResult } from "../listener/event-listener.js";
import {
  DEFAULT_SIGNATURE_TOLERANCE_MS,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  verifyWebhookSignature,
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
   * `X-Cdktr-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`.
   */
  secret?: string;
  /** Largest accepted distance between the signed timestamp and now. @default 300000 */
  signatureToleranceMs?: number;
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
 *   answer within `triggerTimeoutMs`.
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
  /** Signatures that already triggered a run (or are in flight), with their expiry (epoch ms). */
  readonly #usedSignatures = new Map<string, number>();
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
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.#port, this.#host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      this.#listening.reject(e);
      this.#listening = deferred<WebhookAddress>();
      throw e;
    }
    const addr = server.address() as AddressInfo;
    const hostForUrl = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    this.#address = { host: addr.address, port: addr.port, url: `http://${hostForUrl}:${addr.port}` };
    this.#listening.resolve(this.#address);
    this.logger.info("webhook listening", { url: this.#address.url, signed: this.#secret !== undefined });
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
      return send(res, {
        status: 404,
        body: errorBody("NOT_FOUND", `no route ${url.pathname}: use POST /trigger/<workflowId> or GET /healthz`),
      });
    }
    if (req.method !== "POST") {
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
      return send(res, {
        status: 404,
        body: errorBody("WORKFLOW_NOT_FOUND", "the workflow id in the path is not valid percent-encoding"),
      });
    }
    const log = this.logger.child({ workflowId });
    if (!WorkflowIdSchema.safeParse(workflowId).success || (this.#allow !== null && !this.#allow.has(workflowId))) {
      log.warn("webhook refused: unknown workflow", { status: 404 });
      return send(res, {
        status: 404,
        body: errorBody("WORKFLOW_NOT_FOUND", `no workflow ${JSON.stringify(workflowId)} can be triggered here`),
      });
    }

    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > this.#maxBody) {
      log.warn("webhook refused: body too large", { status: 413, contentLength: declared });
      return refuseTooLarge(req, res, this.#maxBody);
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, this.#maxBody);
    } catch (e) {
      if (e instanceof BodyTooLarge) {
        log.warn("webhook refused: body too large", { status: 413 });
        return refuseTooLarge(req, res, this.#maxBody);
      }
      throw e;
    }

    let signature: string | null = null;
    if (this.#secret !== undefined) {
      const check = verifyWebhookSignature({
        secret: this.#secret,
        timestamp: header(req, TIMESTAMP_HEADER),
        signature: header(req, SIGNATURE_HEADER),
        rawBody: raw,
        nowMs: this.#now(),
        toleranceMs: this.#tolerance,
      });
      if (!check.ok) {
        log.warn("webhook refused: signature", { status: 401, reason: check.reason });
        return send(res, { status: 401, body: errorBody("UNAUTHORIZED", check.message) });
      }
      this.#pruneSignatures();
      if (this.#usedSignatures.has(check.signature)) {
        log.warn("webhook refused: replayed signature", { status: 401, reason: "replayed" });
        return send(res, {
          status: 401,
          body: errorBody(
            "UNAUTHORIZED",
            "this signature was already used: sign every request afresh (a new timestamp), and send an Idempotency-Key to make retries safe",
          ),
        });
      }
      signature = check.signature;
      this.#usedSignatures.set(signature, check.timestampMs + this.#tolerance);
    }

    let accepted = false;
    try {
      const params = parseParams(raw);
      if (!params.ok) {
        log.warn("webhook refused: malformed body", { status: 400 });
        return send(res, { status: 400, body: errorBody("BAD_REQUEST", params.error) });
      }
      const key = header(req, "idempotency-key");
      if (key !== undefined && (key.length === 0 || key.length > MAX_KEY_LENGTH)) {
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
      if (signature !== null && !accepted) this.#usedSignatures.delete(signature);
    }
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

  #pruneSignatures(): void {
    const now = this.#now();
    for (const [sig, expires] of this.#usedSignatures) if (expires < now) this.#usedSignatures.delete(sig);
  }
}

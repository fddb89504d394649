/**
 * The HTTP side of a cdktr service, for orchestrators and monitoring: `GET /metrics` (Prometheus
 * text format, with `cdktr_ready` added), `GET /healthz` (the process answers) and `GET /readyz`
 * (it can do its work now).
 * Read-only and small: no request body is read, nothing but these three paths is served.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { errorMessage } from "../errors.js";
import { BindError } from "../rpc/bind.js";
import type { Logger } from "../logging/logger.js";

/** The text exposition of a set of metrics, as a prom-client `Registry` offers it. */
export interface MetricsRegistry {
  /** The content type of {@link metrics}' text (`text/plain; version=0.0.4; ...`). */
  readonly contentType: string;
  /** Every metric in the Prometheus text exposition format. */
  metrics(): Promise<string>;
}

/** Options of {@link HealthServer}. */
export interface HealthServerOptions {
  /** Address to bind (`CDKTR_METRICS_HOST`, loopback by default). */
  host: string;
  /** Port to bind (`CDKTR_METRICS_PORT`); 0 picks a free one. */
  port: number;
  /** Where the metrics come from: a prom-client `Registry` (or anything of that shape). */
  metrics: MetricsRegistry;
  /** Why the service is not ready now (empty: ready). */
  notReady: () => string[] | Promise<string[]>;
  logger: Logger;
}

/** Most connections served at once: a scraper needs one, a probe another. */
const MAX_CONNECTIONS = 64;
/** A request that has not sent its headers by then is dropped. */
const HEADERS_TIMEOUT_MS = 5000;

/**
 * `/metrics`, `/healthz` and `/readyz` over plain HTTP. Bind it to loopback unless a scraper on
 * another host needs it: it carries no authentication (nothing it serves is secret or changes
 * anything, but workflow ids and agent ids show in the metrics).
 */
export class HealthServer {
  readonly #o: HealthServerOptions;
  #server: Server | null = null;

  constructor(options: HealthServerOptions) {
    this.#o = options;
  }

  /**
   * A server listening on `options` (see {@link listen}).
   * @throws BindError naming `CDKTR_METRICS_PORT` when the address cannot be bound
   */
  static async start(options: HealthServerOptions): Promise<HealthServer> {
    const server = new HealthServer(options);
    await server.listen();
    return server;
  }

  /** `http://host:port` once listening (the chosen port when `port` was 0), else null. */
  get url(): string | null {
    const address = this.#server?.address();
    if (address === null || address === undefined || typeof address === "string") return null;
    return `http://${this.#o.host.includes(":") ? `[${this.#o.host}]` : this.#o.host}:${address.port}`;
  }

  /**
   * Bind; resolves with the port (the chosen one when `port` was 0).
   * @throws BindError (code `EADDRINUSE`, `EADDRNOTAVAIL`...) naming `CDKTR_METRICS_PORT` when the
   *   address cannot be bound
   */
  async listen(): Promise<number> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.maxConnections = MAX_CONNECTIONS;
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    server.requestTimeout = HEADERS_TIMEOUT_MS * 2;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e) => {
        const code = (e as { code?: unknown }).code;
        reject(
          new BindError(
            typeof code === "string" ? code : "BIND_FAILED",
            `cannot serve metrics on ${this.#o.host}:${this.#o.port}: ${errorMessage(e)}; set CDKTR_METRICS_PORT to a free port (or unset it) and CDKTR_METRICS_HOST to a local address`,
            { cause: e, context: { host: this.#o.host, port: this.#o.port } },
          ),
        );
      });
      server.listen(this.#o.port, this.#o.host, () => {
        server.removeAllListeners("error");
        // Later errors (too many open files on accept...) are logged; the service goes on.
        server.on("error", (e) => this.#o.logger.warn("metrics server error", { error: errorMessage(e) }));
        resolve();
      });
    });
    this.#server = server;
    return (server.address() as AddressInfo).port;
  }

  /** Stop serving (open connections are closed). Idempotent. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(res, 405, "text/plain; charset=utf-8", "only GET and HEAD are served\n", { allow: "GET, HEAD" });
      return;
    }
    try {
      if (path === "/metrics") {
        const [body, problems] = await Promise.all([this.#o.metrics.metrics(), this.#o.notReady()]);
        // What /readyz says, as a gauge too (alerting on it needs no probe).
        const ready = `# HELP cdktr_ready 1 when the process can do its work now (/readyz answers 200), else 0.\n# TYPE cdktr_ready gauge\ncdktr_ready ${problems.length === 0 ? 1 : 0}\n`;
        send(res, 200, this.#o.metrics.contentType, `${body}${body === "" || body.endsWith("\n") ? "" : "\n"}${ready}`);
      } else if (path === "/healthz") {
        send(res, 200, "text/plain; charset=utf-8", "ok\n");
      } else if (path === "/readyz") {
        const problems = await this.#o.notReady();
        send(
          res,
          problems.length === 0 ? 200 : 503,
          "application/json",
          `${JSON.stringify(problems.length === 0 ? { ready: true } : { ready: false, problems })}\n`,
        );
      } else {
        send(res, 404, "text/plain; charset=utf-8", "not found: /metrics, /healthz and /readyz are served\n");
      }
    } catch (e: unknown) {
      this.#o.logger.error("health endpoint failed", { path, error: errorMessage(e) });
      send(res, 500, "text/plain; charset=utf-8", "internal error\n");
    }
  }
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": contentType, "cache-control": "no-store", ...headers });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

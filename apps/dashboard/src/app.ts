/**
 * Wiring of the dashboard process: an HTTP server (node:http) serving the browser app and a JSON
 * + server-sent-events API over the principal's. No side effects at import; `main.ts` owns the
 * process.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import {
  HealthServer,
  PrincipalClient,
  errorMessage,
  findClientKey,
  withPort,
  type ClientKey,
  type Logger,
} from "@cdktr/protocol";
import { toHttpError } from "./api/principal-errors.js";
import { apiRoutes } from "./api/api-routes.js";
import { AccessPolicy } from "./auth/access-policy.js";
import { RateLimiter } from "./auth/rate-limiter.js";
import { SessionStore } from "./auth/session-store.js";
import type { DashboardConfig } from "./config.js";
import { DashboardStartError } from "./errors.js";
import { httpErrors, sendError, sendJson, setSecurityHeaders } from "./http/respond.js";
import type { Router } from "./http/router.js";
import { StaticFiles } from "./http/static-files.js";
import { LiveHub } from "./live/live-hub.js";
import { DashboardMetrics } from "./metrics.js";
import { TokenRegistry } from "./tokens/token-registry.js";

/** Name of the dashboard's local key (made by the principal on first start, role `dashboard`). */
export const DASHBOARD_KEY_NAME = "local-dashboard";

/** What {@link createDashboard} needs besides the configuration. */
export interface DashboardDeps {
  logger: Logger;
  /**
   * The dashboard's key to the principal (role `dashboard`); null for a principal with `CDKTR_AUTH=off`.
   * @default the file named by `CDKTR_KEY_FILE`, else `<CDKTR_KEYS_DIR or ~/.cdktr/keys>/local-dashboard.json`
   */
  key?: ClientKey | null;
  /** Where `CDKTR_KEY_FILE`, `CDKTR_KEYS_DIR` and `CDKTR_AUTH` are read. @default process.env */
  env?: Record<string, string | undefined>;
  /** The built browser app. @default `dist/public` beside this file */
  publicDir?: string;
  /** How often the tokens file is checked for changes. @default 1000 */
  tokenCheckIntervalMs?: number;
  /** Time between `: ping` comments on live streams. @default 15000 */
  pingMs?: number;
}

/** A running (or startable) dashboard. */
export interface DashboardService {
  /** Listen; resolves with the URL once the server accepts connections. */
  start(): Promise<{ url: string }>;
  /** Close the server, the live streams and the principal connection; idempotent. */
  stop(): Promise<void>;
  /** `http://host:port` once started, else null. */
  readonly url: string | null;
  /** The live streams and their subscription (for tests). */
  readonly hub: LiveHub;
  /** Base URL of `/metrics`, `/healthz` and `/readyz` once started (`CDKTR_METRICS_PORT`), else null. */
  readonly metrics: string | null;
}

/** The URL host part of an interface (`::1` -> `[::1]`, `0.0.0.0` -> `0.0.0.0`). */
function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Build the dashboard from its configuration. */
export function createDashboard(config: DashboardConfig, deps: DashboardDeps): DashboardService {
  const logger = deps.logger;
  const env = deps.env ?? process.env;
  const key = deps.key !== undefined ? deps.key : findClientKey(DASHBOARD_KEY_NAME, env);
  const principal = new PrincipalClient({
    endpoints: config.principalEndpoints,
    publishPort: config.publishPort,
    timeoutMs: config.principalTimeoutMs,
    logger,
    key,
    env,
  });
  const tokens = new TokenRegistry({
    path: config.tokensFile,
    logger,
    ...(deps.tokenCheckIntervalMs === undefined ? {} : { checkIntervalMs: deps.tokenCheckIntervalMs }),
  });
  const sessions = new SessionStore({ maxSessions: config.maxSessions, idleMs: config.sessionIdleMs });
  const policy = new AccessPolicy({ sessions, tokens, boundHost: config.host, requireSignin: config.requireSignin });
  const hub = new LiveHub({
    principal,
    publishEndpoint: withPort(principal.endpoint, config.publishPort),
    key,
    logger,
    maxStreams: config.maxStreams,
    ...(deps.pingMs === undefined ? {} : { pingMs: deps.pingMs }),
  });
  const router: Router = apiRoutes({
    principal,
    policy,
    tokens,
    hub,
    logger,
    signInLimiter: new RateLimiter({ limit: config.signInPerMinute, windowMs: 60_000, maxKeys: 10_000 }),
  });
  const metrics = config.metricsPort === null ? null : new DashboardMetrics(hub, sessions);
  let health: HealthServer | null = null;
  const files = new StaticFiles(deps.publicDir ?? fileURLToPath(new URL("./public/", import.meta.url)));

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    setSecurityHeaders(res);
    if (metrics !== null) res.once("finish", () => metrics.response(res.statusCode));
    const raw = req.url ?? "/";
    if (!raw.startsWith("/")) {
      sendJson(res, 400, { error: { code: "BAD_REQUEST", message: "bad request target" } });
      return;
    }
    const url = new URL(raw, "http://dashboard.invalid");
    const rawPath = raw.split("?")[0] ?? "/";
    if (rawPath === "/api" || rawPath.startsWith("/api/")) {
      try {
        const reply = await router.handle(req, res, url);
        if (reply !== null) sendJson(res, reply.status, reply.body, reply.headers);
      } catch (e) {
        const err = toHttpError(e, logger);
        if (res.headersSent) res.destroy();
        else sendError(res, err);
        // A body left unread (too large, refused before reading) would keep the socket busy.
        if (!req.complete) req.resume();
      }
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      sendJson(res, 405, { error: { code: "METHOD_NOT_ALLOWED", message: "only GET and HEAD outside /api" } });
      return;
    }
    // The raw path (not the URL parser's, which folds `..` segments) is what gets checked.
    await files.serve(req, res, rawPath);
  };

  let server: Server | null = null;
  let url: string | null = null;
  let stopped = false;

  return {
    hub,
    get url() {
      return url;
    },
    get metrics() {
      return health?.url ?? null;
    },
    async start() {
      if (server !== null) throw new DashboardStartError("ALREADY_STARTED", "the dashboard is started already");
      try {
        tokens.load();
      } catch (e) {
        throw new DashboardStartError("TOKENS_UNAVAILABLE", errorMessage(e), { cause: e });
      }
      const s = createServer(
        { requestTimeout: 30_000, headersTimeout: 15_000, keepAliveTimeout: 5_000, maxHeaderSize: 16 * 1024 },
        (req, res) => {
          handle(req, res).catch((e: unknown) => {
            logger.error("request failed", { error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
            if (!res.headersSent) sendError(res, httpErrors.internal());
            else res.destroy();
          });
        },
      );
      s.maxConnections = config.maxStreams + 512;
      s.maxRequestsPerSocket = 10_000;
      server = s;
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error): void => {
          reject(
            new DashboardStartError(
              "LISTEN_FAILED",
              `cannot listen on ${config.host}:${config.port}: ${e.message} (change CDKTR_DASHBOARD_PORT or CDKTR_DASHBOARD_HOST)`,
              { cause: e },
            ),
          );
        };
        s.once("error", onError);
        s.listen(config.port, config.host, () => {
          s.off("error", onError);
          resolve();
        });
      });
      s.on("error", (e) => logger.error("http server error", { error: e.message }));
      const port = (s.address() as AddressInfo).port;
      url = `http://${urlHost(config.host)}:${port}`;
      hub.start();
      if (metrics !== null && config.metricsPort !== null) {
        health = await HealthServer.start({
          host: config.metricsHost,
          port: config.metricsPort,
          metrics: metrics.registry,
          notReady: () => {
            if (stopped) return ["the dashboard is stopping"];
            return hub.connections === 0
              ? ["not connected to the principal's publish channel yet (is it reachable?)"]
              : [];
          },
          logger,
        });
      }
      if (!files.hasIndex()) logger.warn("the browser app is not built: run `npm run build`", { dir: files.root });
      return { url };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      hub.stop();
      const s = server;
      if (s !== null) {
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        s.closeIdleConnections();
        // Bounded: connections still open after a second are cut.
        const timer = setTimeout(() => s.closeAllConnections(), 1000);
        await closed;
        clearTimeout(timer);
      }
      principal.close();
      await health?.close();
    },
  };
}

/**
 * Webhook routes: a path (`/hooks/github/deploy`) that triggers one fixed workflow, authenticated
 * the way its sender can (its **flavour**: GitHub, GitLab, a generic HMAC, or cdktr's own
 * signature), its request mapped into the run by an {@link EventMapping} over the request's
 * **event document** ({@link WebhookEvent}).
 */
import type { IncomingMessage } from "node:http";
import type { JSONValue } from "@jmespath-community/jmespath";
import { UsageError, WorkflowIdSchema } from "@cdktr/protocol";
import { EventMapping, decodeBody, type EventMappingSpec } from "../mapping/event-mapping.js";
import {
  GITHUB_DELIVERY_HEADER,
  GITLAB_EVENT_UUID_HEADER,
  GITLAB_TOKEN_HEADER,
  GITHUB_SIGNATURE_HEADER,
  hmacSchemeWithDefaults,
  verifyGitHubSignature,
  verifyGitLabToken,
  verifyHmacSignature,
  type HmacScheme,
  type RouteSignatureCheck,
} from "./route-signature.js";
import { header } from "./http-io.js";
import { IDEMPOTENCY_KEY_HEADER } from "./signature.js";

/** How a route authenticates its requests. */
export type WebhookFlavour = "github" | "gitlab" | "hmac" | "cdktr";

/** Every {@link WebhookFlavour}. */
export const WEBHOOK_FLAVOURS: readonly WebhookFlavour[] = ["github", "gitlab", "hmac", "cdktr"];

/** One route of a {@link WebhookListener} (option `routes`). */
export interface WebhookRoute {
  /**
   * The path served, e.g. `/hooks/github/deploy`: segments of letters, digits, `-`, `_`, `.` and
   * `~`, no trailing `/`; not `/healthz` and not under `/trigger/`. Only POST is accepted.
   */
  path: string;
  /** The workflow every request of this route triggers. */
  workflow: string;
  /**
   * - `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`; the `ping` event
   *   is answered 200 without a run; the run's key is `github:<path>:<X-GitHub-Delivery>`.
   * - `gitlab`: `X-Gitlab-Token` equals the secret; key from `Idempotency-Key`, else `X-Gitlab-Event-UUID`.
   * - `hmac`: an HMAC of the raw body in the header of {@link hmac}; key from `Idempotency-Key`.
   * - `cdktr`: cdktr's own `X-Cdktr-Signature` v2 over the route's path (timestamp, replay cache),
   *   with the route's secret or, without one, the listener's (neither: unsigned).
   */
  flavour: WebhookFlavour;
  /** The shared secret. Required for `github`, `gitlab` and `hmac`. */
  secret?: string;
  /** With flavour `hmac` (and only then): the signature's header, algorithm, prefix and encoding. */
  hmac?: HmacScheme;
  /**
   * Fixed params, params mapped from the {@link WebhookEvent}, a `when` filter (a request that
   * does not match gets 202 `ignored`) and an idempotency key expression (it wins over the
   * flavour's own key). Without a mapping the run has no params.
   */
  mapping?: EventMappingSpec;
  /** Refuse (400) a request from which no idempotency key comes (a replay would start a new run). @default false */
  requireIdempotencyKey?: boolean;
}

/**
 * What a route's mapping sees of a request (its `params_map`, `when` and `idempotency_key` are
 * JMESPath expressions over it).
 */
export interface WebhookEvent {
  /** The body parsed as JSON, else its text (for `github`, a form-encoded body's `payload` field parsed as JSON). */
  body: JSONValue;
  /**
   * Request headers, names in lower case (`headers."x-github-event"`); repeated headers joined
   * with `, `. Headers that carry credentials (`Authorization`, `Cookie`, `X-Gitlab-Token`...)
   * are left out so that no mapping can copy them into a run.
   */
  headers: Record<string, string>;
  /** Query string parameters: a string, or a list of strings when repeated. */
  query: Record<string, string | string[]>;
  /** The request path, e.g. `/hooks/github/deploy`. */
  path: string;
  /** `POST`. */
  method: string;
}

/** A route ready to serve. Internal to the webhook listener. */
export interface CompiledRoute {
  path: string;
  workflow: string;
  flavour: WebhookFlavour;
  /** The secret checked (for `cdktr`, the listener's when the route has none; undefined: unsigned). */
  secret: string | undefined;
  hmac: Required<HmacScheme> | null;
  mapping: EventMapping | null;
  /** The `when` expression, for the `ignored` reply. */
  when: string | undefined;
  requireKey: boolean;
}

const SEGMENT = "[A-Za-z0-9._~-]+";
const ROUTE_PATH = new RegExp(`^(?:/${SEGMENT})+$`);
const MAX_PATH = 256;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Headers never copied into the event document (they carry credentials). */
const SECRET_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", GITLAB_TOKEN_HEADER]);

/**
 * Why `path` cannot be a route path, or null when it can.
 */
export function webhookRoutePathProblem(path: string): string | null {
  if (path.length > MAX_PATH) return `a route path has at most ${MAX_PATH} characters`;
  if (!ROUTE_PATH.test(path))
    return "a route path is `/` then segments of letters, digits, '-', '_', '.' and '~' separated by `/`, without a trailing `/`, e.g. /hooks/github/deploy";
  if (path.split("/").some((s) => s === "." || s === "..")) return "a route path has no `.` or `..` segment";
  if (path === "/healthz" || path === "/trigger" || path.startsWith("/trigger/"))
    return "/healthz and /trigger/... are the listener's own paths: choose another route path";
  return null;
}

/**
 * Check and compile `routes`: every problem is listed, each naming `routes[i].<field>`.
 * @throws UsageError (`INVALID_ARGUMENT`) listing every problem
 */
export function compileWebhookRoutes(
  routes: readonly WebhookRoute[],
  context: { listenerSecret: string | undefined; allow: ReadonlySet<string> | null },
): Map<string, CompiledRoute> {
  const problems: string[] = [];
  const compiled = new Map<string, CompiledRoute>();
  routes.forEach((r, i) => {
    const at = `routes[${i}]`;
    const pathProblem = webhookRoutePathProblem(r.path);
    if (pathProblem !== null) problems.push(`${at}.path: ${pathProblem}`);
    else if (compiled.has(r.path)) problems.push(`${at}.path: ${r.path} is already the path of another route`);
    if (!WorkflowIdSchema.safeParse(r.workflow).success)
      problems.push(`${at}.workflow: ${JSON.stringify(r.workflow)} is not a workflow id`);
    else if (context.allow !== null && !context.allow.has(r.workflow))
      problems.push(`${at}.workflow: ${r.workflow} is not in the listener's \`workflows\`: add it there`);
    if (!WEBHOOK_FLAVOURS.includes(r.flavour))
      problems.push(`${at}.flavour: expected one of ${WEBHOOK_FLAVOURS.join(", ")}`);
    const secret = r.secret !== undefined && r.secret !== "" ? r.secret : undefined;
    if (secret === undefined && r.flavour !== "cdktr")
      problems.push(`${at}.secret: a ${r.flavour} route needs the secret its sender signs with`);
    if (r.flavour === "hmac" && r.hmac === undefined)
      problems.push(`${at}.hmac: a hmac route needs {header, algorithm?, prefix?, encoding?}`);
    if (r.flavour !== "hmac" && r.hmac !== undefined)
      problems.push(`${at}.hmac: only for flavour hmac (a ${r.flavour} route's signature is fixed)`);
    if (r.hmac !== undefined) {
      if (!HEADER_NAME.test(r.hmac.header))
        problems.push(`${at}.hmac.header: ${JSON.stringify(r.hmac.header)} is not a header name`);
      if (r.hmac.algorithm !== undefined && !["sha256", "sha1", "sha512"].includes(r.hmac.algorithm))
        problems.push(`${at}.hmac.algorithm: expected sha256, sha1 or sha512`);
      if (r.hmac.encoding !== undefined && !["hex", "base64"].includes(r.hmac.encoding))
        problems.push(`${at}.hmac.encoding: expected hex or base64`);
    }
    let mapping: EventMapping | null = null;
    if (r.mapping !== undefined) {
      try {
        mapping = EventMapping.compile(r.mapping, at);
      } catch (e) {
        problems.push(e instanceof Error ? e.message : String(e));
      }
    }
    if (pathProblem === null && !compiled.has(r.path)) {
      compiled.set(r.path, {
        path: r.path,
        workflow: r.workflow,
        flavour: r.flavour,
        secret: r.flavour === "cdktr" ? (secret ?? context.listenerSecret) : secret,
        hmac: r.hmac !== undefined ? hmacSchemeWithDefaults(r.hmac) : null,
        mapping,
        when: r.mapping?.when,
        requireKey: r.requireIdempotencyKey === true,
      });
    }
  });
  if (problems.length > 0)
    throw new UsageError("INVALID_ARGUMENT", `WebhookListener: invalid routes: ${problems.join("; ")}`);
  return compiled;
}

/** The event document of a request to a route (see {@link WebhookEvent}). */
export function webhookEvent(req: IncomingMessage, url: URL, raw: Buffer, flavour: WebhookFlavour): WebhookEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || SECRET_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of url.searchParams) {
    const seen = query[name];
    query[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return {
    body: routeBody(raw, flavour, headers["content-type"]),
    headers,
    query,
    path: url.pathname,
    method: req.method ?? "POST",
  };
}

/**
 * The body of the event document: JSON, else text. GitHub's `application/x-www-form-urlencoded`
 * content type sends the JSON as the form field `payload`: that JSON is the body.
 */
function routeBody(raw: Buffer, flavour: WebhookFlavour, contentType: string | undefined): JSONValue {
  if (flavour === "github" && contentType?.toLowerCase().startsWith("application/x-www-form-urlencoded") === true) {
    const payload = new URLSearchParams(raw.toString("utf8")).get("payload");
    if (payload !== null) return decodeBody(payload);
  }
  return decodeBody(raw);
}

/** Where a route's run gets its idempotency key from, and the id found there. */
export interface RouteKey {
  /** The id (before scoping as `<flavour>:<path>:<id>`). */
  id: string;
  /** What gave it: `idempotency_key`, `X-GitHub-Delivery`, `Idempotency-Key` or `X-Gitlab-Event-UUID`. */
  from: string;
}

/**
 * The id of a route's run, in this order: the mapping's `idempotency_key` expression; for
 * `github`, `X-GitHub-Delivery`; the `Idempotency-Key` header; for `gitlab`, `X-Gitlab-Event-UUID`.
 * Undefined when none gives one (a replay then starts a new run).
 */
export function routeKey(
  flavour: WebhookFlavour,
  headers: Readonly<Record<string, string>>,
  mapped: string | undefined,
): RouteKey | undefined {
  const nonEmpty = (v: string | undefined): string | undefined =>
    v !== undefined && v.trim() !== "" ? v.trim() : undefined;
  if (mapped !== undefined) return { id: mapped, from: "idempotency_key" };
  const delivery = flavour === "github" ? nonEmpty(headers[GITHUB_DELIVERY_HEADER]) : undefined;
  if (delivery !== undefined) return { id: delivery, from: "X-GitHub-Delivery" };
  const header = headers[IDEMPOTENCY_KEY_HEADER];
  if (header !== undefined) return { id: header, from: "Idempotency-Key" };
  const uuid = flavour === "gitlab" ? nonEmpty(headers[GITLAB_EVENT_UUID_HEADER]) : undefined;
  if (uuid !== undefined) return { id: uuid, from: "X-Gitlab-Event-UUID" };
  return undefined;
}

/**
 * Check the signature (or token) of a request to a `github`, `gitlab` or `hmac` route on its raw
 * body (cdktr routes are checked by the listener, with their replay cache). Never throws.
 */
export function verifyRouteRequest(route: CompiledRoute, req: IncomingMessage, raw: Buffer): RouteSignatureCheck {
  const secret = route.secret;
  if (secret === undefined || route.flavour === "cdktr")
    // Unreachable: compileWebhookRoutes requires a secret of these flavours.
    return { ok: false, reason: "missing_signature", message: `route ${route.path} has no secret to check` };
  switch (route.flavour) {
    case "github":
      return verifyGitHubSignature({ secret, signature: header(req, GITHUB_SIGNATURE_HEADER), rawBody: raw });
    case "gitlab":
      return verifyGitLabToken({ secret, token: header(req, GITLAB_TOKEN_HEADER) });
    case "hmac": {
      const scheme = route.hmac;
      if (scheme === null)
        return { ok: false, reason: "missing_signature", message: `route ${route.path} has no hmac scheme` };
      return verifyHmacSignature({
        secret,
        signature: header(req, scheme.header.toLowerCase()),
        rawBody: raw,
        scheme,
      });
    }
  }
}

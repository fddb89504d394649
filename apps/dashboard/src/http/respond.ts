/**
 * Response helpers: the security headers every response carries, JSON bodies and the error shape
 * `{ "error": { "code", "message" } }`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError } from "../errors.js";

/** The Content-Security-Policy of every response: same-origin everything, no framing, no plugins. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/** Headers set on every response, before anything else. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/** Set {@link SECURITY_HEADERS} on a response. */
export function setSecurityHeaders(res: ServerResponse): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
}

/** Answer `body` as JSON with `status` (API answers are never cached). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string | string[]>> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** Answer an {@link HttpError} as `{ "error": { code, message } }`. */
export function sendError(res: ServerResponse, e: HttpError, extra: Readonly<Record<string, string>> = {}): void {
  sendJson(res, e.status, { error: { code: e.code, message: e.message } }, { ...e.headers, ...extra });
}

/** Answer 204 with no body. */
export function sendNoContent(res: ServerResponse, headers: Readonly<Record<string, string | string[]>> = {}): void {
  res.writeHead(204, { "Cache-Control": "no-store", ...headers });
  res.end();
}

/** The remote address of a request, for rate limits and logs. */
export function remoteAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? "unknown";
}

/** Shorthands for the errors the API answers. */
export const httpErrors = {
  badRequest: (message: string) => new HttpError(400, "BAD_REQUEST", message),
  unauthenticated: (message = "sign in first: POST /api/session with a dashboard token") =>
    new HttpError(401, "UNAUTHENTICATED", message),
  permissionDenied: (message: string) => new HttpError(403, "PERMISSION_DENIED", message),
  forbiddenOrigin: (message: string) => new HttpError(403, "FORBIDDEN_ORIGIN", message),
  notFound: (message: string, code = "NOT_FOUND") => new HttpError(404, code, message),
  methodNotAllowed: (allowed: readonly string[]) =>
    new HttpError(405, "METHOD_NOT_ALLOWED", `method not allowed here: use ${allowed.join(", ")}`, {
      Allow: allowed.join(", "),
    }),
  tooLarge: (limit: number) =>
    new HttpError(413, "PAYLOAD_TOO_LARGE", `the request body is larger than ${limit} bytes`, { Connection: "close" }),
  unsupportedMediaType: () =>
    new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "send the request body as JSON with Content-Type: application/json"),
  tooManyRequests: (retryAfterS: number) =>
    new HttpError(429, "TOO_MANY_REQUESTS", `too many sign-in attempts: try again in ${retryAfterS} s`, {
      "Retry-After": String(retryAfterS),
    }),
  unavailable: (code: string, message: string) => new HttpError(503, code, message),
  internal: () => new HttpError(500, "INTERNAL", "internal error (details are in the dashboard's log)"),
} as const;

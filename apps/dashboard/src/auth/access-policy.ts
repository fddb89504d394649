/**
 * Who may do what, in one place:
 * - writes (every POST/DELETE but `/api/session`) need an operator session: none -> 401, a
 *   reader's -> 403; they must also be JSON (415) and, when the browser sends `Origin`, come
 *   from this server's own origin (403 FORBIDDEN_ORIGIN). There is no anonymous write: the only
 *   way to a write handler is {@link AccessPolicy.requireOperator}, which returns a session.
 * - reads: anonymous when the server is bound to loopback, CDKTR_DASHBOARD_REQUIRE_SIGNIN is off
 *   and the request's Host is a loopback name (a DNS-rebound page gets no anonymous read);
 *   otherwise a session of either role (401).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { isLoopbackHost } from "../config.js";
import type { TokenRegistry } from "../tokens/token-registry.js";
import { httpErrors } from "../http/respond.js";
import { isJsonContentType } from "../http/request-body.js";
import { SESSION_COOKIE, type Session, type SessionStore } from "./session-store.js";

/** An operator's session: what a write handler receives, so it cannot run without one. */
export type OperatorSession = Session & { readonly role: "operator" };

/** Options of {@link AccessPolicy}. */
export interface AccessPolicyOptions {
  sessions: SessionStore;
  tokens: TokenRegistry;
  /** The interface the server is bound to. */
  boundHost: string;
  /** CDKTR_DASHBOARD_REQUIRE_SIGNIN. */
  requireSignin: boolean;
}

/** The session cookie's value in a request, if any. */
export function sessionCookie(req: IncomingMessage): string | null {
  const header = req.headers.cookie;
  if (header === undefined) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === SESSION_COOKIE) {
      const v = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{43}$/.test(v) ? v : null;
    }
  }
  return null;
}

/** The `Set-Cookie` value that opens a session. */
export function sessionSetCookie(id: string): string {
  return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/`;
}

/** The `Set-Cookie` value that clears the session cookie. */
export function sessionClearCookie(): string {
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
}

/** The hostname of a Host header (`[::1]:5564` -> `::1`, `localhost:5564` -> `localhost`). */
function hostnameOf(host: string): string {
  const m = /^\[([^\]]*)\](?::\d+)?$/.exec(host);
  if (m !== null) return m[1] ?? "";
  const colon = host.lastIndexOf(":");
  return colon >= 0 && host.indexOf(":") === colon ? host.slice(0, colon) : host;
}

/** The access rules of one dashboard server (see the file's comment). */
export class AccessPolicy {
  readonly #sessions: SessionStore;
  readonly #tokens: TokenRegistry;
  readonly #loopbackReads: boolean;

  constructor(opts: AccessPolicyOptions) {
    this.#sessions = opts.sessions;
    this.#tokens = opts.tokens;
    this.#loopbackReads = isLoopbackHost(opts.boundHost) && !opts.requireSignin;
  }

  /**
   * The request's live session: its cookie names a session that is not idle and whose token is
   * still valid (not revoked nor replaced; the role is the token's current one). A session whose
   * token was revoked ends here.
   */
  session(req: IncomingMessage): Session | null {
    const id = sessionCookie(req);
    if (id === null) return null;
    const s = this.#sessions.get(id);
    if (s === null) return null;
    const token = this.#tokens.current(s.name, s.tokenHash);
    if (token === null) {
      this.#sessions.delete(id);
      return null;
    }
    return token.role === s.role ? s : { ...s, role: token.role };
  }

  /** Whether this request may read without a session. */
  anonymousReads(req: IncomingMessage): boolean {
    if (!this.#loopbackReads) return false;
    const host = req.headers.host;
    return host !== undefined && isLoopbackHost(hostnameOf(host));
  }

  /**
   * Allow a read.
   * @returns the session, or null for an allowed anonymous read
   * @throws HttpError 401 when reading needs a session and there is none
   */
  requireRead(req: IncomingMessage): Session | null {
    const s = this.session(req);
    if (s !== null || this.anonymousReads(req)) return s;
    throw httpErrors.unauthenticated();
  }

  /**
   * Allow a write: an operator's session, a JSON body and this server's origin.
   * @throws HttpError 401 no session, 403 a reader's session, 415 not JSON, 403 FORBIDDEN_ORIGIN
   */
  requireOperator(req: IncomingMessage): OperatorSession {
    const s = this.session(req);
    if (s === null) throw httpErrors.unauthenticated("sign in with an operator token to do this");
    if (s.role !== "operator")
      throw httpErrors.permissionDenied(`the token ${s.name} is a reader's: only operator tokens may do this`);
    this.checkWriteHeaders(req, true);
    return s as OperatorSession;
  }

  /**
   * The cross-site request defences of a state-changing request: a JSON content type (a form or
   * a simple cross-site `fetch` cannot send one without a preflight) and, when the browser sends
   * `Origin` or `Sec-Fetch-Site`, this server's own origin.
   * @throws HttpError 415 (when `json` is required), 403 FORBIDDEN_ORIGIN
   */
  checkWriteHeaders(req: IncomingMessage, json: boolean): void {
    const host = req.headers.host;
    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (host === undefined || (origin !== `http://${host}` && origin !== `https://${host}`))
        throw httpErrors.forbiddenOrigin(
          `requests that change something must come from this dashboard's own pages (Origin ${JSON.stringify(origin)} is not ${JSON.stringify(`http://${host ?? ""}`)})`,
        );
    }
    const site = req.headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin" && site !== "none")
      throw httpErrors.forbiddenOrigin(`cross-site request refused (Sec-Fetch-Site: ${site})`);
    if (json && !isJsonContentType(req)) throw httpErrors.unsupportedMediaType();
  }

  /** Open a session for a verified token (replacing the request's current one). */
  openSession(req: IncomingMessage, res: ServerResponse, name: string, role: Session["role"], hash: string): Session {
    const old = sessionCookie(req);
    if (old !== null) this.#sessions.delete(old);
    const s = this.#sessions.create(name, role, hash);
    res.setHeader("Set-Cookie", sessionSetCookie(s.id));
    return s;
  }

  /** End the request's session, if any, and clear the cookie. */
  closeSession(req: IncomingMessage, res: ServerResponse): void {
    const id = sessionCookie(req);
    if (id !== null) this.#sessions.delete(id);
    res.setHeader("Set-Cookie", sessionClearCookie());
  }

  /** What `GET /api/session` answers. */
  describe(req: IncomingMessage, session: Session | null): SessionView {
    return {
      signedIn: session !== null,
      name: session?.name ?? null,
      role: session?.role ?? null,
      canWrite: session?.role === "operator",
      signInRequired: !this.anonymousReads(req),
    };
  }
}

/** The body of `GET/POST /api/session`. */
export interface SessionView {
  signedIn: boolean;
  name: string | null;
  role: "reader" | "operator" | null;
  canWrite: boolean;
  signInRequired: boolean;
}

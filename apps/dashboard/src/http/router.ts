/**
 * A small router whose route kinds carry the access rules: a `write` route's handler receives an
 * {@link OperatorSession} and is only reached through {@link AccessPolicy.requireOperator}; a
 * `read` route's through {@link AccessPolicy.requireRead}; `open` routes (sign-in) check what
 * they need themselves.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { OperatorSession, AccessPolicy } from "../auth/access-policy.js";
import type { Session } from "../auth/session-store.js";
import { httpErrors } from "./respond.js";

/** What every handler gets. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The `:name` parts of the path, decoded. */
  params: Readonly<Record<string, string>>;
}

/** A read handler's context: the session when there is one (anonymous reads: null). */
export interface ReadContext extends RequestContext {
  session: Session | null;
}

/** A write handler's context: always an operator's session. */
export interface WriteContext extends RequestContext {
  session: OperatorSession;
}

/** A JSON answer, or null when the handler answered itself (a live stream, 204). */
export type Reply = { status: number; body: unknown; headers?: Record<string, string | string[]> } | null;

type Handler<C> = (ctx: C) => Promise<Reply>;

type Route =
  | { kind: "read"; method: string; pattern: RegExp; keys: string[]; handler: Handler<ReadContext> }
  | { kind: "write"; method: string; pattern: RegExp; keys: string[]; handler: Handler<WriteContext> }
  | { kind: "open"; method: string; pattern: RegExp; keys: string[]; handler: Handler<RequestContext> };

function compile(path: string): { pattern: RegExp; keys: string[] } {
  const keys: string[] = [];
  const source = path
    .split("/")
    .map((part) => {
      if (part.startsWith(":")) {
        keys.push(part.slice(1));
        return "([^/]+)";
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("/");
  return { pattern: new RegExp(`^${source}$`), keys };
}

/** The API's routes (see the file's comment). */
export class Router {
  readonly #routes: Route[] = [];
  readonly #policy: AccessPolicy;

  constructor(policy: AccessPolicy) {
    this.#policy = policy;
  }

  /** A route anyone allowed to read may use. */
  read(method: "GET", path: string, handler: Handler<ReadContext>): this {
    this.#routes.push({ kind: "read", method, ...compile(path), handler });
    return this;
  }

  /** A route that changes something: operators only. */
  write(method: "POST" | "DELETE", path: string, handler: Handler<WriteContext>): this {
    this.#routes.push({ kind: "write", method, ...compile(path), handler });
    return this;
  }

  /** A route that checks access itself (`/api/session`). */
  open(method: "GET" | "POST" | "DELETE", path: string, handler: Handler<RequestContext>): this {
    this.#routes.push({ kind: "open", method, ...compile(path), handler });
    return this;
  }

  /**
   * Run the route of `req`.
   * @throws HttpError 404 no route, 405 wrong method, 400 bad path encoding, and the access errors
   */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<Reply> {
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
    const allowed: string[] = [];
    for (const route of this.#routes) {
      const m = route.pattern.exec(url.pathname);
      if (m === null) continue;
      if (route.method !== method) {
        allowed.push(route.method);
        continue;
      }
      const params: Record<string, string> = {};
      for (const [i, key] of route.keys.entries()) {
        try {
          params[key] = decodeURIComponent(m[i + 1] ?? "");
        } catch {
          throw httpErrors.badRequest(`the path part ${JSON.stringify(m[i + 1])} is not valid percent-encoding`);
        }
      }
      const base: RequestContext = { req, res, url, params };
      switch (route.kind) {
        case "read":
          return route.handler({ ...base, session: this.#policy.requireRead(req) });
        case "write":
          return route.handler({ ...base, session: this.#policy.requireOperator(req) });
        case "open":
          return route.handler(base);
      }
    }
    if (allowed.length > 0) throw httpErrors.methodNotAllowed(allowed);
    throw httpErrors.notFound(`no API route ${url.pathname}`);
  }
}

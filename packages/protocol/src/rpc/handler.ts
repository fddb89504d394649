import type { ParsedRequestOf, ReplyOf, VerbTable } from "../messages.js";
import type { KeyIdentity } from "../security/identity.js";

/** What a handler learns about the request besides its body. */
export interface RequestContext {
  /** The caller's routing id (printable form). */
  peer: string;
  requestId: string;
  /** Epoch ms after which the caller no longer waits; null when it sent none. */
  deadline: number | null;
  /** Aborted at the deadline and when the server closes. */
  signal: AbortSignal;
  /** The key behind the connection (after `hello`); null when the server runs without authentication. */
  identity: KeyIdentity | null;
}

/** A verb handler of an `RpcServer`: return the reply body or throw a `CdktrError`. */
export type Handler<T extends VerbTable, V extends keyof T & string> = (
  body: ParsedRequestOf<T, V>,
  ctx: RequestContext,
) => ReplyOf<T, V> | Promise<ReplyOf<T, V>>;

/**
 * A check of a request's JSON body before its schema is applied and its handler runs: throw a
 * CdktrError to refuse the request with it (e.g. a log batch beyond its agent's budget, refused
 * without the cost of validating 2,000 lines). It sees untrusted JSON: check every field's type.
 * Runs only for a connection that may call the verb (`identity` as the handler would see it).
 */
export type Precheck = (json: unknown, ctx: { peer: string; identity: KeyIdentity | null }) => void;

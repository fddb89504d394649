import type { API_VERBS, Handler, LOG_VERBS, Precheck, RpcServer, VerbTable } from "@cdktr/protocol";

/**
 * The API verbs only the leader serves (they write, or answer from the leader's memory); a
 * standby answers them with `NOT_LEADER`. The other verbs (`ping`, `hello`, `listWorkflows`,
 * `getWorkflow`, `getRun`, `listRuns`, `queryLogs`, `listKeys`) are reads any principal answers
 * from the database. docs/protocol.md lists the same.
 */
export const LEADER_ONLY_API_VERBS: ReadonlySet<keyof typeof API_VERBS> = new Set([
  "runWorkflow",
  "runWorkflows",
  "cancelRun",
  "registerAgent",
  "heartbeat",
  "fetchWork",
  "confirmAssignment",
  "runStatus",
  "taskStatus",
  // The agents are known to the leader only.
  "listAgents",
  "enrollKey",
  "revokeKey",
] as const);

/** The log-ingest verbs only the leader serves: `logBatch`. */
export const LEADER_ONLY_LOG_VERBS: ReadonlySet<keyof typeof LOG_VERBS> = new Set(["logBatch"] as const);

/** Where handlers are registered: an `RpcServer`, or a {@link leaderGated} view of one. */
export type HandlerRegistry<T extends VerbTable> = Pick<RpcServer<T>, "handle" | "precheck">;

/**
 * A view of `server` whose handlers (and prechecks) of the `leaderOnly` verbs first call
 * `requireLeader`, which throws `NOT_LEADER` on a standby; the other verbs are registered as they are.
 */
export function leaderGated<T extends VerbTable>(
  server: RpcServer<T>,
  leaderOnly: ReadonlySet<string>,
  requireLeader: () => void,
): HandlerRegistry<T> {
  const view: HandlerRegistry<T> = {
    handle<V extends keyof T & string>(verb: V, handler: Handler<T, V>) {
      const gated: Handler<T, V> = leaderOnly.has(verb)
        ? (body, ctx) => {
            requireLeader();
            return handler(body, ctx);
          }
        : handler;
      server.handle(verb, gated);
      return view;
    },
    precheck(verb: keyof T & string, check: Precheck) {
      server.precheck(
        verb,
        leaderOnly.has(verb)
          ? (json, ctx) => {
              requireLeader();
              check(json, ctx);
            }
          : check,
      );
      return view;
    },
  } as HandlerRegistry<T>;
  return view;
}

import { LOG_VERBS, type LogVerbs, type ReplyOf, type RequestOf } from "../messages.js";
import type { Logger } from "../logging/logger.js";
import { clientEnv } from "../config/env.js";
import { endpointFor, withPort } from "./frames.js";
import { RpcClient, type RequestOptions, type RetryOptions } from "./rpc-client.js";
import { LeaderRpc } from "./leader-rpc.js";
import { LeaderWatch } from "./leader-watch.js";
import { findClientKey, type ClientKey } from "../security/key-file.js";

/** Options of {@link LogClient}. */
export interface LogClientOptions {
  /** @default env.CDKTR_PRINCIPAL_HOST ?? "127.0.0.1" */
  host?: string | undefined;
  /** @default env.CDKTR_LOGS_LISTENING_PORT ?? 5562 */
  port?: number | undefined;
  /** Full endpoint; overrides host and port. */
  endpoint?: string | undefined;
  /**
   * The leader knowledge to follow (share the agent's {@link PrincipalClient.leaderWatch}): the
   * client sends to the leader's `logs` endpoint once known, and moves with it.
   * @default its own, told only by `NOT_LEADER` replies
   */
  leaderWatch?: LeaderWatch | undefined;
  /** How long one batch keeps looking for the leader (see {@link LeaderRpc}). @default 20000 */
  leaderWaitMs?: number | undefined;
  /** Time one attempt may take. @default 5000 */
  timeoutMs?: number | undefined;
  /** Retry policy (`logBatch` is idempotent on (runId, taskId, seq)). */
  retry?: RetryOptions | undefined;
  /** Requests larger than this are refused locally. @default 1048576 */
  maxMessageBytes?: number | undefined;
  /** @default noopLogger */
  logger?: Logger | undefined;
  /** Where `CDKTR_*` variables are read. @default process.env */
  env?: Record<string, string | undefined> | undefined;
  /**
   * The client's key (see {@link RpcClientOptions.key}); null for plaintext. Default: the file
   * named by `CDKTR_KEY_FILE`, else `<CDKTR_KEYS_DIR>/<keyName>.json` when it exists.
   */
  key?: ClientKey | null | undefined;
  /** The local key looked for when `key` is not given. @default "local-operator" */
  keyName?: string | undefined;
}

/**
 * Client of the principal's log-ingest channel (port 5562), used by agents to ship task output.
 * A standby's `NOT_LEADER` moves it to the leader's `logs` endpoint and the batch is resent
 * there (batches are idempotent on (runId, taskId, seq)).
 * @example
 * const logs = new LogClient({ logger });
 * await logs.logBatch({ agentId, lines });
 */
export class LogClient {
  private readonly rpc: LeaderRpc<LogVerbs>;

  /** @throws ConfigError when `CDKTR_*` variables are invalid */
  constructor(opts: LogClientOptions = {}) {
    let endpoint = opts.endpoint;
    if (endpoint === undefined) {
      const env = clientEnv(opts.env ?? process.env);
      const port = opts.port ?? env.logsPort;
      const first = env.endpoints[0];
      endpoint =
        opts.host === undefined && env.endpoints.length > 1 && first !== undefined
          ? withPort(first, port)
          : endpointFor(opts.host ?? env.host, port);
    }
    const key =
      opts.key !== undefined ? opts.key : findClientKey(opts.keyName ?? "local-operator", opts.env ?? process.env);
    this.rpc = new LeaderRpc({
      endpoints: [endpoint],
      verbs: LOG_VERBS,
      watch: opts.leaderWatch ?? new LeaderWatch({ configured: null, logger: opts.logger }),
      pick: (l) => l.logs,
      connect: (ep, failFast) =>
        new RpcClient({
          endpoint: ep,
          key,
          verbs: LOG_VERBS,
          failFast,
          ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
          ...(opts.retry === undefined ? {} : { retry: opts.retry }),
          ...(opts.maxMessageBytes === undefined ? {} : { maxMessageBytes: opts.maxMessageBytes }),
          ...(opts.logger === undefined ? {} : { logger: opts.logger }),
        }),
      leaderWaitMs: opts.leaderWaitMs,
      baseDelayMs: opts.retry?.baseDelayMs,
      maxDelayMs: opts.retry?.maxDelayMs,
      logger: opts.logger,
    });
  }

  /** The log-ingest endpoint batches go to now, e.g. `tcp://127.0.0.1:5562`. */
  get endpoint(): string {
    return this.rpc.endpoint;
  }

  /** Ship log lines; resolves once the principal committed them. */
  logBatch(req: RequestOf<LogVerbs, "logBatch">, opts?: RequestOptions): Promise<ReplyOf<LogVerbs, "logBatch">> {
    return this.rpc.request("logBatch", req, opts);
  }

  /** Liveness of the log-ingest channel. */
  ping(opts?: RequestOptions): Promise<ReplyOf<LogVerbs, "ping">> {
    return this.rpc.request("ping", {}, opts);
  }

  /** Send any verb of the log channel. */
  request<V extends keyof LogVerbs & string>(
    verb: V,
    body: RequestOf<LogVerbs, V>,
    opts?: RequestOptions,
  ): Promise<ReplyOf<LogVerbs, V>> {
    return this.rpc.request(verb, body, opts);
  }

  /** Close the socket. Idempotent. */
  close(): void {
    this.rpc.close();
  }
}

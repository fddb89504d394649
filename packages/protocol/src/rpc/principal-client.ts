import { randomUUID } from "node:crypto";
import { API_VERBS, type ApiVerbs, type ReplyOf, type RequestOf } from "../messages.js";
import type { Logger } from "../logging/logger.js";
import { clientEnv } from "../config/env.js";
import { endpointFor } from "./frames.js";
import { RpcClient, type RequestOptions, type RetryOptions } from "./rpc-client.js";
import { findClientKey, type ClientKey } from "../security/key-file.js";
import type { KeyIdentity } from "../security/identity.js";

/** Options of {@link PrincipalClient}. */
export interface PrincipalClientOptions {
  /** @default env.CDKTR_PRINCIPAL_HOST ?? "127.0.0.1" */
  host?: string | undefined;
  /** @default env.CDKTR_PRINCIPAL_PORT ?? 5561 */
  port?: number | undefined;
  /** Full endpoint; overrides host and port. */
  endpoint?: string | undefined;
  /** Time one attempt may take. @default 5000 */
  timeoutMs?: number | undefined;
  /** Retry of idempotent verbs. @default { attempts: 3, baseDelayMs: 200, maxDelayMs: 2000 } */
  retry?: RetryOptions | undefined;
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

type Req<V extends keyof ApiVerbs> = RequestOf<ApiVerbs, V>;
type Rep<V extends keyof ApiVerbs> = ReplyOf<ApiVerbs, V>;

/**
 * Typed client of the principal's API (port 5561): one method per verb over one persistent
 * {@link RpcClient}. Every method rejects with a {@link CdktrError}.
 *
 * @example
 * const principal = new PrincipalClient({ logger });
 * const { runId } = await principal.runWorkflow({ workflowId: "etl", source: "cli" });
 * principal.close();
 */
export class PrincipalClient {
  /** The principal's endpoint, e.g. `tcp://127.0.0.1:5561`. */
  readonly endpoint: string;
  private readonly rpc: RpcClient<ApiVerbs>;
  private readonly timeoutMs: number;

  /** @throws ConfigError when `CDKTR_PRINCIPAL_*` variables are invalid */
  constructor(opts: PrincipalClientOptions = {}) {
    let endpoint = opts.endpoint;
    if (endpoint === undefined) {
      const env = clientEnv(opts.env ?? process.env);
      endpoint = endpointFor(opts.host ?? env.host, opts.port ?? env.port);
    }
    this.endpoint = endpoint;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.rpc = new RpcClient({
      endpoint,
      key: opts.key !== undefined ? opts.key : findClientKey(opts.keyName ?? "local-operator", opts.env ?? process.env),
      verbs: API_VERBS,
      timeoutMs: this.timeoutMs,
      ...(opts.retry === undefined ? {} : { retry: opts.retry }),
      ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    });
  }

  /**
   * Who the principal knows this client as: the identity `hello` proved (name, role, scope,
   * workflows). Null before the first request, and without a key (plaintext).
   */
  get identity(): KeyIdentity | null {
    return this.rpc.identity;
  }

  /** Send any verb (see {@link RpcClient.request}). */
  request<V extends keyof ApiVerbs & string>(verb: V, body: Req<V>, opts?: RequestOptions): Promise<Rep<V>> {
    return this.rpc.request(verb, body, opts);
  }

  /** Liveness and identity of the principal. */
  ping(opts?: RequestOptions): Promise<Rep<"ping">> {
    return this.rpc.request("ping", {}, opts);
  }

  /** Workflow definitions (all, or changed since `sinceVersion`) and load errors. */
  listWorkflows(req: Req<"listWorkflows"> = {}, opts?: RequestOptions): Promise<Rep<"listWorkflows">> {
    return this.rpc.request("listWorkflows", req, opts);
  }

  /** One workflow definition. @throws CdktrError `WORKFLOW_NOT_FOUND` */
  getWorkflow(workflowId: string, opts?: RequestOptions): Promise<Rep<"getWorkflow">> {
    return this.rpc.request("getWorkflow", { workflowId }, opts);
  }

  /**
   * Trigger a run. Without `idempotencyKey` a key `auto:<uuid>` is generated once and reused on
   * every retry, so a lost reply never creates a second run.
   * @throws CdktrError `WORKFLOW_NOT_FOUND`, `INVALID_PARAMS`, `IDEMPOTENCY_CONFLICT`
   */
  runWorkflow(req: Req<"runWorkflow">, opts?: RequestOptions): Promise<Rep<"runWorkflow">> {
    const body = req.idempotencyKey === undefined ? { ...req, idempotencyKey: `auto:${randomUUID()}` } : req;
    return this.rpc.request("runWorkflow", body, opts);
  }

  /** Cancel a queued or running run (harmless when already finished). @throws CdktrError `RUN_NOT_FOUND` */
  cancelRun(runId: string, opts?: RequestOptions): Promise<Rep<"cancelRun">> {
    return this.rpc.request("cancelRun", { runId }, opts);
  }

  /** A run and its task rows. @throws CdktrError `RUN_NOT_FOUND` */
  getRun(runId: string, opts?: RequestOptions): Promise<Rep<"getRun">> {
    return this.rpc.request("getRun", { runId }, opts);
  }

  /** Runs, filtered and paged. */
  listRuns(req: Req<"listRuns"> = {}, opts?: RequestOptions): Promise<Rep<"listRuns">> {
    return this.rpc.request("listRuns", req, opts);
  }

  /** Stored log lines, filtered and paged. */
  queryLogs(req: Req<"queryLogs"> = {}, opts?: RequestOptions): Promise<Rep<"queryLogs">> {
    return this.rpc.request("queryLogs", req, opts);
  }

  /** Agent: announce itself (at start, and when a heartbeat reply says `reregister`). */
  registerAgent(req: Req<"registerAgent">, opts?: RequestOptions): Promise<Rep<"registerAgent">> {
    return this.rpc.request("registerAgent", req, opts);
  }

  /** Agent: periodic liveness with the running run ids. */
  heartbeat(req: Req<"heartbeat">, opts?: RequestOptions): Promise<Rep<"heartbeat">> {
    return this.rpc.request("heartbeat", req, opts);
  }

  /**
   * Agent: long-poll for a run. Never retried (a resend could take a second run). Unless
   * `opts.timeoutMs` is given, the attempt may take `req.waitMs` plus the client's timeout.
   */
  fetchWork(req: Req<"fetchWork">, opts: RequestOptions = {}): Promise<Rep<"fetchWork">> {
    const timeoutMs = opts.timeoutMs ?? req.waitMs + this.timeoutMs;
    return this.rpc.request("fetchWork", req, { ...opts, timeoutMs });
  }

  /** Agent: accept an assignment before starting it. @throws CdktrError `STALE_ASSIGNMENT` */
  confirmAssignment(req: Req<"confirmAssignment">, opts?: RequestOptions): Promise<Rep<"confirmAssignment">> {
    return this.rpc.request("confirmAssignment", req, opts);
  }

  /** Agent: report a run's state. */
  runStatus(req: Req<"runStatus">, opts?: RequestOptions): Promise<Rep<"runStatus">> {
    return this.rpc.request("runStatus", req, opts);
  }

  /** Agent: report a task's state. */
  taskStatus(req: Req<"taskStatus">, opts?: RequestOptions): Promise<Rep<"taskStatus">> {
    return this.rpc.request("taskStatus", req, opts);
  }

  /** One page of the registered agents (`{}`: the first); follow `nextCursor` for the others. */
  listAgents(req: Req<"listAgents"> = {}, opts?: RequestOptions): Promise<Rep<"listAgents">> {
    return this.rpc.request("listAgents", req, opts);
  }

  /** Every registered agent, following the pages of {@link listAgents}. */
  async allAgents(opts?: RequestOptions): Promise<Rep<"listAgents">["agents"]> {
    const agents: Rep<"listAgents">["agents"] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await this.listAgents(cursor === undefined ? {} : { cursor }, opts);
      agents.push(...page.agents);
      if (page.nextCursor === null || page.agents.length === 0) return agents;
      cursor = page.nextCursor;
    }
  }

  /** Close the socket; pending calls reject with `CLOSED`. Idempotent. */
  close(): void {
    this.rpc.close();
  }
}

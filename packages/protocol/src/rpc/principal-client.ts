import { randomUUID } from "node:crypto";
import type { AdvertisedEndpoints } from "../errors.js";
import { API_VERBS, type ApiVerbs, type ReplyOf, type RequestOf } from "../messages.js";
import type { Logger } from "../logging/logger.js";
import { clientEnv } from "../config/env.js";
import { endpointFor, withPort } from "./frames.js";
import { RpcClient, type RequestOptions, type RetryOptions } from "./rpc-client.js";
import { LeaderRpc } from "./leader-rpc.js";
import { LeaderWatch, type LeaderListener } from "./leader-watch.js";
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
  /**
   * API endpoints of several principals sharing one database (`tcp://host:port`); the client
   * moves to whichever leads. Overrides `endpoint`, host and port.
   * @default env.CDKTR_PRINCIPAL_ENDPOINTS, else the one endpoint of the options above
   */
  endpoints?: readonly string[] | undefined;
  /**
   * Port of log ingest and of publishing on a principal that does not advertise them (older
   * principals): its API host with these ports.
   * @default env.CDKTR_LOGS_LISTENING_PORT ?? 5562, env.CDKTR_LOGS_PUBLISHING_PORT ?? 5563
   */
  logsPort?: number | undefined;
  /** See {@link logsPort}. */
  publishPort?: number | undefined;
  /** Time one attempt may take. @default 5000 */
  timeoutMs?: number | undefined;
  /** Retry of idempotent verbs. @default { attempts: 3, baseDelayMs: 200, maxDelayMs: 2000 } */
  retry?: RetryOptions | undefined;
  /**
   * How long one call keeps looking for the leader among the principals (through `NOT_LEADER`
   * replies, elections and silent principals). @default 20000
   */
  leaderWaitMs?: number | undefined;
  /**
   * false: talk to this one principal only, and see its `NOT_LEADER` errors (for diagnostics and
   * tests that address a standby on purpose). @default true
   */
  followLeader?: boolean | undefined;
  /**
   * The leader knowledge to share (e.g. with a {@link LogClient} built with the same one).
   * @default a new one, seeded with the single configured principal (none with several)
   */
  leaderWatch?: LeaderWatch | undefined;
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
 * A fresh idempotency key for a trigger that names none: `auto:<time>-<uuid>`, the time in
 * base-36 milliseconds of fixed width first, so the keys of a client sort by time and land at
 * the end of the principal's key index (random keys land anywhere: every commit then rewrites
 * pages all over it), then a random UUID.
 */
export function autoIdempotencyKey(): string {
  return `auto:${Date.now().toString(36).padStart(9, "0")}-${randomUUID()}`;
}

/**
 * Typed client of the principal's API (port 5561): one method per verb. Every method rejects
 * with a {@link CdktrError}.
 *
 * With several principals (`endpoints`, `CDKTR_PRINCIPAL_ENDPOINTS`) it follows the leader:
 * `NOT_LEADER` sends the request on to the leader it names, silence moves to the next
 * principal, and `ping`/`registerAgent` replies teach it the leader's log and publish
 * endpoints ({@link leader}, {@link onLeaderChange}); see {@link LeaderRpc}.
 *
 * @example
 * const principal = new PrincipalClient({ logger });
 * const { runId } = await principal.runWorkflow({ workflowId: "etl", source: "cli" });
 * principal.close();
 */
export class PrincipalClient {
  /** The shared knowledge of which principal leads (see {@link LeaderWatch}). */
  readonly leaderWatch: LeaderWatch;
  private readonly rpc: LeaderRpc<ApiVerbs>;
  private readonly timeoutMs: number;
  private readonly advertised: (api: string) => AdvertisedEndpoints;
  /** When the last `ping` asking for an unknown leader was sent (ms since epoch). */
  private askedLeaderAt = 0;

  /** @throws ConfigError when `CDKTR_PRINCIPAL_*` variables are invalid */
  constructor(opts: PrincipalClientOptions = {}) {
    const env = opts.env ?? process.env;
    let endpoints: readonly string[];
    if (opts.endpoints !== undefined && opts.endpoints.length > 0) endpoints = opts.endpoints;
    else if (opts.endpoint !== undefined) endpoints = [opts.endpoint];
    else if (opts.host !== undefined || opts.port !== undefined) {
      const e = clientEnv(env);
      endpoints = [endpointFor(opts.host ?? e.host, opts.port ?? e.port)];
    } else endpoints = clientEnv(env).endpoints;
    const ports = sidePorts(opts, env);
    this.advertised = (api) => ({
      api,
      logs: withPort(api, ports.logsPort),
      publish: withPort(api, ports.publishPort),
    });
    const logger = opts.logger;
    this.leaderWatch =
      opts.leaderWatch ??
      new LeaderWatch({
        configured: endpoints.length === 1 && endpoints[0] !== undefined ? this.advertised(endpoints[0]) : null,
        logger,
      });
    this.timeoutMs = opts.timeoutMs ?? 5000;
    const key = opts.key !== undefined ? opts.key : findClientKey(opts.keyName ?? "local-operator", env);
    this.rpc = new LeaderRpc({
      endpoints,
      verbs: API_VERBS,
      watch: this.leaderWatch,
      pick: (l) => l.api,
      connect: (endpoint, failFast) =>
        new RpcClient({
          endpoint,
          key,
          verbs: API_VERBS,
          timeoutMs: this.timeoutMs,
          failFast,
          ...(opts.retry === undefined ? {} : { retry: opts.retry }),
          ...(logger === undefined ? {} : { logger }),
        }),
      leaderWaitMs: opts.leaderWaitMs,
      followLeader: opts.followLeader,
      baseDelayMs: opts.retry?.baseDelayMs,
      maxDelayMs: opts.retry?.maxDelayMs,
      onReply: (verb, reply, endpoint) => this.learn(verb, reply, endpoint),
      logger,
    });
  }

  /** The endpoint requests go to now, e.g. `tcp://127.0.0.1:5561` (the leader, once known). */
  get endpoint(): string {
    return this.rpc.endpoint;
  }

  /** Every API endpoint known: the configured ones, then the leaders learned since. */
  get endpoints(): readonly string[] {
    return this.rpc.endpoints;
  }

  /** The known leader's endpoints; null while no principal leads or none is known yet. */
  get leader(): AdvertisedEndpoints | null {
    return this.leaderWatch.leader;
  }

  /**
   * Call `listener` whenever the leader changes (see {@link LeaderWatch.onChange}).
   * @returns a function that removes it
   */
  onLeaderChange(listener: LeaderListener): () => void {
    return this.leaderWatch.onChange(listener);
  }

  /**
   * Ask for the leader now (a `ping`, which any principal answers) and return it; falls back to
   * {@link LeaderWatch.best} when the ping fails or no principal leads.
   */
  async findLeader(opts?: RequestOptions): Promise<AdvertisedEndpoints | null> {
    try {
      await this.ping(opts);
    } catch {
      // the best guess below
    }
    return this.leaderWatch.best;
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
    const unkeyed = (item: unknown): boolean => (item as { idempotencyKey?: unknown }).idempotencyKey === undefined;
    const unkeyedRun =
      (verb === "runWorkflow" && unkeyed(body)) ||
      (verb === "runWorkflows" && ((body as { items?: unknown[] }).items ?? []).some(unkeyed));
    return this.rpc.request(verb, body, opts, !unkeyedRun);
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
   * Trigger a run. Without `idempotencyKey` a key {@link autoIdempotencyKey} is generated once and reused on
   * every retry, so a lost reply never creates a second run.
   * @throws CdktrError `WORKFLOW_NOT_FOUND`, `INVALID_PARAMS`, `IDEMPOTENCY_CONFLICT`
   */
  runWorkflow(req: Req<"runWorkflow">, opts?: RequestOptions): Promise<Rep<"runWorkflow">> {
    const body = req.idempotencyKey === undefined ? { ...req, idempotencyKey: autoIdempotencyKey() } : req;
    return this.rpc.request("runWorkflow", body, opts);
  }

  /**
   * Trigger many runs in one request, stored together (one commit, a few for a large batch; at
   * most `MAX_BATCH_TRIGGERS`, 1000, items). Each item is answered on its own, in order:
   * `{ ok: true, runId, duplicate, skipped, status }` or `{ ok: false, error }` (the codes of
   * {@link runWorkflow}); one refused item never fails the others. Items without `idempotencyKey` get an {@link autoIdempotencyKey} once, reused on
   * every retry of the request.
   * @throws CdktrError for the request as a whole only (`BAD_REQUEST` for an empty or oversized
   * list, `PERMISSION_DENIED` for a key whose role may not trigger, `NOT_LEADER`, transport errors)
   */
  runWorkflows(items: Req<"runWorkflow">[], opts?: RequestOptions): Promise<Rep<"runWorkflows">> {
    const keyed = items.map((req) =>
      req.idempotencyKey === undefined ? { ...req, idempotencyKey: autoIdempotencyKey() } : req,
    );
    return this.rpc.request("runWorkflows", { items: keyed }, opts);
  }

  /** Cancel a queued or running run (harmless when already finished). @throws CdktrError `RUN_NOT_FOUND` */
  cancelRun(runId: string, opts?: RequestOptions & { actor?: string }): Promise<Rep<"cancelRun">> {
    const { actor, ...rest } = opts ?? {};
    return this.rpc.request("cancelRun", actor === undefined ? { runId } : { runId, actor }, rest);
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

  /** Close the sockets; pending calls reject with `CLOSED`. Idempotent. */
  close(): void {
    this.rpc.close();
  }

  /** What a successful reply from `endpoint` says about the leader. */
  private learn(verb: string, reply: unknown, endpoint: string): void {
    // A principal that leads is reached where it answered (its advertised API address may be a
    // name this client does not use); its log and publish endpoints are the advertised ones.
    const leading = (advertised: AdvertisedEndpoints | null | undefined): void => {
      this.leaderWatch.set({ ...(advertised ?? this.advertised(endpoint)), api: endpoint });
    };
    if (verb === "ping") {
      const r = reply as Rep<"ping">;
      if (r.role === "standby") this.leaderWatch.set(r.leader ?? null);
      else leading(r.leader);
    } else if (verb === "registerAgent") {
      // Only the leader registers agents.
      leading((reply as Rep<"registerAgent">).leader);
    } else if (this.leaderWatch.leader === null && this.rpc.endpoints.length > 1) {
      // Reads are answered by standbys too, so a client that only reads would never hear of a
      // new leader: ask (at most once a second) while none is known.
      const now = Date.now();
      if (now - this.askedLeaderAt >= 1000) {
        this.askedLeaderAt = now;
        this.ping().catch(() => undefined);
      }
    }
  }
}

/** The log and publish ports of a principal that does not advertise its endpoints. */
function sidePorts(
  opts: { logsPort?: number | undefined; publishPort?: number | undefined },
  env: Record<string, string | undefined>,
): { logsPort: number; publishPort: number } {
  let e: { logsPort: number; publishPort: number } = { logsPort: 5562, publishPort: 5563 };
  if (opts.logsPort === undefined || opts.publishPort === undefined) {
    try {
      e = clientEnv(env);
    } catch {
      // invalid settings were reported where they matter; the defaults serve this guess
    }
  }
  return { logsPort: opts.logsPort ?? e.logsPort, publishPort: opts.publishPort ?? e.publishPort };
}

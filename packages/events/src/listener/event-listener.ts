import { randomUUID } from "node:crypto";
import {
  CdktrError,
  MAX_BATCH_TRIGGERS,
  PrincipalClient,
  Subscriber,
  backoffDelay,
  clientEnv,
  coerceError,
  findClientKey,
  noopLogger,
  toCdktrError,
  type ApiVerbs,
  type ClientKey,
  type LeaderWatch,
  type Logger,
  type Params,
  type ReplyOf,
  type RequestOf,
  type RunStatus,
  type Upstream,
} from "@cdktr/protocol";
import { TypedEmitter } from "./typed-emitter.js";

/**
 * Where the principal listens. Unset fields come from `CDKTR_PRINCIPAL_ENDPOINTS` (several
 * principals: the listener follows whichever leads), else `CDKTR_PRINCIPAL_HOST` / `_PORT`.
 */
export interface PrincipalAddress {
  /** @default env.CDKTR_PRINCIPAL_HOST ?? "127.0.0.1" */
  host?: string;
  /** @default env.CDKTR_PRINCIPAL_PORT ?? 5561 */
  port?: number;
  /** API endpoints of several principals (`tcp://host:port`); overrides host and port. */
  endpoints?: readonly string[];
}

/**
 * What a listener needs from a principal connection: `PrincipalClient` from `@cdktr/protocol`
 * has this shape. Any object implementing it can be passed (e.g. a shared client).
 */
export interface PrincipalRequester {
  request<V extends keyof ApiVerbs & string>(
    verb: V,
    body: RequestOf<ApiVerbs, V>,
    opts?: { timeoutMs?: number; retry?: boolean },
  ): Promise<ReplyOf<ApiVerbs, V>>;
  close(): void;
  /** The principal's endpoint, e.g. `tcp://127.0.0.1:5561`, when known. */
  readonly endpoint?: string;
  /** Several principals: the knowledge of which leads (subscribers follow its moves). */
  readonly leaderWatch?: LeaderWatch;
}

/** Options of {@link EventListener}. */
export interface EventListenerOptions {
  /**
   * The principal: an address, or a client to share (the listener never closes a client it
   * did not create). @default the address from `CDKTR_PRINCIPAL_ENDPOINTS`, else
   * `CDKTR_PRINCIPAL_HOST`/`CDKTR_PRINCIPAL_PORT`
   */
  principal?: PrincipalAddress | PrincipalRequester;
  /** @default a logger that drops everything */
  logger?: Logger;
  /** Default `source` of the runs this listener triggers. @default the class name, or "listener" */
  source?: string;
  /** Time one attempt of a request may take. @default 5000 */
  timeoutMs?: number;
  /** Where `CDKTR_*` variables are read. @default process.env */
  env?: Record<string, string | undefined>;
  /** How long {@link EventListener.stop} waits for `startListening` to return. @default 10000 */
  stopTimeoutMs?: number;
  /**
   * The listener's key (CURVE to the pinned principal key, proven with `hello`); null for a
   * principal running with `CDKTR_AUTH=off`. Unused when `principal` is a client.
   * @default the file named by `CDKTR_KEY_FILE`, else `<CDKTR_KEYS_DIR or ~/.cdktr/keys>/<keyName>.json`
   *   (made by a principal started on this machine with the same HOME)
   */
  key?: ClientKey | null;
  /** The local key looked for when `key` is not given. @default "local-listeners" (a `trigger` key) */
  keyName?: string;
}

/** The local key an {@link EventListener} looks for when given none. */
export const LISTENER_KEY_NAME = "local-listeners";

/** Options of {@link EventListener.runWorkflow}. */
export interface RunWorkflowOptions {
  /** Run parameters, checked by the principal against the workflow's `params`. */
  params?: Params;
  /**
   * Same key, same run: a retried or repeated trigger with this key never creates a second run.
   * @default a fresh UUID per call (reused by the call's own retries)
   */
  idempotencyKey?: string;
  /** Who triggered the run, shown in `cdktr runs`. @default the listener's `source` */
  source?: string;
  /** The occurrence this trigger stands for (cron-like listeners). */
  scheduledFor?: Date | string;
  /**
   * The finished run whose outcome this trigger follows (chaining): the principal checks it and
   * the new run's tasks see it as `CDKTR_UPSTREAM_*`.
   */
  upstream?: Upstream;
  /** Time one attempt may take. @default the listener's `timeoutMs` */
  timeoutMs?: number;
  /**
   * Give up at this instant (epoch ms or Date): every attempt and retry ends by then (each
   * attempt's `timeoutMs` is capped by the time left). Already past: `DEADLINE_EXCEEDED`.
   */
  deadline?: number | Date;
  /** Retry timeouts and retryable errors (safe: the idempotency key is reused). @default true */
  retry?: boolean;
}

/** One trigger of {@link EventListener.runWorkflows}: a workflow and its per-trigger options. */
export interface BatchTrigger
  extends Pick<RunWorkflowOptions, "params" | "idempotencyKey" | "source" | "scheduledFor" | "upstream"> {
  workflowId: string;
}

/** Options of {@link EventListener.runWorkflows}, for the whole batch. */
export type RunWorkflowsOptions = Pick<RunWorkflowOptions, "timeoutMs" | "deadline" | "retry">;

/** The structured error of a failed {@link TriggerResult}. */
export interface TriggerError {
  /** Stable code: `WORKFLOW_NOT_FOUND`, `INVALID_PARAMS`, `TIMEOUT`, `UNAVAILABLE`, ... */
  code: string;
  message: string;
  /** True when sending the same trigger again later may succeed. */
  retryable: boolean;
}

/**
 * What {@link EventListener.runWorkflow} returns. It never throws: a refusal by the principal
 * and a transport failure are results too.
 */
export interface TriggerResult {
  /** The principal accepted the trigger and recorded a run (new, duplicate or skipped). */
  success: boolean;
  /** The run's id when `success`. */
  runId: string | null;
  /** The idempotency key was seen before: `runId` is the earlier run. */
  duplicate: boolean;
  /** Refused by the workflow's `skip` overlap policy: recorded as SKIPPED, will not run. */
  skipped: boolean;
  /** The run's status when `success`. */
  status: RunStatus | null;
  workflowId: string;
  /** The key that was sent. */
  idempotencyKey: string;
  /** Why it failed, when `success` is false. */
  error?: TriggerError;
}

/** Why a listener turned an event away before triggering anything (the `rejected` event). */
export interface RejectedEvent {
  /**
   * A short code, the same for the same cause (`malformed`, `signature`, `replayed`,
   * `too_large`, `not_found`, `method`, `not_allowed`, `no_key`, `unrecordable`...): a metric label.
   */
  reason: string;
  /** What was wrong, for people. */
  message: string;
}

/** Events every listener emits. */
export interface EventListenerEvents {
  /**
   * After every {@link EventListener.runWorkflow} call and for every trigger of
   * {@link EventListener.runWorkflows}, successful or not.
   */
  triggered: TriggerResult;
  /**
   * An event the listener received and turned away before any trigger (see
   * {@link EventListener.rejectEvent}): nothing was sent to the principal for it.
   */
  rejected: RejectedEvent;
  /** `startListening` threw, or a listener reported a problem. */
  error: Error;
  /** The listening loop has ended (stopped, returned or failed). */
  stopped: { error: Error | null };
}

type State = "idle" | "running" | "stopping";

/** Backoff between the attempts of a trigger with a deadline: 200 ms doubling up to 2 s, with jitter. */
const REQUEST_BACKOFF = { initialMs: 200, maxMs: 2000 } as const;

/** The result of a trigger the principal accepted. */
function accepted(
  body: { workflowId: string; idempotencyKey: string },
  reply: ReplyOf<ApiVerbs, "runWorkflow">,
): TriggerResult {
  return {
    workflowId: body.workflowId,
    idempotencyKey: body.idempotencyKey,
    success: true,
    runId: reply.runId,
    duplicate: reply.duplicate,
    skipped: reply.skipped,
    status: reply.status,
  };
}

/** The result of a trigger that failed with `e`. */
function refused(body: { workflowId: string; idempotencyKey: string }, e: unknown): TriggerResult {
  const err = toCdktrError(e);
  return {
    workflowId: body.workflowId,
    idempotencyKey: body.idempotencyKey,
    success: false,
    runId: null,
    duplicate: false,
    skipped: false,
    status: null,
    error: { code: err.code, message: err.message, retryable: err.retryable },
  };
}

function isRequester(p: PrincipalAddress | PrincipalRequester): p is PrincipalRequester {
  return typeof (p as { request?: unknown }).request === "function";
}

/**
 * Base class of every event listener: implement {@link startListening} (your event-detection
 * loop) and call {@link runWorkflow} whenever an event should start a workflow.
 *
 * @example
 * class Every10s extends EventListener {
 *   protected async startListening(signal: AbortSignal) {
 *     while (!signal.aborted) {
 *       await this.runWorkflow("etl.nightly");
 *       await sleep(10_000, signal);
 *     }
 *   }
 * }
 * await runListener(new Every10s());
 */
export abstract class EventListener<E extends EventListenerEvents = EventListenerEvents> extends TypedEmitter<E> {
  /** Logger given in the options (never `console`). */
  protected readonly logger: Logger;
  /** Default `source` label of triggered runs. */
  protected readonly source: string;
  readonly #principalOption: PrincipalAddress | PrincipalRequester | undefined;
  readonly #env: Record<string, string | undefined>;
  readonly #timeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #keyOption: ClientKey | null | undefined;
  readonly #keyName: string;
  #key: ClientKey | null | undefined;
  #client: PrincipalRequester | null = null;
  #ownsClient = false;
  #state: State = "idle";
  #controller: AbortController | null = null;
  #loop: Promise<Error | null> | null = null;

  constructor(options: EventListenerOptions = {}) {
    super();
    this.logger = options.logger ?? noopLogger;
    const className = new.target.name;
    this.source = options.source ?? (className.length > 0 ? className : "listener");
    this.#principalOption = options.principal;
    this.#env = options.env ?? process.env;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.#keyOption = options.key;
    this.#keyName = options.keyName ?? LISTENER_KEY_NAME;
  }

  /**
   * The key of this listener's connections: the `key` option, else the local key `keyName` (or
   * `CDKTR_KEY_FILE`) found from `env`, looked up once; null without one.
   * @throws KeyFileError when the key file named by `CDKTR_KEY_FILE`, or the local one, is unusable
   */
  protected get clientKey(): ClientKey | null {
    if (this.#key === undefined)
      this.#key = this.#keyOption !== undefined ? this.#keyOption : findClientKey(this.#keyName, this.#env);
    return this.#key;
  }

  /**
   * Your event-detection loop. Runs from {@link start} until `signal` aborts ({@link stop});
   * return (or reject) when it does. Returning early ends the listener.
   */
  protected abstract startListening(signal: AbortSignal): Promise<void>;

  /** True between {@link start} and the end of the listening loop. */
  get running(): boolean {
    return this.#state !== "idle";
  }

  /**
   * The connection to the principal, created on first use.
   * @throws ConfigError when `CDKTR_PRINCIPAL_*` variables are invalid
   */
  protected get principal(): PrincipalRequester {
    if (this.#client === null) {
      const p = this.#principalOption;
      if (p !== undefined && isRequester(p)) {
        this.#client = p;
        this.#ownsClient = false;
      } else {
        this.#client = new PrincipalClient({
          ...(p?.endpoints === undefined ? {} : { endpoints: p.endpoints }),
          ...(p?.host === undefined ? {} : { host: p.host }),
          ...(p?.port === undefined ? {} : { port: p.port }),
          timeoutMs: this.#timeoutMs,
          logger: this.logger,
          env: this.#env,
          key: this.clientKey,
        });
        this.#ownsClient = true;
      }
    }
    return this.#client;
  }

  /** The principal address given in the options (`{}` when none, or when a client was given). */
  protected get principalAddress(): PrincipalAddress | undefined {
    const p = this.#principalOption;
    return p === undefined || isRequester(p) ? {} : p;
  }

  /** Where `CDKTR_*` variables are read. */
  protected get env(): Record<string, string | undefined> {
    return this.#env;
  }

  /**
   * A connected subscriber to the principal's publish channel, with this listener's key: at
   * `option.endpoint`, else the principal's host and `CDKTR_LOGS_PUBLISHING_PORT`; with several principals
   * it follows the leader (calling `onLeaderMove` after each move, when what was published during
   * the move is lost). Closed by the caller. Null, logged as `what` at warn, when the endpoint
   * cannot be worked out.
   */
  protected openSubscriber(
    option: { endpoint: string } | undefined,
    signal: AbortSignal,
    what: string,
    onLeaderMove?: () => void,
  ): Subscriber | null {
    let endpoint: string;
    try {
      if (option !== undefined) endpoint = option.endpoint;
      else {
        const env = clientEnv(this.env);
        const host = this.principalAddress?.host ?? hostOf(this.principal.endpoint) ?? env.host;
        endpoint = `tcp://${host}:${env.publishPort}`;
      }
    } catch (e) {
      this.logger.warn(`${what}: cannot work out the publish endpoint`, { error: toCdktrError(e).message });
      return null;
    }
    const sub = new Subscriber({ endpoint, logger: this.logger, key: this.clientKey });
    sub.connect();
    const watch = this.principal.leaderWatch;
    const best = watch?.leader;
    if (option === undefined && best !== undefined && best !== null) sub.moveTo(best.publish);
    const unwatch = watch?.onChange((l) => {
      sub.moveTo(l.publish);
      onLeaderMove?.();
    });
    if (unwatch !== undefined) signal.addEventListener("abort", unwatch, { once: true });
    return sub;
  }

  /**
   * Report an event this listener received and turned away before any trigger (a bad signature,
   * a body that is not JSON, a message naming no workflow...): emits `rejected`, which the
   * listeners runner counts in `cdktr_listener_events_rejected_total`. A refusal by the principal
   * is not one of these: it is the `triggered` result.
   */
  protected rejectEvent(reason: string, message: string): void {
    this.emit("rejected", { reason, message });
  }

  /**
   * Ask the principal to run a workflow. Works before, after or without {@link start}.
   * Never throws: see {@link TriggerResult}.
   */
  async runWorkflow(workflowId: string, options: RunWorkflowOptions = {}): Promise<TriggerResult> {
    const body = this.#triggerBody({ ...options, workflowId });
    let result: TriggerResult;
    try {
      const reply = await this.#send("runWorkflow", body, options, `workflow ${workflowId} could be triggered`);
      result = accepted(body, reply);
    } catch (e) {
      result = refused(body, e);
    }
    this.emit("triggered", result);
    return result;
  }

  /**
   * Ask the principal to run many workflows in one request (`runWorkflows`: stored together, one
   * commit for all of them or a few for a large batch; more than 1,000 go in several requests).
   * Each trigger is answered on its own, in order, and one refused trigger never fails the others;
   * a failure of the request itself (timeout, principal down) is every trigger's result. Emits
   * `triggered` for each. Never throws.
   */
  async runWorkflows(triggers: readonly BatchTrigger[], options: RunWorkflowsOptions = {}): Promise<TriggerResult[]> {
    const bodies = triggers.map((t) => this.#triggerBody(t));
    const results: TriggerResult[] = [];
    for (let i = 0; i < bodies.length; i += MAX_BATCH_TRIGGERS) {
      const items = bodies.slice(i, i + MAX_BATCH_TRIGGERS);
      try {
        const reply = await this.#send(
          "runWorkflows",
          { items },
          options,
          `${items.length} workflows could be triggered`,
        );
        items.forEach((body, k) => {
          const r = reply.results[k];
          if (r === undefined)
            results.push(refused(body, new CdktrError("INTERNAL", "the principal's reply lacks this item")));
          else results.push(r.ok ? accepted(body, r) : refused(body, CdktrError.fromWire(r.error)));
        });
      } catch (e) {
        for (const body of items) results.push(refused(body, e));
      }
    }
    for (const r of results) this.emit("triggered", r);
    return results;
  }

  /** The `runWorkflow` request of one trigger (a fresh idempotency key when it has none). */
  #triggerBody(t: BatchTrigger): RequestOf<ApiVerbs, "runWorkflow"> & { idempotencyKey: string } {
    const scheduledFor =
      t.scheduledFor === undefined
        ? undefined
        : typeof t.scheduledFor === "string"
          ? t.scheduledFor
          : t.scheduledFor.toISOString();
    return {
      workflowId: t.workflowId,
      idempotencyKey: t.idempotencyKey ?? randomUUID(),
      source: t.source ?? this.source,
      ...(t.params === undefined ? {} : { params: t.params }),
      ...(scheduledFor === undefined ? {} : { scheduledFor }),
      ...(t.upstream === undefined ? {} : { upstream: t.upstream }),
    };
  }

  /** Send a trigger verb with the options' timeout, retry and deadline. */
  #send<V extends "runWorkflow" | "runWorkflows">(
    verb: V,
    body: RequestOf<ApiVerbs, V>,
    options: RunWorkflowsOptions,
    what: string,
  ): Promise<ReplyOf<ApiVerbs, V>> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    if (options.deadline === undefined) {
      return this.principal.request(verb, body, { timeoutMs, ...(options.retry === false ? { retry: false } : {}) });
    }
    return this.#requestBefore(verb, body, timeoutMs, options.deadline, options.retry !== false, what);
  }

  /**
   * Send a trigger verb with attempts (each at most `timeoutMs`) and backoff that all end by
   * `deadline`: retryable failures are retried while time is left (when `retry`), and the last
   * failure is returned once the deadline passed. The idempotency keys in `body` make retries safe.
   */
  async #requestBefore<V extends "runWorkflow" | "runWorkflows">(
    verb: V,
    body: RequestOf<ApiVerbs, V>,
    timeoutMs: number,
    deadlineOption: number | Date,
    retry: boolean,
    what: string,
  ): Promise<ReplyOf<ApiVerbs, V>> {
    const deadline = typeof deadlineOption === "number" ? deadlineOption : deadlineOption.getTime();
    for (let attempt = 1; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new CdktrError("DEADLINE_EXCEEDED", `the deadline passed before ${what}; give a later deadline`);
      }
      try {
        return await this.principal.request(verb, body, {
          timeoutMs: Math.min(timeoutMs, remaining),
          retry: false,
        });
      } catch (e) {
        const err = toCdktrError(e);
        const left = deadline - Date.now();
        const delay = backoffDelay(attempt, REQUEST_BACKOFF);
        if (!retry || !err.retryable || left <= delay) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /**
   * Start the listening loop in the background. Resolves once it is started; idempotent.
   * Errors of the loop are logged and emitted as `error`; see {@link done}.
   */
  async start(): Promise<void> {
    if (this.#state !== "idle") return;
    this.#state = "running";
    const controller = new AbortController();
    this.#controller = controller;
    this.#loop = (async (): Promise<Error | null> => {
      let error: Error | null = null;
      try {
        await this.startListening(controller.signal);
      } catch (e) {
        if (!controller.signal.aborted) {
          error = coerceError(e);
          this.logger.error("listener failed", { error: error.message });
          this.emit("error", error);
        }
      }
      this.#state = "idle";
      this.#closeClient();
      this.emit("stopped", { error });
      return error;
    })();
  }

  /**
   * Abort the listening loop and wait (at most `stopTimeoutMs`) for it to return; close the
   * principal connection if the listener created it. Idempotent.
   */
  async stop(): Promise<void> {
    const loop = this.#loop;
    if (this.#state === "idle" || loop === null) {
      this.#closeClient();
      return;
    }
    this.#state = "stopping";
    this.#controller?.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger.warn("listener did not stop in time", { stopTimeoutMs: this.#stopTimeoutMs });
        resolve();
      }, this.#stopTimeoutMs);
    });
    await Promise.race([loop, timeout]);
    clearTimeout(timer);
    this.#closeClient();
  }

  /**
   * Resolves when the listening loop ends: with null when it returned or was stopped, with the
   * error when it failed. Resolves at once with null when not started.
   */
  done(): Promise<Error | null> {
    return this.#loop ?? Promise.resolve(null);
  }

  #closeClient(): void {
    if (this.#client !== null && this.#ownsClient) this.#client.close();
    if (this.#ownsClient) this.#client = null;
  }
}

/**
 * Sleep `ms`, resolving early (without error) when `signal` aborts. A helper for listening loops.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** The host of a `tcp://host:port` endpoint. */
function hostOf(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined) return undefined;
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(endpoint);
  return m?.[1];
}

/**
 * A PostgreSQL event listener: `LISTEN <channel>` and trigger a run per `NOTIFY`.
 */
import pg from "pg";
import type { Notification } from "pg";
import type { Logger } from "@cdktr/protocol";
import { EventListener, sleep, type EventListenerOptions } from "../listener/event-listener.js";
import { UsageError, autoIdempotencyKey, backoffDelay, errorMessage, type BackoffOptions } from "@cdktr/protocol";
import { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";
import { EventMapping, type EventMappingSpec } from "../mapping/event-mapping.js";
import { resolveMessageTrigger } from "../mapping/message-trigger.js";
import { RETRYABLE_TRIGGER_CODES as RETRYABLE } from "../listener/source-common.js";

/** Options of {@link PostgresListener}. */
export interface PostgresListenerOptions extends EventListenerOptions {
  /**
   * Connection string, e.g. `postgresql://user@127.0.0.1:5432/db`. When absent, pg reads the
   * usual `PGHOST`/`PGUSER`/`PGDATABASE`/... variables.
   */
  connectionString?: string;
  /** Channel to `LISTEN` on (any name: it is quoted as an identifier). */
  channel: string;
  /** `application_name` of the listening session (visible in `pg_stat_activity`). @default "cdktr-listener" */
  applicationName?: string;
  /** Deadline of each run request to the principal. @default 5000 */
  triggerTimeoutMs?: number;
  /**
   * How long a notification is retried while the principal is unavailable (NOTIFY is not
   * redelivered, so it is dropped, and logged, after this). @default 60000
   */
  retryForMs?: number;
  /** Backoff of reconnects and trigger retries. @default {initialMs: 500, maxMs: 30000} */
  backoff?: BackoffOptions;
  /** Interval of a `SELECT 1` that detects a silently dead connection. @default 30000 */
  keepaliveMs?: number;
  /**
   * When set, only these workflow ids can be triggered: a notification for another workflow is
   * logged and dropped, never sent to the principal.
   */
  workflows?: readonly string[];
  /**
   * The workflow every notification triggers. Set: the payload is anything (JSON or text), mapped
   * into the run with {@link mapping}. Unset: each payload names its workflow.
   */
  workflow?: string;
  /**
   * With {@link workflow}: fixed params, params mapped from the notification, a `when` filter and
   * an idempotency key expression. The event document is `{body, channel}` (`body`: the JSON
   * payload, else its text).
   */
  mapping?: EventMappingSpec;
}

/** Counters of a {@link PostgresListener}. */
export interface PostgresListenerStats {
  /** Sessions that completed `LISTEN` (the first one included). */
  connections: number;
  /** True while a session is listening. */
  listening: boolean;
  /** Notifications that triggered (or matched, as duplicates) a run. */
  triggered: number;
  /** Notifications refused (malformed payload, not in `workflows`, unknown workflow, invalid params). */
  rejected: number;
  /** Notifications dropped after `retryForMs` of principal unavailability. */
  dropped: number;
  /** Notifications the mapping's `when` filter turned away (no run). */
  filtered: number;
}

/**
 * Listens for PostgreSQL notifications on one channel. The payload is a workflow id
 * (`NOTIFY cdktr, 'etl.daily'`) or the JSON trigger message
 * `{"workflow_id": "...", "params"?: {...}, "idempotency_key"?: "..."}`.
 *
 * The session reconnects and re-`LISTEN`s with backoff after any error (including
 * `pg_terminate_backend`). NOTIFY is fire-and-forget: notifications sent while this listener is
 * disconnected are NOT delivered to it later. With an `idempotency_key` the run's key is
 * `pg:<channel>:<key>`; otherwise each notification gets a fresh key, reused on its retries.
 * With `workflows`, a notification for a workflow outside that list is logged and dropped.
 */
export class PostgresListener extends EventListener {
  readonly #connectionString: string | undefined;
  readonly #channel: string;
  readonly #appName: string;
  readonly #timeout: number;
  readonly #retryFor: number;
  readonly #backoff: BackoffOptions;
  readonly #keepalive: number;
  readonly #allow: ReadonlySet<string> | null;
  readonly #workflow: string | undefined;
  readonly #mapping: EventMapping | null;
  readonly #stats: PostgresListenerStats = {
    connections: 0,
    listening: false,
    triggered: 0,
    rejected: 0,
    dropped: 0,
    filtered: 0,
  };
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: PostgresListenerOptions) {
    super({ ...options, source: options.source ?? "postgres" });
    if (options.channel === "")
      throw new UsageError("INVALID_ARGUMENT", "PostgresListener: `channel` must be a non-empty channel name");
    this.#connectionString = options.connectionString;
    this.#channel = options.channel;
    this.#appName = options.applicationName ?? "cdktr-listener";
    this.#timeout = options.triggerTimeoutMs ?? 5000;
    this.#retryFor = options.retryForMs ?? 60_000;
    this.#backoff = options.backoff ?? {};
    this.#keepalive = options.keepaliveMs ?? 30_000;
    this.#allow = options.workflows !== undefined ? new Set(options.workflows) : null;
    if (options.mapping !== undefined && options.workflow === undefined)
      throw new UsageError(
        "INVALID_ARGUMENT",
        "PostgresListener: `mapping` needs `workflow` (without it each payload names its workflow and params itself)",
      );
    this.#workflow = options.workflow;
    this.#mapping = options.mapping !== undefined ? EventMapping.compile(options.mapping, "mapping") : null;
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<PostgresListenerStats> {
    return { ...this.#stats };
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    const log = this.logger.child({ channel: this.#channel });
    let failures = 0;
    while (!signal.aborted) {
      const client = new pg.Client({
        ...(this.#connectionString !== undefined ? { connectionString: this.#connectionString } : {}),
        application_name: this.#appName,
        keepAlive: true,
      });
      let keepalive: NodeJS.Timeout | undefined;
      try {
        const lost = new Promise<string>((resolve) => {
          client.once("error", (e: Error) => resolve(e.message));
          client.once("end", () => resolve("connection ended"));
        });
        // Later errors after the first are expected while the session dies; keep them quiet.
        client.on("error", () => undefined);
        client.on("notification", (n: Notification) => {
          if (n.channel !== this.#channel) return;
          const p = this.#onNotification(n.payload ?? "", signal, log);
          this.#inFlight.add(p);
          void p.finally(() => this.#inFlight.delete(p));
        });
        await client.connect();
        await client.query(`LISTEN ${client.escapeIdentifier(this.#channel)}`);
        this.#stats.connections += 1;
        this.#stats.listening = true;
        failures = 0;
        log.info("postgres listening", { applicationName: this.#appName });
        keepalive = setInterval(() => {
          client.query("SELECT 1").catch(() => undefined);
        }, this.#keepalive);
        const aborted = new Promise<string>((resolve) => {
          if (signal.aborted) resolve("stopping");
          signal.addEventListener("abort", () => resolve("stopping"), { once: true });
        });
        const why = await Promise.race([lost, aborted]);
        if (signal.aborted) break;
        log.warn("postgres connection lost; reconnecting (notifications sent meanwhile are not delivered)", {
          reason: why,
        });
      } catch (e) {
        log.warn("postgres connection failed; retrying", { error: errorMessage(e) });
      } finally {
        this.#stats.listening = false;
        if (keepalive !== undefined) clearInterval(keepalive);
        await client.end().catch(() => undefined);
      }
      if (signal.aborted) break;
      failures += 1;
      await sleep(backoffDelay(failures, this.#backoff), signal);
    }
    await Promise.allSettled([...this.#inFlight]);
  }

  async #onNotification(payload: string, signal: AbortSignal, parentLog: Logger): Promise<void> {
    const resolved = resolveMessageTrigger(
      payload,
      { channel: this.#channel },
      {
        ...(this.#workflow !== undefined ? { workflow: this.#workflow } : {}),
        mapping: this.#mapping,
        allow: this.#allow,
        allowBareWorkflowId: true,
      },
    );
    if (!resolved.ok) {
      if (resolved.reason === "filtered") {
        this.#stats.filtered += 1;
        parentLog.debug("postgres notification filtered out by `when`");
        return;
      }
      this.#stats.rejected += 1;
      this.rejectEvent(resolved.reason, resolved.error);
      parentLog.warn(
        resolved.reason === "not_allowed"
          ? "postgres notification dropped: workflow not allowed on this listener"
          : "postgres notification rejected",
        { reason: resolved.reason, error: resolved.error },
      );
      return;
    }
    const { workflowId, params, key: idempotencyKey } = resolved;
    const log = parentLog.child({ workflowId });
    const key = scopedIdempotencyKey(`pg:${this.#channel}:`, idempotencyKey ?? autoIdempotencyKey());
    const giveUpAt = Date.now() + this.#retryFor;
    for (let attempt = 1; ; attempt++) {
      const result = await this.runWorkflow(workflowId, {
        ...(params !== undefined ? { params } : {}),
        idempotencyKey: key,
        retry: false,
        timeoutMs: this.#timeout,
      });
      if (result.success) {
        this.#stats.triggered += 1;
        log.info("postgres notification triggered a run", {
          runId: result.runId,
          duplicate: result.duplicate,
          skipped: result.skipped,
        });
        return;
      }
      const code = result.error?.code ?? "INTERNAL";
      if (!RETRYABLE.has(code) && result.error?.retryable !== true) {
        this.#stats.rejected += 1;
        log.warn("postgres notification rejected by the principal", { code, error: result.error?.message });
        return;
      }
      const delay = backoffDelay(attempt, this.#backoff);
      if (signal.aborted || Date.now() + delay > giveUpAt) {
        this.#stats.dropped += 1;
        log.error("postgres notification dropped: the principal stayed unavailable", {
          code,
          error: result.error?.message,
          idempotencyKey: key,
        });
        return;
      }
      log.warn("principal unavailable; retrying the notification", { code, attempt, retryInMs: delay });
      await sleep(delay, signal);
    }
  }
}

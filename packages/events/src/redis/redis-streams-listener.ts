/**
 * A Redis Streams event listener: one consumer of a consumer group on one stream, one run per entry.
 */
import { hostname } from "node:os";
import { Redis } from "ioredis";
import type { JSONValue } from "@jmespath-community/jmespath";
import { MAX_BATCH_TRIGGERS, UsageError, backoffDelay, errorMessage, type BackoffOptions } from "@cdktr/protocol";
import type { Logger } from "@cdktr/protocol";
import {
  EventListener,
  sleep,
  type BatchTrigger,
  type EventListenerOptions,
  type TriggerResult,
} from "../listener/event-listener.js";
import { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";
import { EventMapping, type EventMappingSpec } from "../mapping/event-mapping.js";
import { resolveMessageTrigger, type MessageTrigger } from "../mapping/message-trigger.js";
import { RETRYABLE_TRIGGER_CODES as RETRYABLE, redactUrl as redact } from "../listener/source-common.js";

/** Options of {@link RedisStreamsListener}. */
export interface RedisStreamsListenerOptions extends EventListenerOptions {
  /**
   * Redis URL, `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). Keep a password out
   * of files: read the URL from the environment. @default "redis://127.0.0.1:6379"
   */
  url?: string;
  /** The stream to consume (created, empty, with the group when it does not exist). */
  stream: string;
  /** Consumer group; created when missing (`XGROUP CREATE ... MKSTREAM`). @default "cdktr" */
  group?: string;
  /**
   * This listener's consumer name in the group. Keep it stable across restarts: a restarted
   * listener first re-handles the entries its previous life read but did not acknowledge. Two
   * listeners reading the same group at once must have different names.
   * @default the host name
   */
  consumer?: string;
  /**
   * Where a group created by this listener starts: `$` (entries added from now on), `0` (the
   * whole stream) or an entry id. Ignored when the group exists. @default "$"
   */
  startId?: string;
  /** The field of an entry that holds the trigger message (or, with {@link workflow}, the payload). @default "message" */
  field?: string;
  /** Entries read (and triggered in one `runWorkflows` request) at once, 1 to 1000 (`COUNT`). @default 10 */
  count?: number;
  /** How long one `XREADGROUP` waits for new entries (`BLOCK`). @default 5000 */
  blockMs?: number;
  /**
   * Entries pending longer than this in another consumer of the group (one that died before it
   * acknowledged them) are claimed (`XAUTOCLAIM`) and handled here. Must exceed
   * {@link triggerTimeoutMs}. @default 60000
   */
  claimIdleMs?: number;
  /** How often idle entries are looked for. @default half of {@link claimIdleMs}, at most 30000 */
  claimIntervalMs?: number;
  /**
   * An entry delivered more often than this (crashes while handling it, claims) is parked instead
   * of handled once more. @default 10
   */
  maxDeliveries?: number;
  /**
   * Stream where entries that cannot trigger (poison) are parked: their fields plus `cdktr_reason`,
   * `cdktr_error`, `cdktr_stream` and `cdktr_id`. Unset: they are acknowledged and only logged.
   */
  deadLetterStream?: string;
  /** Approximate length cap of {@link deadLetterStream} (`XADD MAXLEN ~`). @default unbounded */
  deadLetterMaxLen?: number;
  /** Deadline of each trigger request to the principal. @default 5000 */
  triggerTimeoutMs?: number;
  /**
   * When set, only these workflow ids can be triggered: an entry for another workflow is parked
   * and never reaches the principal.
   */
  workflows?: readonly string[];
  /** Backoff of reconnects and of pauses while the principal is unavailable. @default {initialMs: 500, maxMs: 30000} */
  backoff?: BackoffOptions;
  /**
   * The workflow every entry triggers. Set: the entry's {@link field} is any payload (JSON or
   * text), mapped into the run with {@link mapping}. Unset: the field is a trigger message naming
   * its workflow.
   */
  workflow?: string;
  /**
   * With {@link workflow}: fixed params, params mapped from the entry, a `when` filter and an
   * idempotency key expression. The event document is `{body, stream, id, fields}` (`body`: the
   * field's JSON value, else its text, `""` when the entry has no such field; `fields`: every
   * field of the entry as text).
   */
  mapping?: EventMappingSpec;
}

/** Counters of a {@link RedisStreamsListener}, for health checks and tests. */
export interface RedisStreamsListenerStats {
  /** Entries acknowledged after the principal accepted their run (including duplicates). */
  acked: number;
  /**
   * Entries that cannot trigger, acknowledged without a run (malformed, not in `workflows`,
   * unmapped, refused by the principal, delivered more than `maxDeliveries` times).
   */
  rejected: number;
  /** Entries acknowledged without a run because the mapping's `when` filter was false. */
  filtered: number;
  /** Rejected entries copied to the dead-letter stream. */
  parked: number;
  /** Entries left pending for a later attempt because the principal was unavailable (once per attempt). */
  retried: number;
  /** Entries taken over from idle consumers of the group (`XAUTOCLAIM`). */
  claimed: number;
  /** Successful connections (the first one included). */
  connections: number;
  /** True while reading is paused because the principal is unavailable. */
  paused: boolean;
  /** True while the listener reads the stream. */
  consuming: boolean;
}

/** `$`, `0`, or an entry id `<ms>[-<seq>]`. */
const START_ID = /^(\$|\d+(-\d+)?)$/;
/** Time a command (other than the blocking read) may wait for its reply before the connection is deemed dead. */
const COMMAND_TIMEOUT_MS = 15_000;

/** One entry as Redis returns it: fields null when it was deleted from the stream while pending. */
interface RawEntry {
  id: string;
  fields: Buffer[] | null;
}

/** An entry that resolved to a trigger, waiting for the principal. */
interface Waiting {
  id: string;
  trigger: BatchTrigger;
}

/** The two connections of one session and what its handlers need. */
interface Session {
  /** Every command but the blocking read. */
  cmd: Redis;
  /** The dedicated connection of `XREADGROUP ... BLOCK`. */
  reads: Redis;
  log: Logger;
  signal: AbortSignal;
}

/**
 * Consumes a Redis stream as one consumer of a consumer group. Each entry's `message` field is a
 * trigger message `{"workflow_id": "...", "params"?: {...}, "idempotency_key"?: "..."}`, or, with
 * `workflow` and `mapping`, any payload mapped into the run's params.
 *
 * - An entry is acknowledged (`XACK`) only after the principal accepted its run.
 * - The message's `idempotency_key` (or the mapping's key), else the entry id, becomes the run's
 *   idempotency key `redis:<stream>:<id>`: an entry handled twice never starts a second run.
 * - On start, the entries this consumer read but did not acknowledge (a crash) are handled first;
 *   then, every `claimIntervalMs`, entries idle for `claimIdleMs` in other consumers are claimed.
 * - Poison entries (malformed, not in `workflows`, unmapped, refused by the principal, delivered
 *   more than `maxDeliveries` times) are copied to `deadLetterStream` and acknowledged in one
 *   `MULTI`: they never loop.
 * - When the principal is unavailable, reading stops, the entries stay pending, and they are
 *   sent again after a growing backoff (the listener keeps them claimed meanwhile).
 * - Redis connection loss: reconnect with backoff, then the pending entries first.
 */
export class RedisStreamsListener extends EventListener {
  readonly #url: string;
  readonly #stream: string;
  readonly #group: string;
  readonly #consumer: string;
  readonly #startId: string;
  readonly #field: string;
  readonly #count: number;
  readonly #blockMs: number;
  readonly #claimIdleMs: number;
  readonly #claimIntervalMs: number;
  readonly #maxDeliveries: number;
  readonly #dls: string | undefined;
  readonly #dlsMaxLen: number | undefined;
  readonly #timeout: number;
  readonly #allow: ReadonlySet<string> | null;
  readonly #backoff: BackoffOptions;
  readonly #workflow: string | undefined;
  readonly #mapping: EventMapping | null;
  readonly #keyPrefix: string;
  readonly #stats: RedisStreamsListenerStats = {
    acked: 0,
    rejected: 0,
    filtered: 0,
    parked: 0,
    retried: 0,
    claimed: 0,
    connections: 0,
    paused: false,
    consuming: false,
  };
  #pauseAttempt = 0;

  /** @throws UsageError (`INVALID_ARGUMENT`) naming the option that is wrong */
  constructor(options: RedisStreamsListenerOptions) {
    super({ ...options, source: options.source ?? "redis" });
    const bad = (what: string): never => {
      throw new UsageError("INVALID_ARGUMENT", `RedisStreamsListener: ${what}`);
    };
    if (options.stream === "") bad("`stream` must be a non-empty stream key");
    this.#url = options.url ?? "redis://127.0.0.1:6379";
    let protocol = "";
    try {
      protocol = new URL(this.#url).protocol;
    } catch {
      // reported below
    }
    if (protocol !== "redis:" && protocol !== "rediss:")
      bad(`\`url\` must be a redis:// or rediss:// URL, got ${JSON.stringify(redact(this.#url))}`);
    this.#stream = options.stream;
    this.#group = options.group ?? "cdktr";
    if (this.#group === "") bad("`group` must be a non-empty group name");
    this.#consumer = options.consumer ?? hostname();
    if (this.#consumer === "") bad("`consumer` must be a non-empty consumer name");
    this.#startId = options.startId ?? "$";
    if (!START_ID.test(this.#startId))
      bad(`\`startId\` must be "$", "0" or an entry id like 1700000000000-0, got ${JSON.stringify(this.#startId)}`);
    this.#field = options.field ?? "message";
    if (this.#field === "") bad("`field` must be a non-empty field name");
    this.#count = options.count ?? 10;
    if (!Number.isInteger(this.#count) || this.#count < 1 || this.#count > MAX_BATCH_TRIGGERS)
      bad(`\`count\` must be an integer from 1 to ${MAX_BATCH_TRIGGERS}`);
    this.#blockMs = positive(options.blockMs ?? 5000, "blockMs", bad);
    this.#claimIdleMs = positive(options.claimIdleMs ?? 60_000, "claimIdleMs", bad);
    this.#claimIntervalMs = positive(
      options.claimIntervalMs ?? Math.max(1, Math.min(Math.floor(this.#claimIdleMs / 2), 30_000)),
      "claimIntervalMs",
      bad,
    );
    this.#maxDeliveries = positive(options.maxDeliveries ?? 10, "maxDeliveries", bad);
    if (options.deadLetterStream === "") bad("`deadLetterStream` must be a non-empty stream key (or be left unset)");
    if (options.deadLetterStream === options.stream)
      bad("`deadLetterStream` must differ from `stream` (parked entries would be read again)");
    this.#dls = options.deadLetterStream;
    this.#dlsMaxLen =
      options.deadLetterMaxLen !== undefined ? positive(options.deadLetterMaxLen, "deadLetterMaxLen", bad) : undefined;
    this.#timeout = positive(options.triggerTimeoutMs ?? 5000, "triggerTimeoutMs", bad);
    if (this.#claimIdleMs <= this.#timeout)
      bad(
        `\`claimIdleMs\` (${this.#claimIdleMs}) must exceed \`triggerTimeoutMs\` (${this.#timeout}): an entry being triggered would look idle to the other consumers`,
      );
    this.#allow = options.workflows !== undefined ? new Set(options.workflows) : null;
    this.#backoff = options.backoff ?? {};
    if (options.mapping !== undefined && options.workflow === undefined)
      bad("`mapping` needs `workflow` (without it each entry names its workflow and params itself)");
    this.#workflow = options.workflow;
    this.#mapping = options.mapping !== undefined ? EventMapping.compile(options.mapping, "mapping") : null;
    this.#keyPrefix = `redis:${this.#stream}:`;
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<RedisStreamsListenerStats> {
    return { ...this.#stats };
  }

  /** This listener's consumer name in the group. */
  get consumer(): string {
    return this.#consumer;
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    const log = this.logger.child({ stream: this.#stream, group: this.#group, consumer: this.#consumer });
    let failures = 0;
    while (!signal.aborted) {
      const cmd = this.#connection("commands", log);
      const reads = this.#connection("reads", log);
      // Stopping ends a blocked read at once; the entries it may have taken stay pending for the next start.
      const onAbort = (): void => reads.disconnect();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await Promise.all([cmd.connect(), reads.connect()]);
        await this.#prepare(cmd, log);
        this.#stats.connections += 1;
        failures = 0;
        log.info("redis streams consuming", { url: redact(this.#url), count: this.#count });
        await this.#consume({ cmd, reads, log, signal });
      } catch (e) {
        if (signal.aborted) break;
        const cause = lastError.get(cmd) ?? lastError.get(reads);
        log.warn("redis: cannot read the stream (connection failed or lost, group or key unusable); reconnecting", {
          url: redact(this.#url),
          error: errorMessage(e),
          ...(cause !== undefined ? { cause } : {}),
        });
      } finally {
        signal.removeEventListener("abort", onAbort);
        this.#stats.consuming = false;
        this.#stats.paused = false;
        cmd.disconnect();
        reads.disconnect();
      }
      if (signal.aborted) break;
      failures += 1;
      await sleep(backoffDelay(failures, this.#backoff), signal);
    }
  }

  /** A connection that never reconnects by itself (the loop above does, with backoff). */
  #connection(role: "commands" | "reads", log: Logger): Redis {
    const r = new Redis(this.#url, {
      lazyConnect: true,
      protocol: 2,
      retryStrategy: () => null,
      enableOfflineQueue: false,
      connectTimeout: 10_000,
      // A reply overdue by this much means a dead socket (a network partition sends no FIN).
      socketTimeout: role === "reads" ? this.#blockMs + COMMAND_TIMEOUT_MS : COMMAND_TIMEOUT_MS,
      connectionName: `cdktr:${this.#consumer.replace(/[^\w.:-]/g, "_")}:${role}`,
    });
    r.on("error", (e: unknown) => {
      lastError.set(r, errorMessage(e));
      log.debug("redis connection error", { role, error: errorMessage(e) });
    });
    return r;
  }

  /** Create the group (and the stream) when missing; check that the dead-letter key can hold a stream. */
  async #prepare(cmd: Redis, log: Logger): Promise<void> {
    try {
      await cmd.call("XGROUP", "CREATE", this.#stream, this.#group, this.#startId, "MKSTREAM");
      log.info("redis consumer group created", { startId: this.#startId });
    } catch (e) {
      if (!errorMessage(e).startsWith("BUSYGROUP")) throw e;
    }
    if (this.#dls !== undefined) {
      const type = await cmd.call("TYPE", this.#dls);
      if (type !== "stream" && type !== "none")
        throw new UsageError(
          "INVALID_ARGUMENT",
          `the dead-letter stream key ${JSON.stringify(this.#dls)} holds a ${String(type)}, not a stream: name another key in deadLetterStream`,
        );
    }
  }

  /** Read and handle entries until `signal` aborts: own pending entries first, then claims and new entries. */
  async #consume(s: Session): Promise<void> {
    let history: string | null = "0";
    let claimCursor = "0-0";
    let nextClaim = Date.now();
    this.#stats.consuming = true;
    while (!s.signal.aborted) {
      if (history !== null) {
        const entries = streamEntries(
          await s.cmd.callBuffer(
            "XREADGROUP",
            "GROUP",
            this.#group,
            this.#consumer,
            "COUNT",
            this.#count,
            "STREAMS",
            this.#stream,
            history,
          ),
        );
        const last = entries.at(-1);
        if (last === undefined) {
          history = null;
          continue;
        }
        if (history === "0") s.log.info("redis: handling the entries this consumer read but did not acknowledge");
        history = last.id;
        await this.#handle(s, entries, true);
        continue;
      }
      const now = Date.now();
      if (now >= nextClaim) {
        const claim = autoclaimReply(
          await s.cmd.callBuffer(
            "XAUTOCLAIM",
            this.#stream,
            this.#group,
            this.#consumer,
            this.#claimIdleMs,
            claimCursor,
            "COUNT",
            this.#count,
          ),
        );
        claimCursor = claim.cursor;
        // A whole pass over the group's pending entries is done: wait for the next one.
        if (claimCursor === "0-0") nextClaim = now + this.#claimIntervalMs;
        if (claim.deleted.length > 0)
          s.log.warn("redis: pending entries deleted from the stream before they were handled; dropped", {
            ids: claim.deleted,
          });
        if (claim.entries.length > 0) {
          this.#stats.claimed += claim.entries.length;
          s.log.info("redis: claimed entries idle in the group (their consumer died)", {
            ids: claim.entries.map((e) => e.id),
          });
          await this.#handle(s, claim.entries, true);
        }
        continue;
      }
      const block = Math.max(1, Math.min(this.#blockMs, nextClaim - now));
      const entries = streamEntries(
        await s.reads.callBuffer(
          "XREADGROUP",
          "GROUP",
          this.#group,
          this.#consumer,
          "COUNT",
          this.#count,
          "BLOCK",
          block,
          "STREAMS",
          this.#stream,
          ">",
        ),
      );
      if (entries.length > 0) await this.#handle(s, entries, false);
    }
  }

  /**
   * Handle one batch: park poison entries, acknowledge filtered ones, trigger the rest in one
   * request. `redelivered`: the entries may have been delivered before (check their count).
   */
  async #handle(s: Session, entries: readonly RawEntry[], redelivered: boolean): Promise<void> {
    const deliveries = redelivered ? await this.#deliveryCounts(s, entries) : null;
    const filtered: string[] = [];
    const waiting: Waiting[] = [];
    for (const entry of entries) {
      const log = s.log.child({ entryId: entry.id });
      if (entry.fields === null) {
        log.warn("redis: pending entry deleted from the stream before it was handled; acknowledged");
        await s.cmd.call("XACK", this.#stream, this.#group, entry.id);
        continue;
      }
      const delivered = deliveries?.get(entry.id) ?? 1;
      if (delivered > this.#maxDeliveries) {
        const error = `delivered ${delivered} times, more than max_deliveries (${this.#maxDeliveries})`;
        this.rejectEvent("max_deliveries", error);
        await this.#park(s, entry, entry.fields, "max_deliveries", error, log);
        continue;
      }
      const resolved = this.#resolve(entry.id, entry.fields);
      if (!resolved.ok) {
        if (resolved.reason === "filtered") {
          log.debug("redis entry filtered out by `when`; acknowledged without a run");
          filtered.push(entry.id);
          continue;
        }
        this.rejectEvent(resolved.reason, resolved.error);
        await this.#park(s, entry, entry.fields, resolved.reason, resolved.error, log);
        continue;
      }
      waiting.push({
        id: entry.id,
        trigger: {
          workflowId: resolved.workflowId,
          ...(resolved.params !== undefined ? { params: resolved.params } : {}),
          idempotencyKey: scopedIdempotencyKey(this.#keyPrefix, resolved.key ?? entry.id),
        },
      });
    }
    if (filtered.length > 0) {
      await s.cmd.call("XACK", this.#stream, this.#group, ...filtered);
      this.#stats.filtered += filtered.length;
    }
    await this.#trigger(s, waiting, new Map(entries.map((e) => [e.id, e.fields ?? []])));
  }

  /**
   * Send the triggers of `waiting` until each is accepted (acknowledged) or refused for good
   * (parked). While the principal is unavailable, nothing else is read: the entries stay pending
   * (and claimed by this consumer) and are sent again after a growing backoff.
   */
  async #trigger(s: Session, waiting: Waiting[], fields: ReadonlyMap<string, Buffer[]>): Promise<void> {
    let left = waiting;
    while (left.length > 0) {
      const results = await this.runWorkflows(
        left.map((w) => w.trigger),
        { retry: false, timeoutMs: this.#timeout },
      );
      const accepted: string[] = [];
      const retry: Waiting[] = [];
      let unavailable: TriggerResult | undefined;
      for (const [i, w] of left.entries()) {
        const r = results[i];
        const log = s.log.child({ entryId: w.id });
        if (r?.success === true) {
          accepted.push(w.id);
          log.info("redis entry triggered a run", {
            workflowId: r.workflowId,
            runId: r.runId,
            duplicate: r.duplicate,
            skipped: r.skipped,
          });
          continue;
        }
        const code = r?.error?.code ?? "INTERNAL";
        if (r === undefined || RETRYABLE.has(code) || r.error?.retryable === true) {
          retry.push(w);
          unavailable ??= r;
          continue;
        }
        const error = `the principal refused the run: ${code}: ${r.error?.message ?? ""}`;
        await this.#park(s, { id: w.id }, fields.get(w.id) ?? [], "refused", error, log);
      }
      if (accepted.length > 0) {
        await s.cmd.call("XACK", this.#stream, this.#group, ...accepted);
        this.#stats.acked += accepted.length;
      }
      if (retry.length === 0) break;
      left = await this.#pause(s, retry, unavailable);
    }
    if (this.#stats.paused) s.log.info("principal available again; reading resumed");
    this.#pauseAttempt = 0;
    this.#stats.paused = false;
    this.#stats.consuming = !s.signal.aborted;
  }

  /**
   * The principal is unavailable: wait a growing backoff, keeping `retry` claimed by this consumer
   * (its idle time reset, so no other consumer takes it, and no delivery counted). Returns the
   * entries still pending here (none once stopping).
   */
  async #pause(s: Session, retry: Waiting[], cause: TriggerResult | undefined): Promise<Waiting[]> {
    this.#stats.paused = true;
    this.#stats.consuming = false;
    this.#stats.retried += retry.length;
    this.#pauseAttempt += 1;
    const delay = backoffDelay(this.#pauseAttempt, this.#backoff);
    s.log.warn("principal unavailable; reading paused, entries left pending", {
      entries: retry.length,
      code: cause?.error?.code,
      error: cause?.error?.message,
      resumeInMs: delay,
    });
    const until = Date.now() + delay;
    let ids = retry.map((w) => w.id);
    for (;;) {
      const remaining = until - Date.now();
      if (remaining > 0) await sleep(Math.min(remaining, Math.max(1, Math.floor(this.#claimIdleMs / 2))), s.signal);
      if (s.signal.aborted) return [];
      // XCLAIM ... JUSTID: keeps the entries here and resets their idle time without counting a delivery.
      const kept = await s.cmd.call("XCLAIM", this.#stream, this.#group, this.#consumer, 0, ...ids, "JUSTID");
      const still = new Set(Array.isArray(kept) ? kept.map((k) => String(k)) : []);
      ids = ids.filter((id) => still.has(id));
      if (until - Date.now() <= 0 || ids.length === 0) break;
    }
    const keep = new Set(ids);
    const gone = retry.filter((w) => !keep.has(w.id));
    if (gone.length > 0)
      s.log.info("redis: entries no longer pending (acknowledged elsewhere or deleted); not sent again", {
        ids: gone.map((w) => w.id),
      });
    return retry.filter((w) => keep.has(w.id));
  }

  /** The delivery count of each entry still pending in the group (`XPENDING <id> <id> 1`). */
  async #deliveryCounts(s: Session, entries: readonly RawEntry[]): Promise<Map<string, number>> {
    const p = s.cmd.pipeline();
    for (const e of entries) p.call("XPENDING", this.#stream, this.#group, e.id, e.id, 1);
    const replies = (await p.exec()) ?? [];
    const counts = new Map<string, number>();
    for (const [err, reply] of replies) {
      if (err !== null) throw err;
      const row = Array.isArray(reply) ? (reply[0] as unknown) : undefined;
      if (Array.isArray(row) && typeof row[3] === "number") counts.set(String(row[0]), row[3]);
    }
    return counts;
  }

  /** The trigger of one entry (never throws). */
  #resolve(id: string, raw: Buffer[]): MessageTrigger {
    const fields: Record<string, JSONValue> = {};
    let body: Buffer | undefined;
    let found = 0;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = String(raw[i]);
      const value = raw[i + 1] as Buffer;
      fields[name] = value.toString("utf8");
      if (name === this.#field) {
        body = value;
        found += 1;
      }
    }
    if (found > 1)
      return {
        ok: false,
        reason: "malformed",
        error: `the entry has ${found} \`${this.#field}\` fields: give exactly one`,
      };
    if (body === undefined && this.#workflow === undefined)
      return {
        ok: false,
        reason: "malformed",
        error: `the entry has no \`${this.#field}\` field: add the trigger message with XADD ${this.#stream} '*' ${this.#field} '{"workflow_id": ...}'`,
      };
    return resolveMessageTrigger(
      body ?? "",
      { stream: this.#stream, id, fields },
      {
        ...(this.#workflow !== undefined ? { workflow: this.#workflow } : {}),
        mapping: this.#mapping,
        allow: this.#allow,
      },
    );
  }

  /**
   * Park a poison entry: copy it to the dead-letter stream and acknowledge it in one `MULTI` (a
   * crash cannot separate the two), or only acknowledge it without a dead-letter stream.
   */
  async #park(
    s: Session,
    entry: { id: string },
    fields: readonly Buffer[],
    reason: string,
    error: string,
    log: Logger,
  ): Promise<void> {
    this.#stats.rejected += 1;
    if (this.#dls === undefined) {
      await s.cmd.call("XACK", this.#stream, this.#group, entry.id);
      log.warn("redis entry rejected and acknowledged (no dead-letter stream: dropped)", {
        reason,
        error,
        fields: preview(fields),
      });
      return;
    }
    const replies = await s.cmd
      .multi()
      .call(
        "XADD",
        this.#dls,
        ...(this.#dlsMaxLen !== undefined ? ["MAXLEN", "~", this.#dlsMaxLen] : []),
        "*",
        ...fields,
        "cdktr_reason",
        reason,
        "cdktr_error",
        error,
        "cdktr_stream",
        this.#stream,
        "cdktr_id",
        entry.id,
      )
      .call("XACK", this.#stream, this.#group, entry.id)
      .exec();
    const [added] = replies ?? [];
    if (added === undefined || added[0] !== null) {
      // Only a key changed to another type since the start can fail here (the XACK ran anyway).
      log.error("redis entry acknowledged but NOT parked: the dead-letter XADD failed", {
        reason,
        error,
        xaddError: added?.[0] ? errorMessage(added[0]) : "no reply",
        fields: preview(fields),
      });
      return;
    }
    this.#stats.parked += 1;
    log.warn("redis entry parked in the dead-letter stream", {
      reason,
      error,
      deadLetterStream: this.#dls,
      deadLetterId: String(added[1]),
    });
  }
}

/** The last `error` event of each connection: the reason behind a generic "Connection is closed.". */
const lastError = new WeakMap<Redis, string>();

function positive(v: number, name: string, bad: (what: string) => never): number {
  if (!Number.isInteger(v) || v < 1) bad(`\`${name}\` must be a positive integer, got ${String(v)}`);
  return v;
}

/** The entries of an `XREADGROUP` reply (RESP2: `[[stream, [[id, fields|null], ...]]]` or null). */
function streamEntries(reply: unknown): RawEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: RawEntry[] = [];
  for (const s of reply) if (Array.isArray(s)) out.push(...entryList(s[1]));
  return out;
}

function entryList(list: unknown): RawEntry[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((e: unknown) =>
    Array.isArray(e) && e[0] !== undefined
      ? [{ id: String(e[0]), fields: Array.isArray(e[1]) ? (e[1] as Buffer[]) : null }]
      : [],
  );
}

/** An `XAUTOCLAIM` reply: `[next cursor, entries, deleted ids]` (the third since Redis 7). */
function autoclaimReply(reply: unknown): { cursor: string; entries: RawEntry[]; deleted: string[] } {
  const r = Array.isArray(reply) ? reply : [];
  return {
    cursor: r[0] !== undefined ? String(r[0]) : "0-0",
    entries: entryList(r[1]),
    deleted: Array.isArray(r[2]) ? r[2].map((id: unknown) => String(id)) : [],
  };
}

/** The fields of an entry for a log line, each value cut at 200 characters. */
function preview(fields: readonly Buffer[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const v = String(fields[i + 1]);
    out[String(fields[i])] = v.length > 200 ? `${v.slice(0, 200)}...` : v;
  }
  return out;
}

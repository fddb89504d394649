/**
 * One request/reply channel (API or log ingest) to whichever of several principals leads: the
 * moves on `NOT_LEADER` and on silence, shared by {@link PrincipalClient} and {@link LogClient}.
 */
import { CdktrError, toCdktrError, type AdvertisedEndpoints } from "../errors.js";
import type { ReplyOf, RequestOf, VerbTable } from "../messages.js";
import { noopLogger, type Logger } from "../logging/logger.js";
import type { KeyIdentity } from "../security/identity.js";
import { backoffDelay } from "../util/backoff.js";
import type { LeaderWatch } from "./leader-watch.js";
import type { RequestOptions, RpcClient } from "./rpc-client.js";

/** Default of {@link LeaderRpcOptions.leaderWaitMs}. */
export const DEFAULT_LEADER_WAIT_MS = 20_000;

/** Options of {@link LeaderRpc}. */
export interface LeaderRpcOptions<T extends VerbTable> {
  /** The configured endpoints of this channel, tried in this order (at least one). */
  endpoints: readonly string[];
  verbs: T;
  /** The shared knowledge of the leader: followed, and told what `NOT_LEADER` errors say. */
  watch: LeaderWatch;
  /** This channel's endpoint of a leader (`(l) => l.api`, `(l) => l.logs`). */
  pick: (leader: AdvertisedEndpoints) => string;
  /** Build the client of one endpoint; it must throw at once the errors `failFast` accepts. */
  connect: (endpoint: string, failFast: (error: CdktrError) => boolean) => RpcClient<T>;
  /** How long one call keeps looking for the leader (elections, silent principals). @default 20000 */
  leaderWaitMs?: number | undefined;
  /** Backoff between rounds over the endpoints. @default 200 ms doubling to 2 s */
  baseDelayMs?: number | undefined;
  maxDelayMs?: number | undefined;
  /** Called with every successful reply and the endpoint that gave it. */
  onReply?: ((verb: string, reply: unknown, endpoint: string) => void) | undefined;
  /**
   * false: talk to the first endpoint only and hand every error, `NOT_LEADER` included, to the
   * caller (diagnostics and tests that address one principal). @default true
   */
  followLeader?: boolean | undefined;
  /** @default noopLogger */
  logger?: Logger | undefined;
}

/**
 * Sends each request to the current endpoint, and on failure:
 * - `NOT_LEADER` with `leader`: tells the {@link LeaderWatch} and resends to the leader at once
 *   (a refused request was not executed, so any verb may be resent);
 * - `NOT_LEADER` without it (an election): backs off and resends to the next endpoint;
 * - silence (`TIMEOUT`, `UNAVAILABLE`) with several endpoints known: moves to the next one, and
 *   resends only what may be resent (`resendable`, or a request known unsent), never turning an
 *   at-most-once request into a duplicate.
 *
 * When the leader moves, calls still waiting on the old leader are cut and handled like silence
 * (a retryable `TIMEOUT`): the resendable ones go to the new leader at once, a `fetchWork` fails
 * now instead of at the end of its long poll.
 *
 * It gives up with the last error once `leaderWaitMs` has passed. With one endpoint and no
 * `NOT_LEADER`, a call is exactly one {@link RpcClient.request}. One {@link RpcClient} per
 * endpoint is kept (created on first use): calls in flight on the old leader end on their own.
 */
export class LeaderRpc<T extends VerbTable> {
  readonly #o: LeaderRpcOptions<T>;
  readonly #endpoints: string[];
  readonly #clients = new Map<string, RpcClient<T>>();
  readonly #sleeps = new Set<{ timer: NodeJS.Timeout; reject: (e: CdktrError) => void }>();
  readonly #logger: Logger;
  readonly #leaderWaitMs: number;
  readonly #unwatch: () => void;
  #current: string;
  /** This channel's endpoint of the leader last heard of (null before any). */
  #leaderEndpoint: string | null;
  #closed = false;

  constructor(opts: LeaderRpcOptions<T>) {
    this.#o = opts;
    this.#logger = opts.logger ?? noopLogger;
    this.#leaderWaitMs = opts.leaderWaitMs ?? DEFAULT_LEADER_WAIT_MS;
    this.#endpoints = [...new Set(opts.endpoints)];
    const follow = opts.followLeader !== false;
    const best = follow ? opts.watch.best : null;
    this.#current = best === null ? (this.#endpoints[0] ?? "") : opts.pick(best);
    if (!this.#endpoints.includes(this.#current)) this.#endpoints.push(this.#current);
    this.#leaderEndpoint = best === null ? null : opts.pick(best);
    this.#client(this.#current);
    // Not following: this channel stays on its endpoint whatever the watch learns.
    this.#unwatch = follow ? opts.watch.onChange((leader) => this.#leaderMoved(opts.pick(leader))) : () => undefined;
  }

  /** The endpoint requests go to now. */
  get endpoint(): string {
    return this.#current;
  }

  /** Every endpoint known: the configured ones, then the leaders learned since. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** The identity `hello` proved on the current endpoint (null before, and without a key). */
  get identity(): KeyIdentity | null {
    return this.#clients.get(this.#current)?.identity ?? null;
  }

  /**
   * Send `verb` to the leader (see the class comment).
   * @param resendable whether this request may be resent after silence (also requires an
   *   idempotent verb and `opts.retry !== false`)
   * @throws CdktrError the last error once no move is left or `leaderWaitMs` passed
   */
  async request<V extends keyof T & string>(
    verb: V,
    body: RequestOf<T, V>,
    opts: RequestOptions = {},
    resendable = true,
  ): Promise<ReplyOf<T, V>> {
    const may = resendable && opts.retry !== false && this.#o.verbs[verb]?.idempotent === true;
    const callOpts: RequestOptions = may ? opts : { ...opts, retry: false };
    if (this.#o.followLeader === false) {
      const reply = await this.#client(this.#current).request(verb, body, opts);
      this.#o.onReply?.(verb, reply, this.#current);
      return reply;
    }
    const deadline = Date.now() + this.#leaderWaitMs;
    for (let hop = 1; ; hop++) {
      const endpoint = this.#current;
      try {
        const reply = await this.#client(endpoint).request(verb, body, callOpts);
        this.#o.onReply?.(verb, reply, endpoint);
        return reply;
      } catch (e: unknown) {
        const err = this.#cutAsTimeout(toCdktrError(e), verb, endpoint);
        const delay = this.#afterFailure(err, endpoint, may, hop);
        if (delay === null || this.#closed || Date.now() + delay >= deadline) throw err;
        this.#logger.debug("principal request moves", { verb, from: endpoint, to: this.#current, code: err.code });
        if (delay > 0) await this.#sleep(delay);
      }
    }
  }

  /** Close every socket; pending calls reject with `CLOSED`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatch();
    for (const c of this.#clients.values()) c.close();
    const err = new CdktrError("CLOSED", `client of ${this.#current} was closed`, { retryable: false });
    for (const s of this.#sleeps) {
      clearTimeout(s.timer);
      s.reject(err);
    }
    this.#sleeps.clear();
  }

  /** What to do after `err` from `endpoint`: the delay before resending, or null to give up. */
  #afterFailure(err: CdktrError, endpoint: string, resendable: boolean, hop: number): number | null {
    const rounds = Math.ceil(hop / this.#endpoints.length);
    if (err.code === "NOT_LEADER") {
      if (err.leader !== undefined) {
        this.#o.watch.set(err.leader);
        const to = this.#o.pick(this.#o.watch.leader ?? err.leader);
        if (to !== endpoint) {
          this.#moveTo(to);
          // Straight to the leader, unless principals keep sending each other round.
          return rounds <= 1 ? 0 : this.#backoff(rounds);
        }
      } else {
        this.#o.watch.set(null);
      }
      this.#next(endpoint);
      return this.#backoff(hop);
    }
    if (err.code !== "TIMEOUT" && err.code !== "UNAVAILABLE") return null;
    if (this.#endpoints.length < 2) return null;
    // The silent one may have been the leader: unknown until a reply says (the configured
    // single principal stays the best guess).
    if (this.#current === endpoint) this.#o.watch.set(null);
    this.#next(endpoint);
    if (!resendable && err.context.unsent !== true) return null;
    return hop % this.#endpoints.length === 0 ? this.#backoff(rounds) : 0;
  }

  /**
   * A call cut because the leader moved (the old leader's client was closed under it, this channel
   * still open) ends like one that timed out: it may or may not have been executed, and the
   * caller may retry (with its idempotency key) as after any silence. Other errors pass unchanged.
   */
  #cutAsTimeout(err: CdktrError, verb: string, endpoint: string): CdktrError {
    if (err.code !== "CLOSED" || this.#closed || this.#current === endpoint) return err;
    return new CdktrError(
      "TIMEOUT",
      `no reply from ${endpoint} to ${verb}: the leader moved to ${this.#current} meanwhile (it may or may not have been executed there)`,
      { retryable: true, cause: err, context: { verb, endpoint } },
    );
  }

  /** Move from `endpoint` to the next endpoint of the list (unless another call moved already). */
  #next(endpoint: string): void {
    if (this.#current !== endpoint || this.#endpoints.length < 2) return;
    const i = this.#endpoints.indexOf(endpoint);
    this.#current = this.#endpoints[(i + 1) % this.#endpoints.length] ?? endpoint;
  }

  /**
   * The leader moved to `endpoint`: requests go there, and the old leader's client is closed, so
   * that calls still waiting there (a `fetchWork` long-poll on a dead principal) end now (see
   * `#cutAsTimeout`) instead of at their timeout; the idempotent ones are resent to the new leader.
   */
  #leaderMoved(endpoint: string): void {
    const old = this.#leaderEndpoint;
    this.#leaderEndpoint = endpoint;
    this.#moveTo(endpoint);
    if (old === null || old === endpoint) return;
    this.#clients.get(old)?.close();
    this.#clients.delete(old);
  }

  #moveTo(endpoint: string): void {
    if (this.#closed) return;
    if (!this.#endpoints.includes(endpoint)) this.#endpoints.push(endpoint);
    this.#current = endpoint;
  }

  #client(endpoint: string): RpcClient<T> {
    let c = this.#clients.get(endpoint);
    if (c === undefined) {
      c = this.#o.connect(endpoint, (e) =>
        e.code === "NOT_LEADER"
          ? true
          : this.#endpoints.length > 1 && (e.code === "TIMEOUT" || e.code === "UNAVAILABLE"),
      );
      this.#clients.set(endpoint, c);
    }
    return c;
  }

  #backoff(n: number): number {
    return backoffDelay(n, { initialMs: this.#o.baseDelayMs ?? 200, maxMs: this.#o.maxDelayMs ?? 2000 });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const entry = {
        timer: setTimeout(() => {
          this.#sleeps.delete(entry);
          resolve();
        }, ms),
        reject,
      };
      this.#sleeps.add(entry);
    });
  }
}

/**
 * What a client knows about which principal leads, shared by the clients of one process (the
 * agent's API and log clients, a CLI's subscriber): whoever learns a new leader (a `ping` or
 * `registerAgent` reply, a `NOT_LEADER` error carrying `leader`) tells it here, and every
 * follower moves.
 */
import type { AdvertisedEndpoints } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import { noopLogger } from "../logging/logger.js";

/** Called with the new leader's endpoints whenever the leader changes. */
export type LeaderListener = (leader: AdvertisedEndpoints) => void;

/** Options of {@link LeaderWatch}. */
export interface LeaderWatchOptions {
  /**
   * The leader as configured, before anything was learned: with one configured principal, its
   * API endpoint and the log and publish endpoints of the single-host settings. A learned leader
   * whose `api` is this one's keeps these endpoints (so a principal advertising another name
   * for itself never moves a client that reaches it as configured). Null with several
   * principals: unknown until a reply says.
   */
  configured: AdvertisedEndpoints | null;
  /** Where "principal leader moved" is logged. @default noopLogger */
  logger?: Logger | undefined;
}

function same(a: AdvertisedEndpoints | null, b: AdvertisedEndpoints | null): boolean {
  return a === b || (a !== null && b !== null && a.api === b.api && a.logs === b.logs && a.publish === b.publish);
}

/**
 * The known leader and the listeners of its changes. {@link leader} is null while no principal
 * leads (an election) or none is known yet; listeners hear only of a new non-null leader that
 * differs from the last one they heard of (an election that re-elects the same principal is no
 * move).
 *
 * @example
 * const stop = principal.leaderWatch.onChange((l) => subscriber.moveTo(l.publish));
 */
export class LeaderWatch {
  readonly #configured: AdvertisedEndpoints | null;
  readonly #logger: Logger;
  #leader: AdvertisedEndpoints | null;
  /** The last leader the listeners heard of (or the configured one). */
  #announced: AdvertisedEndpoints | null;
  readonly #listeners = new Set<LeaderListener>();

  constructor(opts: LeaderWatchOptions) {
    this.#configured = opts.configured;
    this.#leader = opts.configured;
    this.#announced = opts.configured;
    this.#logger = opts.logger ?? noopLogger;
  }

  /** The known leader's endpoints; null while none leads or none is known yet. */
  get leader(): AdvertisedEndpoints | null {
    return this.#leader;
  }

  /**
   * The leader to follow now: the known one, else the last one announced (during an election the
   * old leader is the best guess), else null.
   */
  get best(): AdvertisedEndpoints | null {
    return this.#leader ?? this.#announced;
  }

  /**
   * Record what a reply said: `leader` leads (null: none does now). Listeners run synchronously
   * when it is a move; a listener that throws is logged and the others still run.
   * @returns whether the listeners were told of a move
   */
  set(leader: AdvertisedEndpoints | null): boolean {
    const next =
      leader !== null && this.#configured !== null && leader.api === this.#configured.api ? this.#configured : leader;
    this.#leader = next;
    if (next === null || same(next, this.#announced)) return false;
    const from = this.#announced;
    this.#announced = next;
    this.#logger.info(`principal leader moved to ${next.api}`, { from: from?.api ?? null, leader: next });
    for (const fn of [...this.#listeners]) {
      try {
        fn(next);
      } catch (e: unknown) {
        this.#logger.warn("a leader listener failed", { error: e });
      }
    }
    return true;
  }

  /**
   * Call `listener` with every new leader from now on.
   * @returns a function that removes it
   */
  onChange(listener: LeaderListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}

/**
 * Whether this principal leads: the interface the wiring and the handlers ask, with its two
 * implementations, {@link SoleLeader} (SQLite, or an injected store: one principal, always the
 * leader) and `PgLeadership` (several principals on one PostgreSQL database, a lease row).
 */
import { CdktrError, endpointFor, type AdvertisedEndpoints } from "@cdktr/protocol";
import type { Sql } from "../store/postgres/sql.js";

/** What `ping` says about leadership. */
export interface LeaderPingFields {
  role: "leader" | "standby";
  /** The current leader's endpoints (this principal's own when it leads); null while none is known. */
  leader: AdvertisedEndpoints | null;
  /** The leader's fencing epoch (PostgreSQL only). */
  epoch?: number;
}

/** Callbacks of a leader role: a term begins and ends (see `LeaderTerms`). */
export interface LeaderRoleEvents {
  /** This principal now leads with `epoch` (null: SQLite); build the leader-only state. */
  onElected: (epoch: number | null) => Promise<void>;
  /** It no longer leads (`reason` is logged); stop acting at once. */
  onDeposed: (reason: string) => void;
}

/** Leadership as the principal sees it. */
export interface LeaderRole {
  /**
   * Start taking part with the principal's advertised endpoints; resolves once the first
   * election round is over (and the term built when it won).
   */
  start(self: AdvertisedEndpoints, events: LeaderRoleEvents): Promise<void>;
  /** Whether this principal leads now (false past the lease's local deadline, even unheard from the database). */
  isLeader(): boolean;
  /** The leader's endpoints as last known (own when leading); null while none is known. */
  leader(): AdvertisedEndpoints | null;
  /** The fields of `ping`. */
  ping(): LeaderPingFields;
  /** What keeps it from taking part now (e.g. `"leader lease unreachable"`); empty when fine. */
  problems(): string[];
  /**
   * The fencing check the PostgreSQL store runs first in every write transaction (absent: no
   * check, a lone principal). Throws `NOT_LEADER` when this principal's epoch no longer holds.
   */
  readonly fence?: (sql: Sql) => Promise<void>;
  /** Give up leadership (graceful stop) and close what it opened. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The `NOT_LEADER` error a standby answers writes with (retryable), carrying the leader's
 * endpoints when one is known.
 */
export function notLeader(leader: AdvertisedEndpoints | null, detail = ""): CdktrError {
  const where = leader === null ? "no leader is known yet: retry shortly" : `send it to the leader at ${leader.api}`;
  return new CdktrError("NOT_LEADER", `this principal is a standby${detail === "" ? "" : ` (${detail})`}: ${where}`, {
    ...(leader === null ? {} : { leader }),
  });
}

/**
 * The endpoints to advertise: the bound ones (their ports, maybe OS-assigned) at `host`
 * (`CDKTR_ADVERTISE_HOST`, resolved).
 */
export function advertised(bound: AdvertisedEndpoints, host: string): AdvertisedEndpoints {
  const at = (endpoint: string): string => {
    const port = /:(\d+)$/.exec(endpoint)?.[1];
    return port === undefined ? endpoint : endpointFor(host, Number(port));
  };
  return { api: at(bound.api), logs: at(bound.logs), publish: at(bound.publish) };
}

/** The only principal of its database (SQLite): always the leader, no lease, no epoch. */
export class SoleLeader implements LeaderRole {
  private self: AdvertisedEndpoints | null = null;

  async start(self: AdvertisedEndpoints, events: LeaderRoleEvents): Promise<void> {
    this.self = self;
    await events.onElected(null);
  }

  isLeader(): boolean {
    return true;
  }

  leader(): AdvertisedEndpoints | null {
    return this.self;
  }

  ping(): LeaderPingFields {
    return { role: "leader", leader: this.self };
  }

  problems(): string[] {
    return [];
  }

  async stop(): Promise<void> {}
}

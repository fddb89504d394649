/**
 * Leader election of several principals sharing one PostgreSQL database: a lease row
 * (`leader_lease`, migration 2) with a holder, a fencing epoch and an expiry in the database's
 * clock, taken and renewed on a connection of its own (never behind a write batch).
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import { errorMessage, noopLogger, type AdvertisedEndpoints, type Logger } from "@cdktr/protocol";
import { PG_TYPES, sqlOn, type Sql } from "../store/postgres/sql.js";
import { notLeader, type LeaderPingFields, type LeaderRole, type LeaderRoleEvents } from "./leader-role.js";

/** Options of {@link PgLeadership}. */
export interface PgLeadershipOptions {
  /** The database of the store. */
  url: string;
  /** Lease duration (`CDKTR_LEADER_TTL_MS`); renewed every third of it. */
  ttlMs: number;
  /** Unique per process: a restarted principal never renews its predecessor's lease. */
  instanceId: string;
  /** Hash of the loaded workflow set, written in the lease and compared with the leader's. */
  workflowHash: () => string;
  logger?: Logger;
  /** Monotonic milliseconds. @default performance.now */
  monotonic?: () => number;
  /** Run a round every third of the TTL (tests drive {@link PgLeadership.tick} by hand instead). @default true */
  periodic?: boolean;
}

/** The lease row as read. */
interface LeaseRow {
  holder: string | null;
  epoch: number;
  api: string | null;
  logs: string | null;
  publish: string | null;
  workflow_hash: string | null;
  live: boolean;
}

const TAKE = `
  WITH previous AS (SELECT workflow_hash FROM leader_lease WHERE id = 1)
  UPDATE leader_lease SET holder = $1, epoch = epoch + 1,
    expires_at = clock_timestamp() + $2 * interval '1 millisecond',
    api = $3, logs = $4, publish = $5, workflow_hash = $6
  WHERE id = 1 AND expires_at < clock_timestamp()
  RETURNING epoch, (SELECT workflow_hash FROM previous) AS previous_hash`;
// Only expires_at and the advertised fields change: a FOR NO KEY UPDATE lock that in-flight
// write transactions (FOR KEY SHARE) never delay.
const RENEW = `
  UPDATE leader_lease SET expires_at = clock_timestamp() + $3 * interval '1 millisecond',
    api = $4, logs = $5, publish = $6, workflow_hash = $7
  WHERE id = 1 AND holder = $1 AND epoch = $2`;
const READ = `
  SELECT holder, epoch, api, logs, publish, workflow_hash, expires_at > clock_timestamp() AS live
  FROM leader_lease WHERE id = 1`;
const RELEASE = "UPDATE leader_lease SET expires_at = '-infinity' WHERE id = 1 AND holder = $1 AND epoch = $2";
const ENSURE_ROW =
  "INSERT INTO leader_lease (id, holder, epoch, expires_at) VALUES (1, NULL, 0, '-infinity') ON CONFLICT DO NOTHING";
const FENCE = "SELECT 1 AS ok FROM leader_lease WHERE id = 1 AND holder = $1 AND epoch = $2 FOR KEY SHARE";

/**
 * One principal's part in the election. Every third of the TTL it renews its lease (leader) or
 * takes the lease if it has expired (standby; the epoch goes up by one). A leader counts itself
 * leader only until the time its last successful renewal was sent plus the TTL minus a margin: past
 * that it steps down even without hearing from the database, before any standby may take over.
 * Every write transaction of the store runs {@link fence} first: the lease must still name this
 * principal and its epoch, so a leader that was paused past its lease writes nothing.
 */
export class PgLeadership implements LeaderRole {
  private readonly logger: Logger;
  private readonly now: () => number;
  private client: pg.Client | null = null;
  private events: LeaderRoleEvents | null = null;
  private self: AdvertisedEndpoints | null = null;
  private epoch: number | null = null;
  private validUntil = 0;
  private known: LeaseRow | null = null;
  private timer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private reportedMismatch: string | null = null;
  private reportedLeader: string | null = null;
  private electing: Promise<void> = Promise.resolve();
  private unreachable = false;
  /** No attempt to take the lease before this (monotonic), after a term that could not start. */
  private holdOffUntil = 0;

  constructor(private readonly opts: PgLeadershipOptions) {
    this.logger = opts.logger ?? noopLogger;
    this.now = opts.monotonic ?? (() => performance.now());
  }

  /** The epoch of this principal's term, or null when it does not lead. */
  get currentEpoch(): number | null {
    return this.isLeader() ? this.epoch : null;
  }

  async start(self: AdvertisedEndpoints, events: LeaderRoleEvents): Promise<void> {
    this.self = self;
    this.events = events;
    await this.tick();
    await this.electing;
    this.schedule();
  }

  isLeader(): boolean {
    if (this.epoch === null) return false;
    if (this.now() < this.validUntil) return true;
    this.stepDown("the lease could not be renewed in time");
    return false;
  }

  leader(): AdvertisedEndpoints | null {
    if (this.isLeader()) return this.self;
    const k = this.known;
    if (
      k === null ||
      !k.live ||
      k.holder === this.opts.instanceId ||
      k.api === null ||
      k.logs === null ||
      k.publish === null
    )
      return null;
    return { api: k.api, logs: k.logs, publish: k.publish };
  }

  problems(): string[] {
    return this.unreachable ? ["leader lease unreachable"] : [];
  }

  ping(): LeaderPingFields {
    const leading = this.isLeader();
    const epoch = leading ? this.epoch : this.known?.epoch;
    return { role: leading ? "leader" : "standby", leader: this.leader(), ...(epoch == null ? {} : { epoch }) };
  }

  /**
   * The fencing check, first in every write transaction: the lease still names this principal and
   * its epoch (a takeover waits for the transaction, which holds FOR KEY SHARE on the row).
   * @throws CdktrError NOT_LEADER (and steps down when the lease names another).
   */
  readonly fence = async (sql: Sql): Promise<void> => {
    const epoch = this.currentEpoch;
    if (epoch === null) throw notLeader(this.leader());
    const row = await sql.one<{ ok: number }>(FENCE, [this.opts.instanceId, epoch]);
    if (row !== undefined) return;
    if (this.epoch === epoch) this.stepDown(`the lease of epoch ${epoch} was taken by another principal`);
    throw notLeader(this.leader(), "its lease was taken over");
  };

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.ticking;
    const epoch = this.epoch;
    this.clearDeadline();
    this.epoch = null;
    const client = this.client;
    this.client = null;
    if (client === null) return;
    // Let a standby take over at once instead of after the TTL.
    if (epoch !== null) await this.release(epoch, client);
    await client.end().catch(() => undefined);
  }

  /** Expire this principal's lease of `epoch` now (a standby takes it at its next round). */
  private async release(epoch: number, client = this.client): Promise<void> {
    if (client === null) return;
    await sqlOn(client)
      .run(RELEASE, [this.opts.instanceId, epoch])
      .then(
        () => this.logger.info("leadership released", { epoch }),
        (e: unknown) => this.logger.warn("could not release the lease", { error: errorMessage(e) }),
      );
  }

  /** One round: renew (leader) or try to take the lease (standby), then read the row. */
  tick(): Promise<void> {
    if (this.ticking !== null) return this.ticking;
    this.ticking = this.round()
      .then(() => {
        if (this.unreachable) this.logger.info("leader lease: database reachable again");
        this.unreachable = false;
      })
      .catch((e: unknown) => {
        if (!this.unreachable || this.epoch !== null)
          this.logger.warn("leader lease: database round failed (retrying)", { error: errorMessage(e) });
        this.unreachable = true;
        this.dropConnection();
      })
      .finally(() => {
        this.ticking = null;
      });
    return this.ticking;
  }

  private async round(): Promise<void> {
    if (this.stopped || this.self === null) return;
    const sql = await this.connection();
    const self = this.self;
    const hash = this.opts.workflowHash();
    const ttl = this.opts.ttlMs;
    const sent = this.now();
    if (this.isLeader() && this.epoch !== null) {
      const epoch = this.epoch;
      const n = await sql.run(RENEW, [this.opts.instanceId, epoch, ttl, self.api, self.logs, self.publish, hash]);
      if (this.epoch !== epoch) return;
      if (n === 1) this.extend(sent);
      else this.stepDown(`the lease of epoch ${epoch} was taken by another principal`);
    } else if (this.epoch === null && this.now() >= this.holdOffUntil) {
      const row = await sql.one<{ epoch: number; previous_hash: string | null }>(TAKE, [
        this.opts.instanceId,
        ttl,
        self.api,
        self.logs,
        self.publish,
        hash,
      ]);
      if (row !== undefined && !this.stopped) this.elected(row.epoch, sent, row.previous_hash, hash);
    }
    this.known = (await sql.one<LeaseRow>(READ)) ?? null;
    if (!this.isLeader()) this.observe(hash);
  }

  private elected(epoch: number, sent: number, previousHash: string | null, hash: string): void {
    this.epoch = epoch;
    this.extend(sent);
    this.reportedLeader = null;
    this.logger.info(`became leader (epoch ${epoch})`, { epoch, ttlMs: this.opts.ttlMs, endpoints: this.self });
    if (previousHash !== null && previousHash !== hash) {
      this.logger.error(
        "WORKFLOW SET MISMATCH: the previous leader loaded other workflows than this principal; every principal of one database must load the same workflow directory",
        { workflowHash: hash, previousLeaderWorkflowHash: previousHash },
      );
    }
    const events = this.events;
    if (events !== null) {
      this.electing = events.onElected(epoch).catch(async (e: unknown) => {
        this.logger.error("could not start the leader's term", { epoch, error: errorMessage(e) });
        if (this.epoch !== epoch) return;
        this.holdOffUntil = this.now() + this.opts.ttlMs;
        this.stepDown("its term could not start");
        // Let another principal take over now rather than after the TTL.
        await this.release(epoch);
      });
    }
  }

  /** Standby: say who leads (once per leader) and report a workflow set other than the leader's. */
  private observe(hash: string): void {
    const k = this.known;
    const leader = this.leader();
    const key = leader === null ? "none" : `${k?.epoch}:${leader.api}`;
    if (key !== this.reportedLeader) {
      this.reportedLeader = key;
      if (leader === null) this.logger.info("standby: no leader yet");
      else this.logger.info(`standby: leader is ${leader.api}`, { epoch: k?.epoch, leader });
    }
    const theirs = k?.live === true ? k.workflow_hash : null;
    if (theirs !== null && theirs !== hash) {
      const pair = `${theirs}/${hash}`;
      if (pair !== this.reportedMismatch) {
        this.reportedMismatch = pair;
        this.logger.error(
          "WORKFLOW SET MISMATCH: the leader loaded other workflows than this standby; every principal of one database must load the same workflow directory",
          { workflowHash: hash, leaderWorkflowHash: theirs, leader: leader?.api },
        );
      }
    } else this.reportedMismatch = null;
  }

  /** A renewal sent at `sent` succeeded: lead until `sent + TTL - margin` (monotonic). */
  private extend(sent: number): void {
    const ttl = this.opts.ttlMs;
    this.validUntil = sent + ttl - Math.max(50, Math.floor(ttl / 10));
    this.clearDeadline();
    // Stop acting at the deadline even if no request asks (timers, parked polls).
    this.deadline = setTimeout(() => this.isLeader(), Math.max(0, this.validUntil - this.now()) + 1);
    this.deadline.unref();
  }

  private clearDeadline(): void {
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = null;
  }

  private stepDown(reason: string): void {
    const epoch = this.epoch;
    if (epoch === null) return;
    this.epoch = null;
    this.validUntil = 0;
    this.clearDeadline();
    // The row as last read names this principal: who leads now is unknown until the next round.
    if (this.known?.holder === this.opts.instanceId) this.known = null;
    this.logger.warn(`stepped down: ${reason}`, { epoch });
    this.events?.onDeposed(reason);
    // Learn the new leader soon (and try again if none).
    if (!this.stopped && this.opts.periodic !== false) setImmediate(() => void this.tick());
  }

  private schedule(): void {
    if (this.stopped || this.opts.periodic === false) return;
    this.timer = setTimeout(
      () => {
        void this.tick().finally(() => this.schedule());
      },
      Math.max(20, Math.floor(this.opts.ttlMs / 3)),
    );
    this.timer.unref();
  }

  private async connection(): Promise<Sql> {
    if (this.client !== null) return sqlOn(this.client);
    const ttl = this.opts.ttlMs;
    const client = new pg.Client({
      connectionString: this.opts.url,
      types: PG_TYPES,
      keepAlive: true,
      connectionTimeoutMillis: ttl,
      // The server cancels a statement (e.g. a takeover waiting for a stuck transaction) in time.
      statement_timeout: ttl,
      query_timeout: 2 * ttl,
      application_name: "cdktr-principal-leader",
    });
    client.on("error", () => {
      if (this.client === client) this.dropConnection();
    });
    try {
      await client.connect();
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    this.client = client;
    const sql = sqlOn(client);
    // The row of migration 2, should anything have deleted it.
    await sql.run(ENSURE_ROW);
    return sql;
  }

  private dropConnection(): void {
    const c = this.client;
    this.client = null;
    c?.end().catch(() => undefined);
  }
}

import pg from "pg";
import {
  CdktrError,
  systemClock,
  type ApiVerbs,
  type Clock,
  type KeyRecord,
  type LogLine,
  type Logger,
  type ParsedRequestOf,
  type Reason,
  type ReplyOf,
  type RunRecord,
  type TaskRunRecord,
} from "@cdktr/protocol";
import { isBadCursorError, shuttingDown, storageUnavailable } from "../../errors.js";
import { ACTIVE_RUN_STATUSES, type LeaseClaim } from "../../runs/state-machine.js";
import { canonicalJson, reusedByRun, runFromRow, taskFromRow, type RunRow, type TaskRow } from "../rows.js";
import type {
  ActiveRun,
  CancelResult,
  CrashResult,
  CreateRunInput,
  CreateRunResult,
  EnrollKeyResult,
  InsertLogsResult,
  LogClaim,
  NewKey,
  PruneResult,
  RetentionPolicy,
  RevokeKeyResult,
  RunListScope,
  RunStatusUpdate,
  RunUpdateResult,
  Store,
  TableCounts,
  TaskStatusUpdate,
  TaskUpdateResult,
} from "../store.js";
import { migratePostgres } from "./migrations.js";
import { enrollPgKey, listPgKeys, revokePgKey } from "./pg-key-writes.js";
import { PgLane, type PgLaneOptions } from "./pg-lane.js";
import { insertPgLogLines } from "./pg-log-writes.js";
import { listPgRuns, queryPgLogs } from "./pg-read-queries.js";
import { prunePostgres } from "./pg-retention.js";
import { PgRunWrites } from "./pg-run-writes.js";
import { PgSnapshots } from "./pg-snapshots.js";
import { redactUrl } from "./database-url.js";
import { isConnectionError, PG_TYPES, sqlOn, type Sql } from "./sql.js";

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database` (libpq parameters such as `options` too). */
  url: string;
  /** @default systemClock */
  clock?: Clock;
  logger?: Logger;
  /** Connections of the read pool (listings, log queries, `getRun`). @default 4 */
  readConnections?: number;
  /**
   * Runs first in every write transaction of both lanes (see {@link PgLaneOptions.fence}): where a
   * leader's fencing-epoch check goes. A throw fails the transaction's writes. @default none
   */
  fence?: (sql: Sql) => Promise<void>;
  /**
   * The server ends a write connection that sits in an open transaction longer than this (with
   * `fence`: a paused leader never holds the lease row's lock past it). @default none
   */
  idleInTransactionTimeoutMs?: number;
}

const TABLES = [
  "workflow_snapshots",
  "runs",
  "idempotency_keys",
  "task_runs",
  "status_history",
  "logs",
  "keys",
] as const;

/** Longest wait for a new connection, and for one statement, before the database counts as unreachable. */
const CONNECT_TIMEOUT_MS = 5_000;
const QUERY_TIMEOUT_MS = 30_000;

/**
 * PostgreSQL implementation of {@link Store} over `pg`, with the SQLite store's semantics (the
 * state rules are `runs/state-machine.ts`'s, the rows and wire records the same). Writes go through
 * two {@link PgLane}s, each with its own connection: `control` (triggers, dispatch, status
 * reports, keys) and `bulk` (log lines, retention), so a log flood never delays a trigger; each
 * lane group-commits the calls of one event-loop turn in one transaction, a savepoint per call,
 * and settles them after the COMMIT. Reads use a small pool and see every write whose promise has
 * resolved. The schema is migrated at open under an advisory lock.
 *
 * While the database cannot be reached, writes reject with the retryable `STORAGE_UNAVAILABLE`
 * and {@link problems} says `database unreachable`; the lanes reconnect with backoff by themselves.
 */
export class PostgresStore implements Store {
  /** The database URL with its password hidden. */
  readonly database: string;
  private readonly control: PgLane;
  private readonly bulk: PgLane;
  private readonly pool: pg.Pool;
  private readonly reads: Sql;
  private readonly snapshots = new PgSnapshots();
  private readonly runs: PgRunWrites;
  private readonly down = new Set<string>();
  private closed = false;

  private constructor(
    options: PostgresStoreOptions,
    private readonly connect: () => Promise<pg.Client>,
  ) {
    this.database = redactUrl(options.url);
    const clock = options.clock ?? systemClock;
    const logger = options.logger;
    const lane = (name: string, onRollback?: () => void): PgLane =>
      new PgLane({
        name,
        connect,
        clock,
        logger,
        unavailable: (cause) => storageUnavailable(this.database, cause),
        onReachable: (laneName, reachable) => {
          if (reachable) this.down.delete(laneName);
          else this.down.add(laneName);
        },
        ...(onRollback === undefined ? {} : { onRollback }),
        ...(options.fence === undefined ? {} : { fence: options.fence }),
      });
    // Snapshots inserted by a rolled-back batch are gone with it.
    this.control = lane("control", () => this.snapshots.forgetStored());
    this.bulk = lane("bulk");
    this.pool = new pg.Pool({
      connectionString: options.url,
      types: PG_TYPES,
      max: options.readConnections ?? 4,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      application_name: "cdktr-principal-reads",
    });
    // An idle pooled connection that breaks is dropped by the pool; the next read makes a new one.
    this.pool.on("error", () => undefined);
    this.reads = sqlOn(this.pool, false);
    this.runs = new PgRunWrites(this.snapshots);
  }

  /**
   * Connect (the two write connections), migrate the schema and return the store.
   * @throws whatever `pg` throws when the database cannot be reached; SchemaVersionError.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const connect = async (): Promise<pg.Client> => {
      const client = new pg.Client({
        connectionString: options.url,
        types: PG_TYPES,
        keepAlive: true,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        query_timeout: QUERY_TIMEOUT_MS,
        application_name: "cdktr-principal",
        ...(options.idleInTransactionTimeoutMs === undefined
          ? {}
          : { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs }),
      });
      // Until a lane adopts it, an error on it is reported by the failing call.
      client.on("error", () => undefined);
      try {
        await client.connect();
      } catch (e) {
        await client.end().catch(() => undefined);
        throw e;
      }
      return client;
    };
    const store = new PostgresStore(options, connect);
    const opened: pg.Client[] = [];
    try {
      const first = await connect();
      opened.push(first);
      const { from, to } = await migratePostgres(sqlOn(first, false));
      if (from !== to) options.logger?.info("database migrated", { database: store.database, from, to });
      const second = await connect();
      opened.push(second);
      store.control.adopt(first);
      store.bulk.adopt(second);
    } catch (e) {
      await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
      await store.pool.end().catch(() => undefined);
      throw e;
    }
    return store;
  }

  async loadActiveRuns(): Promise<ActiveRun[]> {
    await this.drain();
    const rows = await this.read((sql) =>
      sql.rows<RunRow & { definition: string }>(
        `SELECT r.*, s.definition AS definition FROM runs r JOIN workflow_snapshots s ON s.hash = r.workflow_hash
         WHERE r.status = ANY($1) ORDER BY r.run_id COLLATE "C"`,
        [ACTIVE_RUN_STATUSES],
      ),
    );
    const reused = reusedByRun(
      await this.read((sql) =>
        sql.rows<{ run_id: string; task_id: string }>(
          `SELECT t.run_id, t.task_id FROM task_runs t JOIN runs r ON r.run_id = t.run_id
           WHERE t.reused_from IS NOT NULL AND r.status = ANY($1) ORDER BY t.run_id, t.task_id COLLATE "C"`,
          [ACTIVE_RUN_STATUSES],
        ),
      ),
    );
    return rows.map((row) => ({
      run: runFromRow(row),
      workflow: this.snapshots.parse(row.workflow_hash, row.definition),
      token: row.token,
      leaseKey: row.lease_key,
      leaseExpiresAt: row.lease_expires_at,
      cancelRequested: row.cancel_requested === 1,
      reusedTasks: reused.get(row.run_id) ?? [],
    }));
  }

  createRun(input: CreateRunInput): Promise<CreateRunResult> {
    const requestParams = canonicalJson(input.requestParams);
    const key = input.idempotencyKey;
    return this.control.command(
      (sql, now) => this.runs.create(sql, now, input, requestParams),
      key === null ? undefined : [input.idempotencyScope, key],
    );
  }

  assignRun(
    runId: string,
    agentId: string,
    token: string,
    leaseExpiresAt: number,
    leaseKey: string | null,
  ): Promise<RunRecord | null> {
    return this.control.command((sql, now) =>
      this.runs.assign(sql, now, runId, agentId, token, leaseExpiresAt, leaseKey),
    );
  }

  expireAssignment(runId: string, token: string): Promise<RunRecord | null> {
    return this.control.command((sql, now) => this.runs.expire(sql, now, runId, token));
  }

  confirmAssignment(
    runId: string,
    agentId: string,
    token: string,
    taskIds: string[],
    keyName: string | null,
    startedAt?: number,
  ): Promise<{ run: RunRecord; tasks: TaskRunRecord[] }> {
    return this.control.command((sql, now) =>
      this.runs.confirm(sql, now, runId, agentId, token, taskIds, keyName, startedAt ?? null),
    );
  }

  updateRunStatus(u: RunStatusUpdate, claim: LeaseClaim | null): Promise<RunUpdateResult> {
    return this.control.command((sql, now) => this.runs.report(sql, now, u, claim));
  }

  updateTaskStatus(u: TaskStatusUpdate, claim: LeaseClaim | null): Promise<TaskUpdateResult> {
    return this.control.command((sql, now) => this.runs.taskWrites.report(sql, now, u, claim));
  }

  cancelRun(runId: string): Promise<CancelResult> {
    return this.control.command((sql, now) => this.runs.cancel(sql, now, runId));
  }

  crashRun(runId: string, reason: Reason, message: string, requeueRunId: string | null): Promise<CrashResult | null> {
    return this.control.command((sql, now) => this.runs.crash(sql, now, runId, reason, message, requeueRunId));
  }

  async getRun(runId: string): Promise<{ run: RunRecord; tasks: TaskRunRecord[] } | null> {
    return this.read(async (sql) => {
      const row = await sql.one<RunRow>("SELECT * FROM runs WHERE run_id = $1", [runId]);
      if (row === undefined) return null;
      const tasks = await sql.rows<TaskRow>('SELECT * FROM task_runs WHERE run_id = $1 ORDER BY task_id COLLATE "C"', [
        runId,
      ]);
      return { run: runFromRow(row), tasks: tasks.map(taskFromRow) };
    });
  }

  listRuns(
    req: ParsedRequestOf<ApiVerbs, "listRuns">,
    scope: RunListScope = {},
  ): Promise<ReplyOf<ApiVerbs, "listRuns">> {
    const query = scope.triggeredBy === undefined ? req : { ...req, triggeredBy: scope.triggeredBy };
    return this.read((sql) => listPgRuns(sql, query));
  }

  queryLogs(req: ParsedRequestOf<ApiVerbs, "queryLogs">): Promise<ReplyOf<ApiVerbs, "queryLogs">> {
    return this.read((sql) => queryPgLogs(sql, req));
  }

  insertLogs(lines: LogLine[], claim: LogClaim | null): Promise<InsertLogsResult> {
    return this.bulk.command((sql) => insertPgLogLines(sql, lines, claim));
  }

  enrollKey(key: NewKey): Promise<EnrollKeyResult> {
    return this.control.command((sql, now) => enrollPgKey(sql, now, key));
  }

  async listKeys(): Promise<KeyRecord[]> {
    await this.drain();
    return this.read(listPgKeys);
  }

  revokeKey(name: string): Promise<RevokeKeyResult | null> {
    return this.control.command((sql, now) => revokePgKey(sql, now, name));
  }

  prune(policy: RetentionPolicy): Promise<PruneResult> {
    return prunePostgres(this.bulk, policy, () => this.snapshots.forgetStored());
  }

  async counts(): Promise<TableCounts> {
    await this.drain();
    const out: TableCounts = {};
    for (const t of TABLES) {
      out[t] = (await this.read((sql) => sql.one<{ n: number }>(`SELECT count(*) AS n FROM ${t}`)))?.n ?? 0;
    }
    return out;
  }

  problems(): string[] {
    return this.down.size > 0 ? ["database unreachable"] : [];
  }

  /** Resolves once every write queued so far (both lanes) has settled. */
  async drain(): Promise<void> {
    await Promise.all([this.control.drain(), this.bulk.drain()]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.control.close(), this.bulk.close()]);
    await this.pool.end().catch(() => undefined);
  }

  /** A read on the pool; a lost connection is the retryable STORAGE_UNAVAILABLE, a bad cursor BAD_REQUEST. */
  private async read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    if (this.closed) throw shuttingDown("retry against the next one");
    try {
      return await fn(this.reads);
    } catch (e) {
      if (isBadCursorError(e)) throw new CdktrError("BAD_REQUEST", e.message);
      if (isConnectionError(e)) throw storageUnavailable(this.database, e);
      throw e;
    }
  }
}

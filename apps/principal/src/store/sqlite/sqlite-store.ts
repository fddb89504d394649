import { mkdirSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import {
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
import { shuttingDown, storageFull } from "../../errors.js";
import type { LeaseClaim } from "../../runs/state-machine.js";
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
  RevokeKeyResult,
  RunListScope,
  PruneResult,
  RetentionPolicy,
  RunStatusUpdate,
  RunUpdateResult,
  Store,
  TableCounts,
  TaskStatusUpdate,
  TaskUpdateResult,
} from "../store.js";
import { GroupCommit } from "./group-commit.js";
import { canonicalJson } from "../rows.js";
import { KeyWrites } from "./key-writes.js";
import { insertLogLinesInPieces } from "./log-writes.js";
import { copyLegacyLogs, logDatabasePath, openLogDatabase } from "./log-database.js";
import { LOGS_MOVED_VERSION, migrate } from "./migrations.js";
import { ReadPool } from "./read-pool.js";
import { pruneDatabase } from "./retention.js";
import { reusedByRun, runFromRow, taskFromRow, type RunRow } from "../rows.js";
import { RunWrites } from "./run-writes.js";
import { WorkflowSnapshots } from "./snapshots.js";
import { activeRunCondition } from "./sql-lists.js";
import { Tables } from "./tables.js";
import { mainWriteTurn, newWriteTurnsBuffer } from "./write-turns.js";
import { TaskWrites } from "./task-writes.js";

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** Path of the database file; its directory is created. */
  path: string;
  /** @default systemClock */
  clock?: Clock;
  logger?: Logger;
  /**
   * Answer listRuns/queryLogs in a worker thread with its own read-only connection.
   * @default true
   */
  readWorker?: boolean;
}

/** While the disk is full, how often the store checks whether space is back. */
const FULL_DISK_PROBE_MS = 1000;
/**
 * Free space the database's file system needs before the probe tries a write again: a tiny write
 * may fit in the WAL's slack on a disk that is still full, which would say "healthy" too early.
 */
const FULL_DISK_PROBE_FREE_BYTES = 1024 * 1024;

/** Tables of the main file ({@link SqliteStore.counts}); `logs` is in the log database. */
const TABLES = ["workflow_snapshots", "runs", "idempotency_keys", "task_runs", "status_history", "keys"] as const;

/**
 * SQLite implementation of {@link Store} over better-sqlite3 (WAL, `synchronous=FULL`), put
 * together from its parts. Two files: the main one (`path`: runs, tasks, history, idempotency
 * keys, snapshots, keys) and the log database beside it ({@link logsPath}, `log-database.ts`),
 * so that log lines never hold the write lock triggers and statuses need. The write path of each
 * is a {@link GroupCommit} (one transaction per event-loop turn, a savepoint per command, in a
 * control and a bulk lane; every promise settles after its COMMIT is durable), the domain writes
 * ({@link RunWrites}, {@link TaskWrites}, idempotency keys; log lines in ~2 ms pieces) run inside
 * their commands and ask the state machine for every status change, heavy reads go to a
 * {@link ReadPool} of worker threads, and retention deletes in small chunks (`retention.ts`).
 */
export class SqliteStore implements Store {
  /** Path of the main database file. */
  readonly path: string;
  /** Path of the log database beside it (`cdktr.db` -> `cdktr.logs.db`). */
  readonly logsPath: string;
  private readonly db: Database.Database;
  private readonly tables: Tables;
  private readonly commit: GroupCommit;
  private readonly logsDb: Database.Database;
  private readonly logTables: Tables;
  private readonly logCommit: GroupCommit;
  private readonly reads: ReadPool;
  private readonly snapshots = new WorkflowSnapshots();
  private readonly runs: RunWrites;
  private readonly tasks: TaskWrites;
  private readonly keys: KeyWrites;
  private closed = false;
  private probe: NodeJS.Timeout | null = null;
  /**
   * Turns at the log database's write lock with a second writer connection of this process (the
   * principal's log-ingest thread): hand it to that thread ({@link GroupCommit} `turn`).
   */
  readonly writeTurns: SharedArrayBuffer = newWriteTurnsBuffer();
  /** Problems the log-ingest thread reported for its writes to the log database. */
  private logWriterProblems: string[] = [];

  private constructor(options: SqliteStoreOptions) {
    const logger = options.logger;
    this.path = options.path;
    mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("foreign_keys = ON");
    this.logsPath = logDatabasePath(options.path);
    let logsDb: Database.Database | undefined;
    try {
      const opened = openLogDatabase(this.logsPath);
      logsDb = opened;
      const { from, to } = migrate(this.db, undefined, {
        before: (version) => {
          if (version !== LOGS_MOVED_VERSION) return;
          const lines = copyLegacyLogs(opened, options.path);
          if (lines > 0) logger?.info("log lines moved to the log database", { to: this.logsPath, lines });
        },
      });
      if (from !== to) logger?.info("database migrated", { path: options.path, from, to });
    } catch (e) {
      this.db.close();
      logsDb?.close();
      throw e;
    }
    this.logsDb = logsDb;
    this.tables = new Tables(this.db);
    this.logTables = new Tables(this.logsDb);
    const clock = options.clock ?? systemClock;
    this.commit = new GroupCommit({
      db: this.db,
      clock,
      logger,
      // Snapshots inserted by a rolled-back batch are gone with it.
      onRollback: () => this.snapshots.forgetStored(),
      storageFull: (cause) => {
        this.probeUntilWritable();
        return storageFull(options.path, cause);
      },
    });
    this.logCommit = new GroupCommit({
      db: this.logsDb,
      clock,
      logger,
      storageFull: (cause) => {
        this.probeUntilWritable();
        return storageFull(this.logsPath, cause);
      },
      turn: mainWriteTurn(this.writeTurns),
    });
    this.reads = new ReadPool({
      path: options.path,
      logsPath: this.logsPath,
      db: this.db,
      logsDb: this.logsDb,
      useWorkers: options.readWorker ?? true,
      logger,
    });
    this.tasks = new TaskWrites(this.tables);
    this.runs = new RunWrites(this.tables, this.snapshots, this.tasks);
    this.keys = new KeyWrites(this.tables);
  }

  /**
   * Open (creating and migrating) the database.
   * @throws SchemaVersionError when its schema is newer than this code; better-sqlite3's error
   * when the file cannot be opened (`createPrincipal` wraps both in a PrincipalStartError).
   */
  static open(options: SqliteStoreOptions): SqliteStore {
    return new SqliteStore(options);
  }

  async loadActiveRuns(): Promise<ActiveRun[]> {
    await this.drain();
    const active = activeRunCondition("r.status");
    const rows = this.tables
      .sql(
        `SELECT r.*, s.definition AS definition FROM runs r JOIN workflow_snapshots s ON s.hash = r.workflow_hash
         WHERE ${active.sql} ORDER BY r.run_id`,
      )
      .all(...active.params) as (RunRow & { definition: string })[];
    const reused = reusedByRun(
      this.tables
        .sql(
          `SELECT t.run_id, t.task_id FROM task_runs t JOIN runs r ON r.run_id = t.run_id
           WHERE t.reused_from IS NOT NULL AND ${active.sql} ORDER BY t.run_id, t.task_id`,
        )
        .all(...active.params) as { run_id: string; task_id: string }[],
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
    return this.commit.command((now) => this.runs.create(now, input, requestParams));
  }

  assignRun(
    runId: string,
    agentId: string,
    token: string,
    leaseExpiresAt: number,
    leaseKey: string | null,
  ): Promise<RunRecord | null> {
    return this.commit.command((now) => this.runs.assign(now, runId, agentId, token, leaseExpiresAt, leaseKey));
  }

  expireAssignment(runId: string, token: string): Promise<RunRecord | null> {
    return this.commit.command((now) => this.runs.expire(now, runId, token));
  }

  confirmAssignment(
    runId: string,
    agentId: string,
    token: string,
    taskIds: string[],
    keyName: string | null,
    startedAt?: number,
  ): Promise<{ run: RunRecord; tasks: TaskRunRecord[] }> {
    return this.commit.command((now) =>
      this.runs.confirm(now, runId, agentId, token, taskIds, keyName, startedAt ?? null),
    );
  }

  updateRunStatus(u: RunStatusUpdate, claim: LeaseClaim | null): Promise<RunUpdateResult> {
    return this.commit.command((now) => this.runs.report(now, u, claim));
  }

  updateTaskStatus(u: TaskStatusUpdate, claim: LeaseClaim | null): Promise<TaskUpdateResult> {
    return this.commit.command((now) => this.tasks.report(now, u, claim));
  }

  cancelRun(runId: string): Promise<CancelResult> {
    return this.commit.command((now) => this.runs.cancel(now, runId));
  }

  crashRun(runId: string, reason: Reason, message: string, requeueRunId: string | null): Promise<CrashResult | null> {
    return this.commit.command((now) => this.runs.crash(now, runId, reason, message, requeueRunId));
  }

  async getRun(runId: string): Promise<{ run: RunRecord; tasks: TaskRunRecord[] } | null> {
    const row = this.tables.runRow(runId);
    if (row === undefined) return null;
    return { run: runFromRow(row), tasks: this.tables.taskRows(runId).map(taskFromRow) };
  }

  listRuns(
    req: ParsedRequestOf<ApiVerbs, "listRuns">,
    scope: RunListScope = {},
  ): Promise<ReplyOf<ApiVerbs, "listRuns">> {
    const query = scope.triggeredBy === undefined ? req : { ...req, triggeredBy: scope.triggeredBy };
    return this.read("listRuns", query) as Promise<ReplyOf<ApiVerbs, "listRuns">>;
  }

  queryLogs(req: ParsedRequestOf<ApiVerbs, "queryLogs">): Promise<ReplyOf<ApiVerbs, "queryLogs">> {
    return this.read("queryLogs", req) as Promise<ReplyOf<ApiVerbs, "queryLogs">>;
  }

  insertLogs(lines: LogLine[], claim: LogClaim | null): Promise<InsertLogsResult> {
    return this.logCommit.commandInPieces(insertLogLinesInPieces(this.tables, this.logTables, lines, claim), "bulk");
  }

  enrollKey(key: NewKey): Promise<EnrollKeyResult> {
    return this.commit.command((now) => this.keys.enroll(now, key));
  }

  async listKeys(): Promise<KeyRecord[]> {
    await this.drain();
    return this.keys.list();
  }

  revokeKey(name: string): Promise<RevokeKeyResult | null> {
    return this.commit.command((now) => this.keys.revoke(now, name));
  }

  prune(policy: RetentionPolicy): Promise<PruneResult> {
    return pruneDatabase(
      { db: this.db, commit: this.commit, logsDb: this.logsDb, logCommit: this.logCommit },
      policy,
      () => this.snapshots.forgetStored(),
    );
  }

  async counts(): Promise<TableCounts> {
    await this.drain();
    const out: TableCounts = {};
    for (const t of TABLES) out[t] = (this.db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    out.logs = (this.logsDb.prepare("SELECT count(*) AS n FROM logs").get() as { n: number }).n;
    return out;
  }

  problems(): string[] {
    const own = this.commit.storageFull || this.logCommit.storageFull ? ["disk full"] : [];
    return [...new Set([...own, ...this.logWriterProblems])];
  }

  /** What the log-ingest thread's writes to the log database run into now (merged into {@link problems}). */
  setLogWriterProblems(problems: string[]): void {
    this.logWriterProblems = problems;
  }

  /** Resolves once every command queued so far (on both files) is committed. */
  async drain(): Promise<void> {
    await Promise.all([this.commit.drain(), this.logCommit.drain()]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true; // refuse new reads; the commit queue refuses new commands, then commits the queued ones
    if (this.probe !== null) clearInterval(this.probe);
    this.probe = null;
    await Promise.all([this.commit.close(), this.logCommit.close()]);
    await this.reads.close();
    for (const db of [this.db, this.logsDb]) {
      db.pragma("wal_checkpoint(TRUNCATE)");
      db.close();
    }
  }

  /**
   * While the disk is full, check every second whether its file system has 1 MiB free again and
   * then write one row (the schema version, unchanged) to each file whose writes failed: the store
   * notices free space by itself, even when no client writes (ping turns `ok` again).
   */
  private probeUntilWritable(): void {
    if (this.probe !== null || this.closed) return;
    const probes = [
      { commit: this.commit, write: this.db.prepare("UPDATE schema_version SET version = version") },
      { commit: this.logCommit, write: this.logsDb.prepare("UPDATE schema_version SET version = version") },
    ];
    const dir = dirname(this.path);
    this.probe = setInterval(() => {
      const full = probes.filter((p) => p.commit.storageFull);
      if (full.length === 0 || this.closed) {
        if (this.probe !== null) clearInterval(this.probe);
        this.probe = null;
        return;
      }
      try {
        const fs = statfsSync(dir);
        if (fs.bavail * fs.bsize < FULL_DISK_PROBE_FREE_BYTES) return;
      } catch {
        // No statfs here: let the write decide.
      }
      for (const p of full) p.commit.command(() => p.write.run()).catch(() => undefined);
    }, FULL_DISK_PROBE_MS);
    this.probe.unref();
  }

  private read(kind: "listRuns" | "queryLogs", req: unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(shuttingDown("retry against the next one"));
    return this.reads.read(kind, req);
  }
}

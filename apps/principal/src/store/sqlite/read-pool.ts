import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";
import { CdktrError, type Logger } from "@cdktr/protocol";
import { isBadCursorError, shuttingDown } from "../../errors.js";
import type { ReadKind, ReadReply } from "./read-queries.js";

/** Read worker threads (each with its own read-only connection). */
const READ_WORKERS = 2;

interface WorkerSlot {
  worker: Worker;
  /** Reads posted and not yet answered. */
  pending: number;
}

interface PendingRead {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  slot: WorkerSlot;
}

/** Options of {@link ReadPool}. */
export interface ReadPoolOptions {
  /** Path of the main database file the workers open read-only (`listRuns`). */
  path: string;
  /** Path of the log database the workers open read-only (`queryLogs`). */
  logsPath: string;
  /** The writer connections of the two files, used for the reads when `useWorkers` is false. */
  db: Database.Database;
  logsDb: Database.Database;
  /** Answer in worker threads (true) or on the calling thread (tests, diagnostics). */
  useWorkers: boolean;
  logger?: Logger | undefined;
}

/**
 * The heavy, paged reads (`listRuns`, `queryLogs`) off the main event loop: two worker threads,
 * started on first use, each with its own read-only WAL connections (`read-worker.ts`); a read
 * goes to the least busy one, so one long scan does not hold up a listing.
 */
export class ReadPool {
  private workers: WorkerSlot[] = [];
  private nextReadId = 1;
  private readonly reads = new Map<number, PendingRead>();
  private closed = false;

  constructor(private readonly opts: ReadPoolOptions) {}

  /**
   * Answer one read.
   * @throws CdktrError BAD_REQUEST for an undecodable cursor, INTERNAL when a worker fails,
   * SHUTTING_DOWN after {@link close} (all as rejections).
   */
  read(kind: ReadKind, req: unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(shuttingDown("retry against the next one"));
    if (!this.opts.useWorkers) {
      return import("./read-queries.js").then((q) => {
        try {
          return kind === "listRuns"
            ? q.listRuns(this.opts.db, req as never)
            : q.queryLogs(this.opts.logsDb, req as never);
        } catch (e) {
          if (isBadCursorError(e)) throw new CdktrError("BAD_REQUEST", e.message);
          throw e;
        }
      });
    }
    const slot = this.pickWorker();
    const id = this.nextReadId++;
    return new Promise((resolve, reject) => {
      this.reads.set(id, { resolve, reject, slot });
      slot.pending++;
      slot.worker.postMessage({ id, kind, req });
    });
  }

  /** Reject the reads in flight and stop the workers. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [, r] of this.reads) r.reject(shuttingDown("retry against the next one"));
    this.reads.clear();
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }

  /** The least busy read worker (started on first use). */
  private pickWorker(): WorkerSlot {
    while (this.workers.length < READ_WORKERS) this.workers.push(this.startWorker());
    let best = this.workers[0] as WorkerSlot;
    for (const w of this.workers) if (w.pending < best.pending) best = w;
    return best;
  }

  private startWorker(): WorkerSlot {
    const worker = new Worker(new URL("./read-worker.js", import.meta.url), {
      workerData: { dbPath: this.opts.path, logsPath: this.opts.logsPath },
    });
    worker.unref();
    const slot: WorkerSlot = { worker, pending: 0 };
    worker.on("message", (msg: ReadReply) => {
      const pending = this.reads.get(msg.id);
      if (pending === undefined) return;
      this.reads.delete(msg.id);
      slot.pending--;
      if (msg.ok) pending.resolve(msg.value);
      else
        pending.reject(
          new CdktrError(msg.badRequest === true ? "BAD_REQUEST" : "INTERNAL", msg.message ?? "read failed"),
        );
    });
    const fail = (why: string): void => {
      this.workers = this.workers.filter((w) => w !== slot);
      for (const [id, r] of this.reads) {
        if (r.slot !== slot) continue;
        this.reads.delete(id);
        r.reject(new CdktrError("INTERNAL", `read worker ${why}: retry the request`));
      }
    };
    worker.on("error", (e) => {
      this.opts.logger?.error("read worker failed", { error: e.message });
      fail("failed");
    });
    worker.on("exit", () => fail("exited"));
    return slot;
  }
}

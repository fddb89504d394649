/**
 * The options of the log shipper, and their defaults.
 */
import type { LogLine, Logger } from "@cdktr/protocol";
import type { SyncBatch } from "../data-dir/sync-batch.js";

/**
 * Delivers one batch with the assignment token of each of its runs (runId -> token); resolves
 * once the principal stored it (or already had it).
 */
export type LogSink = (lines: LogLine[], tokens: Record<string, string>) => Promise<void>;

/** Options of `LogShipper`. */
export interface LogShipperOptions {
  sink: LogSink;
  /** Directory of the spool files (created if needed). */
  spoolDir: string;
  /** Cap of the spool files' total size. */
  spoolMaxBytes: number;
  logger: Logger;
  /** @default 2000 */
  maxBatchLines?: number;
  /** Approximate cap of one batch's encoded size. @default 524288 */
  maxBatchBytes?: number;
  /** How long to wait for more lines before sending a small batch. @default 50 */
  lingerMs?: number;
  /** In-memory bytes (all tasks) at which every task with lines in memory is paused. @default 8 MiB */
  memoryHighBytes?: number;
  /**
   * In-memory bytes of one task (run, task) at which that task alone is paused; it resumes below
   * half of it. @default memoryHighBytes / 4
   */
  taskMemoryHighBytes?: number;
  /** Largest spool file. @default 8 MiB */
  spoolFileBytes?: number;
  /**
   * First delay before resending after a failed send (then doubling, with jitter: `backoffDelay`).
   * @default 100
   */
  retryBaseMs?: number;
  /** Largest delay between resends. @default 2000 */
  retryMaxMs?: number;
  /** Where spool files are fsynced (batched with the agent's other records). @default one of its own */
  sync?: SyncBatch;
  /** Called with the number of lines of each batch the principal acknowledged (metrics). */
  onDelivered?: (lines: number) => void;
}

/** {@link LogShipperOptions} with every default filled in. */
export type ResolvedLogShipperOptions = Required<
  Omit<LogShipperOptions, "sink" | "logger" | "spoolDir" | "spoolMaxBytes" | "sync" | "onDelivered">
> &
  LogShipperOptions;

/** Fill in the defaults of `options`. */
export function withDefaults(options: LogShipperOptions): ResolvedLogShipperOptions {
  return {
    maxBatchLines: 2000,
    maxBatchBytes: 512 * 1024,
    lingerMs: 50,
    memoryHighBytes: 8 * 1024 * 1024,
    spoolFileBytes: 8 * 1024 * 1024,
    retryBaseMs: 100,
    retryMaxMs: 2000,
    ...options,
    taskMemoryHighBytes: options.taskMemoryHighBytes ?? Math.floor((options.memoryHighBytes ?? 8 * 1024 * 1024) / 4),
  };
}

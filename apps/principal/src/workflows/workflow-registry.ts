import { watch, type FSWatcher } from "chokidar";
import { createHash } from "node:crypto";
import {
  errorMessage,
  noopLogger,
  type ApiVerbs,
  type Clock,
  type Logger,
  type ReplyOf,
  type TimerHandle,
  type WorkflowDefinition,
  type WorkflowLoadError,
  type WorkflowsChangedEvent,
} from "@cdktr/protocol";
import { canonicalJson } from "../store/rows.js";
import { every, type RepeatingTimer } from "../time/every.js";

/** The part of a directory scan the registry uses (`ScanResult` of `@cdktr/workflow`). */
export interface WorkflowScan {
  workflows: Map<string, WorkflowDefinition>;
  errors: WorkflowLoadError[];
  warnings: WorkflowLoadError[];
}

/** Options of {@link WorkflowRegistry}. */
export interface WorkflowRegistryOptions {
  /** Scans the directory (e.g. `WorkflowDirectory.scan`). Must not throw for bad files. */
  scan: () => Promise<WorkflowScan>;
  /** The start version, and the time of the debounce and of the periodic scan. */
  clock: Clock;
  logger?: Logger;
  /** Called after each change with the event to publish on `topics.workflows()`. */
  onChange?: (event: WorkflowsChangedEvent) => void;
  /** Directory to watch for changes (debounced); omit to rely on {@link refresh} calls only. */
  watchDir?: string;
  /** Period of the fallback full scan, ms (0 = none). */
  refreshMs?: number;
  /** @default 100 */
  debounceMs?: number;
}

/**
 * The principal's versioned view of the workflow directory.
 *
 * The version starts at the principal's start time in epoch ms and grows by one per change, so a
 * `sinceVersion` from before a restart is older than the start version and gets a full listing
 * (never a wrong incremental one). Each id remembers the version it last changed at, and removed
 * ids the version they were removed at.
 */
export class WorkflowRegistry {
  private current = new Map<string, WorkflowDefinition>();
  private readonly changedAt = new Map<string, number>();
  private readonly removedAt = new Map<string, number>();
  private errors: WorkflowLoadError[] = [];
  private readonly startVersion: number;
  private versionNo: number;
  private readonly logger: Logger;
  private watcher: FSWatcher | null = null;
  private debounce: TimerHandle | null = null;
  private interval: RepeatingTimer | null = null;
  private scanning: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private setHashOf: string | null = null;

  constructor(private readonly opts: WorkflowRegistryOptions) {
    this.logger = opts.logger ?? noopLogger;
    this.startVersion = opts.clock.now();
    this.versionNo = this.startVersion;
  }

  /** The current version. */
  get version(): number {
    return this.versionNo;
  }

  /** Number of active workflows. */
  get size(): number {
    return this.current.size;
  }

  /**
   * Hash of the loaded workflow set (SHA-256 of the canonical JSON of every definition, sorted
   * by id, without the source file's hash: comments and formatting do not count): the same on
   * principals that load the same workflows, compared between the principals of one database and
   * reported in `ping`.
   */
  get setHash(): string {
    if (this.setHashOf === null) {
      const h = createHash("sha256");
      const ids = [...this.current.keys()].sort();
      for (const id of ids) {
        const { hash: _fileHash, ...definition } = this.current.get(id) as WorkflowDefinition;
        h.update(`${canonicalJson(definition)}\n`);
      }
      this.setHashOf = h.digest("hex");
    }
    return this.setHashOf;
  }

  /** The active definition of `id`. */
  get(id: string): WorkflowDefinition | undefined {
    return this.current.get(id);
  }

  /** Load the directory once, then watch it (if configured) and scan periodically. */
  async start(): Promise<void> {
    await this.refresh();
    if (this.opts.watchDir !== undefined) {
      try {
        this.watcher = watch(this.opts.watchDir, { ignoreInitial: true, persistent: true });
        this.watcher.on("all", () => this.schedule());
        this.watcher.on("error", (e: unknown) =>
          this.logger.warn("workflow watcher error (the periodic scan goes on)", { error: errorMessage(e) }),
        );
      } catch (e) {
        this.logger.warn("cannot watch the workflow directory (the periodic scan goes on)", {
          error: errorMessage(e),
        });
      }
    }
    const refreshMs = this.opts.refreshMs ?? 0;
    if (refreshMs > 0) this.interval = every(this.opts.clock, refreshMs, () => void this.refresh());
  }

  /** Stop watching and scanning. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.debounce !== null) this.opts.clock.clearTimer(this.debounce);
    this.interval?.stop();
    const w = this.watcher;
    this.watcher = null;
    if (w !== null) await w.close();
    if (this.scanning !== null) await this.scanning;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.debounce !== null) this.opts.clock.clearTimer(this.debounce);
    this.debounce = this.opts.clock.setTimer(() => {
      this.debounce = null;
      void this.refresh();
    }, this.opts.debounceMs ?? 100);
  }

  /** Rescan now (serialised: a call during a scan runs one more scan after it). */
  refresh(): Promise<void> {
    if (this.scanning !== null) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.again = false;
        try {
          this.apply(await this.opts.scan());
        } catch (e) {
          this.logger.error("workflow directory scan failed (keeping the current workflows)", {
            error: errorMessage(e),
          });
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  private apply(scan: WorkflowScan): void {
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [id, wf] of scan.workflows) {
      if (this.current.get(id)?.hash !== wf.hash) changed.push(id);
    }
    for (const id of this.current.keys()) if (!scan.workflows.has(id)) removed.push(id);
    // Each new problem is logged once by the scanner (WorkflowDirectory) with its file:line.
    this.errors = scan.errors;
    if (changed.length === 0 && removed.length === 0) return;
    this.versionNo++;
    for (const id of changed) {
      this.changedAt.set(id, this.versionNo);
      this.removedAt.delete(id);
    }
    for (const id of removed) {
      this.removedAt.set(id, this.versionNo);
      this.changedAt.delete(id);
    }
    this.current = new Map(scan.workflows);
    this.setHashOf = null;
    this.logger.info("workflows changed", { version: this.versionNo, changed, removed, workflows: this.current.size });
    this.opts.onChange?.({ version: this.versionNo, changed, removed });
  }

  /** Answer `listWorkflows`: everything, or only what changed after `sinceVersion`. */
  list(sinceVersion?: number): ReplyOf<ApiVerbs, "listWorkflows"> {
    const errors = [...this.errors];
    const all = (): ReplyOf<ApiVerbs, "listWorkflows"> => ({
      version: this.versionNo,
      full: true,
      workflows: [...this.current.values()].sort((a, b) => (a.id < b.id ? -1 : 1)),
      removed: [],
      errors,
    });
    if (sinceVersion === undefined || sinceVersion < this.startVersion || sinceVersion > this.versionNo) return all();
    const workflows: WorkflowDefinition[] = [];
    for (const [id, v] of this.changedAt) {
      const wf = this.current.get(id);
      if (v > sinceVersion && wf !== undefined) workflows.push(wf);
    }
    const removed = [...this.removedAt].filter(([, v]) => v > sinceVersion).map(([id]) => id);
    return {
      version: this.versionNo,
      full: false,
      workflows: workflows.sort((a, b) => (a.id < b.id ? -1 : 1)),
      removed,
      errors,
    };
  }
}

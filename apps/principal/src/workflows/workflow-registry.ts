import { createHash } from "node:crypto";
import { relative, sep } from "node:path";
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
import { DirectoryWatcher, type DirectoryChange } from "./directory-watcher.js";

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
  /**
   * Scans only the given files (relative to `watchDir`, `/` separated: what the watcher reported),
   * taking every other file as it was (`WorkflowDirectory.scan(paths)`); without it every watch
   * event means a full {@link scan}.
   */
  scanPaths?: (paths: string[]) => Promise<WorkflowScan>;
  /** Called once at {@link WorkflowRegistry.stop}, after the last scan (e.g. to finish writing an index). */
  onStop?: () => Promise<void>;
  /** The start version, and the time of the debounce and of the periodic scan. */
  clock: Clock;
  logger?: Logger;
  /** Called after each change with the event to publish on `topics.workflows()`. */
  onChange?: (event: WorkflowsChangedEvent) => void;
  /**
   * Directory to watch for changes (debounced; one watch per folder, see `DirectoryWatcher`);
   * omit to rely on {@link refresh} calls only.
   */
  watchDir?: string;
  /** Which file names under {@link watchDir} are workflow files (events of others are ignored). @default every name */
  isWorkflowFile?: (name: string) => boolean;
  /** Period of the fallback full scan, ms (0 = none). */
  refreshMs?: number;
  /**
   * How long to wait for more watch events before scanning (an editor's save is often several
   * events: write, rename, chmod). @default 25
   */
  debounceMs?: number;
}

/** Watch events gathered for one scan of given files; beyond it the scan is a full one. */
const MAX_WATCHED_PATHS = 1000;

/** SHA-256 of each definition's canonical JSON (without the file hash), by definition object. */
const digests = new WeakMap<WorkflowDefinition, string>();

function definitionDigest(wf: WorkflowDefinition): string {
  let d = digests.get(wf);
  if (d === undefined) {
    const { hash: _fileHash, ...definition } = wf;
    d = createHash("sha256").update(canonicalJson(definition)).digest("hex");
    digests.set(wf, d);
  }
  return d;
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
  private watcher: DirectoryWatcher | null = null;
  private debounce: TimerHandle | null = null;
  private interval: RepeatingTimer | null = null;
  private scanning: Promise<void> | null = null;
  /** What the next scan must cover: everything, or the files the watcher reported. */
  private pendingFull = false;
  private readonly pendingPaths = new Set<string>();
  /** Watch events since the debounce started: null = one needs a full scan (a directory changed). */
  private watched: Set<string> | null = new Set();
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
   * Hash of the loaded workflow set (SHA-256 over each id and the SHA-256 of its definition's
   * canonical JSON, sorted by id, without the source file's hash: comments and formatting do not
   * count): the same on principals that load the same workflows, compared between the principals
   * of one database and reported in `ping`. A definition's digest is computed once (a change
   * costs the changed definitions, not all of them).
   */
  get setHash(): string {
    if (this.setHashOf === null) {
      const h = createHash("sha256");
      const ids = [...this.current.keys()].sort();
      for (const id of ids) h.update(`${id}:${definitionDigest(this.current.get(id) as WorkflowDefinition)}\n`);
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
      const root = this.opts.watchDir;
      const watcher = new DirectoryWatcher({
        root,
        isFile: this.opts.isWorkflowFile ?? (() => true),
        onChange: (c) => this.schedule(c),
        onError: (e, dir) =>
          this.logger.warn("workflow watcher error (the periodic scan goes on)", { dir, error: errorMessage(e) }),
      });
      try {
        watcher.start();
        this.watcher = watcher;
      } catch (e) {
        watcher.close();
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
    this.watcher?.close();
    this.watcher = null;
    if (this.scanning !== null) await this.scanning;
    await this.opts.onStop?.();
  }

  /** A watch event: a file's change is scanned on its own; a change of the tree's folders needs a full scan. */
  private schedule(change: DirectoryChange): void {
    if (this.stopped) return;
    const dir = this.opts.watchDir;
    if (this.watched !== null && dir !== undefined && change.kind === "file") {
      this.watched.add(relative(dir, change.path).split(sep).join("/"));
      // Past this many files (a checkout, a copied tree) a full scan costs no more, and holds nothing.
      if (this.watched.size > MAX_WATCHED_PATHS) this.watched = null;
    } else {
      this.watched = null;
    }
    if (this.debounce !== null) this.opts.clock.clearTimer(this.debounce);
    this.debounce = this.opts.clock.setTimer(() => {
      this.debounce = null;
      const paths = this.watched;
      this.watched = new Set();
      void this.refresh(paths === null ? undefined : [...paths]);
    }, this.opts.debounceMs ?? 25);
  }

  /**
   * Rescan now: everything, or only `paths` (relative to the watched directory) when a
   * `scanPaths` is configured. Serialised: what is asked during a scan is scanned after it.
   */
  refresh(paths?: readonly string[]): Promise<void> {
    if (paths === undefined || this.opts.scanPaths === undefined) this.pendingFull = true;
    else for (const p of paths) this.pendingPaths.add(p);
    if (this.pendingPaths.size > MAX_WATCHED_PATHS) {
      this.pendingFull = true;
      this.pendingPaths.clear();
    }
    if (this.scanning !== null) return this.scanning;
    this.scanning = (async () => {
      while ((this.pendingFull || this.pendingPaths.size > 0) && !this.stopped) {
        const full = this.pendingFull;
        const only = [...this.pendingPaths];
        this.pendingFull = false;
        this.pendingPaths.clear();
        try {
          this.apply(
            full || this.opts.scanPaths === undefined ? await this.opts.scan() : await this.opts.scanPaths(only),
          );
        } catch (e) {
          this.logger.error("workflow directory scan failed (keeping the current workflows)", {
            error: errorMessage(e),
          });
        }
      }
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

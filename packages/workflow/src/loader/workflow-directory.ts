/**
 * A directory of workflow files, scanned incrementally: only files whose `stat` changed are read,
 * and only files whose content hash changed are parsed again, so re-scanning 10,000 unchanged
 * files costs 10,000 `stat` calls. With an index file the same holds across restarts, and a scan
 * of given paths (what a file watcher reported) looks at those files only.
 */
import { createHash } from "node:crypto";
import type { Dirent, Stats } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { errorMessage, type WorkflowDefinition, type WorkflowLoadError } from "@cdktr/protocol";
import { findCycle } from "../dag/graph.js";
import { parseWorkflowText, workflowIdFromPath } from "./parse-workflow-text.js";
import type { ParseWorkflowResult } from "./parse-workflow-text.js";
import { readScanIndex, writeScanIndex, type ScanIndexEntry } from "./scan-index.js";

/**
 * The logging surface this library needs; `Logger` from `@cdktr/protocol` satisfies it.
 */
export interface WorkflowLogger {
  debug(message: string, meta?: object): void;
  info(message: string, meta?: object): void;
  warn(message: string, meta?: object): void;
  error(message: string, meta?: object): void;
}

/** Options of {@link WorkflowDirectory}. */
export interface WorkflowDirectoryOptions {
  /** The workflow directory (`CDKTR_WORKFLOW_DIR`). */
  dir: string;
  /** Where scan problems are logged. @default no logging */
  logger?: WorkflowLogger;
  /** How many files are stat-ed or read at once. @default 64 */
  concurrency?: number;
  /**
   * A file to keep the scan index in (what each file looked like and what it parsed to), so the
   * first scan after a restart reads and parses only the files that changed. Written after the
   * first scan, then at most every 5 s while scans change it, and by {@link flushIndex}; it is a
   * cache: a missing, unreadable or foreign index means a full load.
   * @default none
   */
  indexFile?: string;
}

/** Result of {@link WorkflowDirectory.scan}. */
export interface ScanResult {
  /**
   * Every loadable workflow by id. An id whose file became invalid keeps its LAST VALID
   * definition here (its error is in `errors`); an id that was never valid is absent.
   */
  workflows: Map<string, WorkflowDefinition>;
  /** Ids added or whose definition changed since the previous scan (all ids on the first). */
  changed: string[];
  /** Ids present after the previous scan and gone now (file deleted or renamed). */
  removed: string[];
  /** Every current problem, of every file (not only changed ones). */
  errors: WorkflowLoadError[];
  /** Every current warning (e.g. an ambiguous day of week). */
  warnings: WorkflowLoadError[];
  /** What the scan did: workflow files seen, files read (`stat` changed), files parsed (content changed). */
  stats: { files: number; read: number; parsed: number };
}

/**
 * A file's `stat` is trusted to mean "unchanged" only if its content was read at least this long
 * after its mtime: a same-size edit within the filesystem's timestamp granularity of the read
 * would otherwise go unnoticed (git's "racy clean" problem). A file read sooner is read again
 * (and its hash compared) until a read happens late enough.
 */
const RACY_WINDOW_MS = 3000;

type CacheEntry = ScanIndexEntry;

/** How long changes wait before the index is written again (see `#writeIndex`). */
const INDEX_WRITE_DELAY_MS = 5000;

/** Files the loader reads; everything else (`.gitkeep`, `README.md`, ...) is ignored. */
export function isWorkflowFile(name: string): boolean {
  return /\.ya?ml$/i.test(name) && !name.startsWith(".");
}

/**
 * A workflow directory, loaded recursively and re-scanned incrementally.
 *
 * - `.yml` / `.yaml` files are loaded; other files, and files and folders whose name starts
 *   with `.`, are ignored.
 * - Id = path relative to the directory without extension, `/` -> `.`. Two files mapping to
 *   one id (`a.b.yml` and `a/b.yml`) is an error naming both; neither replaces the other.
 * - One bad file never stops the others. A missing directory gives one error and no workflows.
 *
 * @example
 * const dir = new WorkflowDirectory({ dir: "./workflows" });
 * const { workflows, errors } = await dir.scan();
 */
export class WorkflowDirectory {
  readonly dir: string;
  readonly #logger: WorkflowLogger | undefined;
  readonly #concurrency: number;
  readonly #indexFile: string | undefined;
  #cache = new Map<string, CacheEntry>();
  /** Whether the cache changed since the index was last written. */
  #cacheDirty = false;
  #indexRead = false;
  #indexWrite: Promise<void> = Promise.resolve();
  #indexProblem: string | null = null;
  #indexTimer: ReturnType<typeof setTimeout> | null = null;
  #indexWritten = false;
  /** The workflow files of the last scan; null before the first and after an unusable directory. */
  #files: string[] | null = null;
  #workflows = new Map<string, WorkflowDefinition>();
  #scanning: Promise<ScanResult> | null = null;
  #scanningFull = false;
  #read = 0;
  #loggedErrors = new Set<string>();
  #parsed = 0;

  constructor(options: WorkflowDirectoryOptions) {
    this.dir = options.dir;
    this.#logger = options.logger;
    this.#concurrency = Math.max(1, options.concurrency ?? 64);
    this.#indexFile = options.indexFile;
  }

  /** The workflows of the last scan (empty before the first). */
  get workflows(): ReadonlyMap<string, WorkflowDefinition> {
    return this.#workflows;
  }

  /**
   * Re-reads the directory and reports what changed since the previous scan. Concurrent calls
   * share one scan. Never rejects for bad files or a missing directory: those are `errors`.
   *
   * With `paths` (relative to the directory, `/` separated: what a file watcher reported), only
   * those files are looked at and every other file is taken as it was; the first scan, and any
   * scan after the directory was unusable, is a full one regardless. Paths that are not
   * workflow files (other extensions, dot files, outside the directory) are ignored.
   */
  scan(paths?: readonly string[]): Promise<ScanResult> {
    if (this.#scanning === null) {
      this.#scanningFull = paths === undefined;
      this.#scanning = this.#scan(paths).finally(() => {
        this.#scanning = null;
      });
      return this.#scanning;
    }
    // Full scans asked for during a full scan share it; anything else runs after the current one.
    if (paths === undefined && this.#scanningFull) return this.#scanning;
    return this.#scanning.then(() => this.scan(paths));
  }

  /**
   * Write the index now if the cache changed since it was last written, and resolve once the file
   * holds what the last scan saw (a failed write is logged, not thrown). Call it before stopping.
   */
  flushIndex(): Promise<void> {
    if (this.#indexTimer !== null) {
      clearTimeout(this.#indexTimer);
      this.#indexTimer = null;
    }
    this.#writeIndexNow();
    return this.#indexWrite;
  }

  async #scan(paths: readonly string[] | undefined): Promise<ScanResult> {
    const errors: WorkflowLoadError[] = [];
    const warnings: WorkflowLoadError[] = [];
    this.#readIndex();
    let files: string[] = [];
    let toLoad: readonly string[];
    if (paths !== undefined && this.#files !== null) {
      const set = new Set(this.#files);
      const targets: string[] = [];
      for (const rel of paths) {
        if (!isWorkflowPath(rel)) continue;
        targets.push(rel);
        set.add(rel);
      }
      files = [...set].sort();
      toLoad = targets;
    } else {
      try {
        const st = await stat(this.dir);
        if (st.isDirectory()) files = await this.#walk();
        else errors.push(this.#dirError("ENOTDIR", null));
      } catch (e: unknown) {
        errors.push(this.#dirError((e as { code?: unknown }).code, e));
      }
      toLoad = files;
    }

    this.#read = 0;
    this.#parsed = 0;
    const results = new Map<string, ParseWorkflowResult>();
    const loading = new Set(toLoad);
    if (loading.size < files.length) {
      // A scan of given paths: every other file as the last scan left it (one the last scan
      // could not read is tried again).
      for (const rel of files) {
        if (loading.has(rel)) continue;
        const cached = this.#cache.get(rel);
        if (cached !== undefined) results.set(rel, cached.result);
        else loading.add(rel);
      }
    }
    await mapLimit([...loading], this.#concurrency, async (rel) => {
      const r = await this.#load(rel);
      if (r !== null) results.set(rel, r);
    });
    files = files.filter((rel) => results.has(rel));
    // The listing is kept only when the directory could be read (else the next scan is a full one).
    this.#files = errors.length === 0 ? files : null;
    for (const rel of [...this.#cache.keys()]) {
      if (!results.has(rel)) {
        this.#cache.delete(rel);
        this.#cacheDirty = true;
      }
    }
    this.#writeIndex();

    // Group files by id: two files for one id is an error for both.
    const byId = new Map<string, string[]>();
    for (const rel of files) {
      const id = workflowIdFromPath(rel);
      const list = byId.get(id);
      if (list === undefined) byId.set(id, [rel]);
      else list.push(rel);
    }

    const next = new Map<string, WorkflowDefinition>();
    for (const [id, rels] of [...byId.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const previous = this.#workflows.get(id);
      if (rels.length > 1) {
        for (const rel of rels) {
          const others = rels.filter((r) => r !== rel);
          errors.push({
            file: rel,
            line: null,
            column: null,
            path: null,
            message: `workflow id \`${id}\` comes from both ${rel} and ${others.join(", ")}: rename one of them`,
          });
        }
        if (previous !== undefined) next.set(id, previous);
        continue;
      }
      const rel = rels[0] as string;
      const r = results.get(rel);
      if (r === undefined) {
        // The file vanished between listing and reading: treat it as gone.
        continue;
      }
      errors.push(...r.errors);
      warnings.push(...r.warnings);
      if (r.workflow !== null) next.set(id, r.workflow);
      else if (previous !== undefined) next.set(id, previous);
    }

    errors.push(...this.#refuseChainCycles(next));
    for (const wf of next.values()) {
      (wf.triggers ?? []).forEach((t, i) => {
        if (!next.has(t.after))
          warnings.push({
            file: wf.path,
            line: null,
            column: null,
            path: `triggers[${i}].after`,
            message: `no workflow \`${t.after}\` is loaded: this trigger fires once it exists`,
          });
      });
    }

    const changed: string[] = [];
    for (const [id, wf] of next) {
      const before = this.#workflows.get(id);
      if (before === undefined || before.hash !== wf.hash || before.path !== wf.path) changed.push(id);
    }
    const removed = [...this.#workflows.keys()].filter((id) => !next.has(id)).sort();
    this.#workflows = next;
    if (changed.length > 0 || removed.length > 0) {
      this.#logger?.info("workflows scanned", {
        dir: this.dir,
        workflows: next.size,
        changed: changed.length,
        removed: removed.length,
        errors: errors.length,
      });
    }
    // Log each problem once, when it appears, not on every re-scan.
    const keys = new Set(errors.map((e) => `${e.file}:${e.line}:${e.column}:${e.message}`));
    for (const e of errors) {
      if (!this.#loggedErrors.has(`${e.file}:${e.line}:${e.column}:${e.message}`))
        this.#logger?.warn("invalid workflow file", { ...e });
    }
    this.#loggedErrors = keys;
    const stats = { files: files.length, read: this.#read, parsed: this.#parsed };
    return { workflows: new Map(next), changed, removed, errors, warnings, stats };
  }

  /**
   * Chaining cycles (`triggers: [{after}]` leading back to a workflow): each cycle is refused with
   * its path. The workflows of the cycle whose definitions are new in this scan keep their previous
   * definition (or are left out when they had none); when none of them is new, all are left out.
   * Mutates `next`; returns the errors.
   */
  #refuseChainCycles(next: Map<string, WorkflowDefinition>): WorkflowLoadError[] {
    const errors: WorkflowLoadError[] = [];
    for (;;) {
      const graph: Record<string, { depends: string[] }> = {};
      for (const [id, wf] of next) graph[id] = { depends: (wf.triggers ?? []).map((t) => t.after) };
      const cycle = findCycle(graph);
      if (cycle === null) return errors;
      const members = [...new Set(cycle)];
      const fresh = members.filter((id) => this.#workflows.get(id)?.hash !== next.get(id)?.hash);
      const blamed = fresh.length > 0 ? fresh : members;
      for (const id of blamed) {
        const wf = next.get(id);
        if (wf === undefined) continue;
        const at = cycle.indexOf(id);
        const upstream = at > 0 ? cycle[at - 1] : cycle[cycle.length - 2];
        const index = (wf.triggers ?? []).findIndex((t) => t.after === upstream);
        errors.push({
          file: wf.path,
          line: null,
          column: null,
          path: index >= 0 ? `triggers[${index}].after` : "triggers",
          message: `chaining cycle ${cycle.join(" -> ")}: a run would start the next one forever; remove one of these triggers`,
        });
        const previous = this.#workflows.get(id);
        if (previous !== undefined && previous.hash !== wf.hash) next.set(id, previous);
        else next.delete(id);
      }
    }
  }

  /** Loads one file through the cache; null when it disappeared. */
  async #load(rel: string): Promise<ParseWorkflowResult | null> {
    const abs = join(this.dir, rel);
    let st: Stats;
    try {
      st = await stat(abs);
    } catch {
      return null;
    }
    const cached = this.#cache.get(rel);
    if (
      cached !== undefined &&
      cached.readAt - cached.mtimeMs > RACY_WINDOW_MS &&
      cached.mtimeMs === st.mtimeMs &&
      cached.ctimeMs === st.ctimeMs &&
      cached.size === st.size &&
      cached.ino === st.ino
    )
      return cached.result;
    const readAt = Date.now();
    let text: string;
    try {
      text = await readFile(abs, "utf8");
      this.#read++;
    } catch (e: unknown) {
      if ((e as { code?: unknown }).code === "ENOENT") return null;
      const result: ParseWorkflowResult = {
        workflow: null,
        errors: [
          {
            file: rel,
            line: null,
            column: null,
            path: null,
            message: `cannot read file: ${errorMessage(e)}`,
          },
        ],
        warnings: [],
      };
      return result;
    }
    const contentHash = createHash("sha256").update(text).digest("hex");
    const seen = { mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, size: st.size, ino: st.ino, readAt, contentHash };
    this.#cacheDirty = true;
    if (cached !== undefined && cached.contentHash === contentHash) {
      this.#cache.set(rel, { ...seen, result: cached.result });
      return cached.result;
    }
    this.#parsed++;
    const result = parseWorkflowText(text, { file: rel, id: workflowIdFromPath(rel), path: rel });
    this.#cache.set(rel, { ...seen, result });
    return result;
  }

  /** Take the index file's entries as the cache, once, before the first scan. */
  #readIndex(): void {
    if (this.#indexRead || this.#indexFile === undefined) return;
    this.#indexRead = true;
    const { entries, skipped } = readScanIndex(this.#indexFile, this.dir);
    if (skipped !== null) {
      this.#logger?.info("workflow index not used: every file is read and parsed", {
        indexFile: this.#indexFile,
        reason: skipped,
      });
    }
    this.#cache = entries;
  }

  /**
   * Write the index soon when the cache changed: the first scan's at once, later ones at most
   * every {@link INDEX_WRITE_DELAY_MS} (serialising 10,000 entries takes ~70 ms of this thread; a
   * crash in between only means more files parsed at the next start).
   */
  #writeIndex(): void {
    if (this.#indexFile === undefined || !this.#cacheDirty || this.#indexTimer !== null) return;
    if (!this.#indexWritten) {
      this.#indexWritten = true;
      this.#writeIndexNow();
      return;
    }
    this.#indexTimer = setTimeout(() => {
      this.#indexTimer = null;
      this.#writeIndexNow();
    }, INDEX_WRITE_DELAY_MS);
    this.#indexTimer.unref();
  }

  /** Write the index in the background (one write at a time) when the cache changed. */
  #writeIndexNow(): void {
    const file = this.#indexFile;
    if (file === undefined || !this.#cacheDirty) return;
    this.#cacheDirty = false;
    const snapshot = new Map(this.#cache);
    this.#indexWrite = this.#indexWrite.then(async () => {
      try {
        await writeScanIndex(file, this.dir, snapshot);
        if (this.#indexProblem !== null) this.#logger?.info("workflow index written again", { indexFile: file });
        this.#indexProblem = null;
      } catch (e: unknown) {
        // Only a cache: the next start reads and parses every file.
        if (this.#indexProblem === null) {
          this.#logger?.warn("cannot write the workflow index (the next start parses every file)", {
            indexFile: file,
            error: errorMessage(e),
          });
        }
        this.#indexProblem = errorMessage(e);
        this.#cacheDirty = true;
      }
    });
  }

  /** The load error of an unusable workflow directory (`code` from the file system). */
  #dirError(code: unknown, e: unknown): WorkflowLoadError {
    const message =
      code === "ENOENT"
        ? `workflow directory ${this.dir} does not exist: create it or point CDKTR_WORKFLOW_DIR at the folder holding your .yml files`
        : code === "ENOTDIR"
          ? `workflow directory ${this.dir} is not a directory: point CDKTR_WORKFLOW_DIR at a folder`
          : `cannot read workflow directory ${this.dir}: ${errorMessage(e)}`;
    return { file: this.dir, line: null, column: null, path: null, message };
  }

  /** Every workflow file under the directory, relative, `/` separated, sorted. */
  async #walk(): Promise<string[]> {
    const out: string[] = [];
    const queue: string[] = [this.dir];
    while (queue.length > 0) {
      const dir = queue.shift() as string;
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e: unknown) {
        if (dir === this.dir) throw e;
        this.#logger?.warn("cannot read workflow sub-directory", {
          dir,
          error: errorMessage(e),
        });
        continue;
      }
      for (const entry of entries) {
        if (entry.name.startsWith(".")) continue;
        const abs = join(dir, entry.name);
        if (entry.isDirectory()) queue.push(abs);
        else if ((entry.isFile() || entry.isSymbolicLink()) && isWorkflowFile(entry.name)) {
          out.push(relative(this.dir, abs).split(sep).join("/"));
        }
      }
    }
    return out.sort();
  }
}

/** A workflow file's path relative to the directory (not outside it, no dot file or folder on the way). */
function isWorkflowPath(rel: string): boolean {
  const parts = rel.split("/");
  const name = parts[parts.length - 1] ?? "";
  return parts.every((p) => p !== "" && p !== ".." && !p.startsWith(".")) && isWorkflowFile(name);
}

/**
 * Loads a workflow directory once.
 * @returns the same shape as {@link WorkflowDirectory.scan} (every id in `changed`).
 */
export function loadWorkflowDir(dir: string, options: Omit<WorkflowDirectoryOptions, "dir"> = {}): Promise<ScanResult> {
  return new WorkflowDirectory({ ...options, dir }).scan();
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * A directory of workflow files, scanned incrementally: only files whose mtime or size changed
 * are read, and only files whose content hash changed are parsed again, so re-scanning 10,000
 * unchanged files costs 10,000 `stat` calls.
 */
import { createHash } from "node:crypto";
import type { Dirent, Stats } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { errorMessage, type WorkflowDefinition, type WorkflowLoadError } from "@cdktr/protocol";
import { parseWorkflowText, workflowIdFromPath } from "./parse-workflow-text.js";
import type { ParseWorkflowResult } from "./parse-workflow-text.js";

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
  /** What the scan did: workflow files seen, files read (mtime or size changed), files parsed (content changed). */
  stats: { files: number; read: number; parsed: number };
}

/** Files modified this recently are re-read (and their hash compared) even when mtime+size match. */
const RACY_WINDOW_MS = 3000;

interface CacheEntry {
  mtimeMs: number;
  size: number;
  contentHash: string;
  result: ParseWorkflowResult;
}

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
  readonly #cache = new Map<string, CacheEntry>();
  #workflows = new Map<string, WorkflowDefinition>();
  #scanning: Promise<ScanResult> | null = null;
  #read = 0;
  #loggedErrors = new Set<string>();
  #parsed = 0;

  constructor(options: WorkflowDirectoryOptions) {
    this.dir = options.dir;
    this.#logger = options.logger;
    this.#concurrency = Math.max(1, options.concurrency ?? 64);
  }

  /** The workflows of the last scan (empty before the first). */
  get workflows(): ReadonlyMap<string, WorkflowDefinition> {
    return this.#workflows;
  }

  /**
   * Re-reads the directory and reports what changed since the previous scan. Concurrent calls
   * share one scan. Never rejects for bad files or a missing directory: those are `errors`.
   */
  scan(): Promise<ScanResult> {
    if (this.#scanning === null) {
      this.#scanning = this.#scan().finally(() => {
        this.#scanning = null;
      });
    }
    return this.#scanning;
  }

  async #scan(): Promise<ScanResult> {
    const errors: WorkflowLoadError[] = [];
    const warnings: WorkflowLoadError[] = [];
    let files: string[] = [];
    try {
      const st = await stat(this.dir);
      if (st.isDirectory()) files = await this.#walk();
      else errors.push(this.#dirError("ENOTDIR", null));
    } catch (e: unknown) {
      errors.push(this.#dirError((e as { code?: unknown }).code, e));
    }

    // Group files by id: two files for one id is an error for both.
    const byId = new Map<string, string[]>();
    for (const rel of files) {
      const id = workflowIdFromPath(rel);
      const list = byId.get(id);
      if (list === undefined) byId.set(id, [rel]);
      else list.push(rel);
    }

    this.#read = 0;
    this.#parsed = 0;
    const results = new Map<string, ParseWorkflowResult>();
    await mapLimit(files, this.#concurrency, async (rel) => {
      const r = await this.#load(rel);
      if (r !== null) results.set(rel, r);
    });
    for (const rel of [...this.#cache.keys()]) {
      if (!results.has(rel)) this.#cache.delete(rel);
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
    // Trust mtime+size only for files not modified in the last seconds: a same-size edit within
    // the filesystem's mtime granularity would otherwise go unnoticed ("racy git" problem).
    const settled = Date.now() - st.mtimeMs > RACY_WINDOW_MS;
    if (cached !== undefined && settled && cached.mtimeMs === st.mtimeMs && cached.size === st.size)
      return cached.result;
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
    if (cached !== undefined && cached.contentHash === contentHash) {
      this.#cache.set(rel, { ...cached, mtimeMs: st.mtimeMs, size: st.size });
      return cached.result;
    }
    this.#parsed++;
    const result = parseWorkflowText(text, { file: rel, id: workflowIdFromPath(rel), path: rel });
    this.#cache.set(rel, { mtimeMs: st.mtimeMs, size: st.size, contentHash, result });
    return result;
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

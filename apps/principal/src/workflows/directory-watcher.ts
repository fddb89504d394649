/**
 * Watches a workflow directory tree with one `fs.watch` per directory, not per file. A watched
 * directory reports changes to the files in it (inotify on Linux, FSEvents and
 * ReadDirectoryChangesW elsewhere), so a tree of 10,000 files in 100 folders costs 101 watches
 * instead of 10,001 watches and as many `Stats` kept in memory (what a per-file watcher such as
 * chokidar holds: ~90 MB of the principal's RSS at 10,000 files, and past the common inotify limit
 * of 8,192 watches). It mirrors the loader's walk: names starting with `.` are skipped and
 * symbolic links to directories are not followed.
 */
import { lstatSync, readdirSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { CdktrError } from "@cdktr/protocol";

/** What changed: one file the caller cares about, or the tree's shape (a folder came or went). */
export type DirectoryChange = { kind: "file"; path: string } | { kind: "tree" };

/** Options of {@link DirectoryWatcher}. */
export interface DirectoryWatcherOptions {
  root: string;
  /** Whether a file name is one the caller wants events for (others are ignored). */
  isFile: (name: string) => boolean;
  onChange: (change: DirectoryChange) => void;
  /** A directory could not be watched (it is skipped; the caller's periodic scan covers it). */
  onError: (error: unknown, dir: string) => void;
  /** At most this many directories are watched. @default 10000 */
  maxDirectories?: number;
}

/**
 * One `fs.watch` per directory of a tree, kept in step with the tree's folders.
 *
 * @example
 * const w = new DirectoryWatcher({ root, isFile: isWorkflowFile, onChange, onError });
 * w.start();
 */
export class DirectoryWatcher {
  readonly #o: DirectoryWatcherOptions;
  readonly #watchers = new Map<string, FSWatcher>();
  #closed = false;
  #full = false;

  constructor(options: DirectoryWatcherOptions) {
    this.#o = options;
  }

  /** Directories watched now. */
  get size(): number {
    return this.#watchers.size;
  }

  /**
   * Watch the root and every folder under it.
   * @throws when the root itself cannot be watched (missing, not a directory, no permission)
   */
  start(): void {
    this.#watch(this.#o.root, true);
    this.#sync();
  }

  /** Stop every watch. */
  close(): void {
    this.#closed = true;
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  /** Watch the folders the tree has now; stop watching those gone. */
  #sync(): void {
    if (this.#closed) return;
    const seen = new Set<string>();
    const queue = [this.#o.root];
    for (let dir = queue.pop(); dir !== undefined; dir = queue.pop()) {
      seen.add(dir);
      if (!this.#watchers.has(dir) && !this.#watch(dir, false)) continue;
      let names: string[];
      try {
        names = readdirSync(dir, { withFileTypes: true })
          .filter((e) => e.isDirectory() && !e.name.startsWith("."))
          .map((e) => e.name);
      } catch {
        continue; // gone meanwhile: the next sync forgets it
      }
      for (const name of names) queue.push(join(dir, name));
    }
    for (const [dir, w] of this.#watchers) {
      if (seen.has(dir)) continue;
      w.close();
      this.#watchers.delete(dir);
    }
  }

  /** Start watching `dir`; false when it could not be (reported, unless it is gone already). */
  #watch(dir: string, root: boolean): boolean {
    const max = this.#o.maxDirectories ?? 10_000;
    if (this.#watchers.size >= max) {
      if (!this.#full) {
        const msg = `more than ${max} folders: the others are not watched (the periodic scan covers them; fewer folders, or a shorter CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S)`;
        this.#o.onError(new CdktrError("RESOURCE_EXHAUSTED", msg), dir);
      }
      this.#full = true;
      return false;
    }
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: true }, (_event, name) => this.#event(dir, name));
    } catch (e) {
      if (root) throw e;
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.#o.onError(e, dir);
      return false;
    }
    w.on("error", (e: unknown) => {
      w.close();
      if (this.#watchers.get(dir) === w) this.#watchers.delete(dir);
      this.#o.onError(e, dir);
      this.#o.onChange({ kind: "tree" });
    });
    this.#watchers.set(dir, w);
    return true;
  }

  #event(dir: string, name: string | null): void {
    if (this.#closed) return;
    if (name === null) {
      this.#o.onChange({ kind: "tree" });
      return;
    }
    if (name.startsWith(".")) return;
    const path = join(dir, name);
    let isDir: boolean | null;
    try {
      isDir = lstatSync(path).isDirectory();
    } catch {
      isDir = null; // removed (or renamed away)
    }
    if (isDir === true || this.#watchers.has(path)) {
      this.#sync();
      this.#o.onChange({ kind: "tree" });
    } else if (this.#o.isFile(name)) {
      this.#o.onChange({ kind: "file", path });
    } else if (isDir === null && !this.#exists(dir)) {
      // The watched folder itself went away (its own watch reports its name).
      this.#sync();
      this.#o.onChange({ kind: "tree" });
    }
  }

  #exists(dir: string): boolean {
    try {
      return lstatSync(dir).isDirectory();
    } catch {
      return false;
    }
  }
}

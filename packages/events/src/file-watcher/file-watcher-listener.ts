/**
 * A file-system event listener: watches a directory (recursively) with chokidar and triggers a
 * workflow after each burst of matching changes.
 */
import { randomUUID } from "node:crypto";
import { stat } from "node:fs/promises";
import { relative, resolve, sep } from "node:path";
import { watch, type FSWatcher } from "chokidar";
import picomatch from "picomatch";
import type { Logger, Params } from "@cdktr/protocol";
import { EventListener, sleep, type EventListenerOptions } from "../listener/event-listener.js";
import { UsageError, backoffDelay, errorMessage, type BackoffOptions } from "@cdktr/protocol";
import { ListenerStartError } from "../errors.js";
import { RETRYABLE_TRIGGER_CODES as RETRYABLE } from "../listener/source-common.js";
import { EventMapping, type EventMappingSpec } from "../mapping/event-mapping.js";
import { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";

/** File events the watcher can react to. */
export type FileEventKind = "add" | "change" | "unlink";

/** Options of {@link FileWatcherListener}. */
export interface FileWatcherListenerOptions extends EventListenerOptions {
  /** Directory (watched recursively) or file to watch. */
  path: string;
  /** Workflow to trigger. */
  workflow: string;
  /** Glob(s) matched against paths relative to `path` (picomatch syntax, `/` separators). @default every file */
  glob?: string | readonly string[];
  /** Event kinds that count. @default ["add", "change", "unlink"] */
  events?: readonly FileEventKind[];
  /** Quiet period: trigger once no matching event came for this long. @default 500 */
  debounceMs?: number;
  /** Trigger at the latest this long after the first event of a burst, even if events keep coming. @default 10000 */
  maxWaitMs?: number;
  /**
   * Name of the run param that receives the changed paths, a JSON array of paths relative to
   * `path` (sorted, unique), e.g. `["in/a.csv","in/b.csv"]`. The workflow must declare it as a
   * string param. `null` sends no paths. @default "paths"
   */
  pathsParam?: string | null;
  /** Extra params sent with every trigger. */
  params?: Params;
  /**
   * Params mapped from the burst, a `when` filter and an idempotency key expression, all JMESPath
   * over the burst's event document {@link FileWatcherEvent} (e.g.
   * `{paramsMap: {date: "split(path, '_')[0]"}, when: "ends_with(path, '.csv')"}`). Mapped params
   * (and `mapping.params`) win over `params` and the `pathsParam` value. A burst for which `when`
   * is false triggers nothing (counted in `filtered`); a burst that does not map (a required param
   * found nothing, or a list or an object) triggers nothing, is counted in `unmapped` and emitted as
   * `rejected` (reason `unmapped`). With `idempotencyKey`, the run's key is `fs:<its value>`
   * instead of a fresh `fs:<uuid>` per burst. @default none: every burst triggers, with `params` and the paths
   */
  mapping?: EventMappingSpec;
  /** Wait until a file's size is stable for this long before reporting it (`false`: off). @default 200 */
  awaitWriteFinishMs?: number | false;
  /** Poll instead of using native events (network file systems). @default false */
  usePolling?: boolean;
  /** Deadline of each run request. @default 5000 */
  triggerTimeoutMs?: number;
  /** How long a burst is retried while the principal is unavailable. @default 60000 */
  retryForMs?: number;
  /** Backoff of trigger retries. */
  backoff?: BackoffOptions;
}

/**
 * The event document of one debounced burst, what {@link FileWatcherListenerOptions.mapping}
 * reads. Paths are relative to the watched `path`, with `/` separators.
 */
export interface FileWatcherEvent {
  /** Every changed path of the burst, sorted and unique (the `pathsParam` value, as a list). */
  paths: string[];
  /** The first of {@link paths}. */
  path: string;
  /** Each distinct (path, event) pair of the burst once, in the order each was first seen. */
  events: { path: string; event: FileEventKind }[];
  /** The watched `path`, absolute. */
  dir: string;
}

/** Counters of a {@link FileWatcherListener}. */
export interface FileWatcherListenerStats {
  /** True once the initial scan finished and changes are being reported. */
  ready: boolean;
  /** Bursts that triggered a run. */
  triggered: number;
  /** Bursts the principal refused or that were dropped after `retryForMs`. */
  failed: number;
  /** Bursts the mapping's `when` filter turned away (no run). */
  filtered: number;
  /** Bursts the mapping could not turn into a run (no run; emitted as `rejected`, reason `unmapped`). */
  unmapped: number;
}

/**
 * Triggers `workflow` when files under `path` are added, changed or removed. Events are
 * filtered by glob and kind and debounced: a burst (e.g. a copy of 100 files) gives ONE run
 * whose `paths` param lists every changed file. Files present at start are not reported.
 * Each burst carries one idempotency key (`fs:<uuid>`, or `fs:<value>` of the mapping's
 * `idempotencyKey` expression) reused on its retries, so a retry after a lost reply never starts a
 * second run. Changes made while the listener is stopped are not seen.
 */
export class FileWatcherListener extends EventListener {
  readonly #root: string;
  readonly #workflow: string;
  readonly #match: ((p: string) => boolean) | null;
  readonly #events: ReadonlySet<FileEventKind>;
  readonly #debounce: number;
  readonly #maxWait: number;
  readonly #pathsParam: string | null;
  readonly #params: Params;
  readonly #mapping: EventMapping | null;
  readonly #awaitWrite: number | false;
  readonly #polling: boolean;
  readonly #timeout: number;
  readonly #retryFor: number;
  readonly #backoff: BackoffOptions;
  readonly #stats: FileWatcherListenerStats = {
    ready: false,
    triggered: 0,
    failed: 0,
    filtered: 0,
    unmapped: 0,
  };
  #pending = new Set<string>();
  /** The burst's distinct `<kind>:<path>` pairs in the order first seen (at most 3 per pending path). */
  #pendingEvents = new Map<string, { path: string; event: FileEventKind }>();
  #burstStart = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #ready = deferred();

  /**
   * @throws UsageError (`INVALID_ARGUMENT`) when `path` is empty, or naming each `mapping` field
   *   (`mapping.params_map.<name>`, `mapping.when`, `mapping.idempotency_key`) whose expression does not parse
   */
  constructor(options: FileWatcherListenerOptions) {
    super({ ...options, source: options.source ?? "file-watcher" });
    if (options.path === "")
      throw new UsageError("INVALID_ARGUMENT", "FileWatcherListener: `path` must be a file or directory");
    this.#root = resolve(options.path);
    this.#workflow = options.workflow;
    const globs =
      options.glob === undefined ? [] : typeof options.glob === "string" ? [options.glob] : [...options.glob];
    this.#match = globs.length > 0 ? picomatch(globs, { dot: true }) : null;
    this.#events = new Set(options.events ?? ["add", "change", "unlink"]);
    this.#debounce = options.debounceMs ?? 500;
    this.#maxWait = options.maxWaitMs ?? 10_000;
    this.#pathsParam = options.pathsParam === undefined ? "paths" : options.pathsParam;
    this.#params = options.params ?? {};
    this.#mapping = options.mapping !== undefined ? EventMapping.compile(options.mapping, "mapping") : null;
    this.#awaitWrite = options.awaitWriteFinishMs ?? 200;
    this.#polling = options.usePolling ?? false;
    this.#timeout = options.triggerTimeoutMs ?? 5000;
    this.#retryFor = options.retryForMs ?? 60_000;
    this.#backoff = options.backoff ?? {};
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<FileWatcherListenerStats> {
    return { ...this.#stats };
  }

  /**
   * Resolves once the watcher has scanned `path` and reports changes (after `start()`); rejects
   * with a {@link ListenerStartError} when `path` does not exist.
   */
  whenReady(): Promise<void> {
    return this.#ready.promise;
  }

  protected override async startListening(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const log = this.logger.child({ path: this.#root, workflowId: this.#workflow });
    try {
      await stat(this.#root);
    } catch (e) {
      const why =
        (e as { code?: unknown }).code === "ENOENT" ? "it does not exist; create it or fix `path`" : errorMessage(e);
      const err = new ListenerStartError(`file watcher: cannot watch ${this.#root}: ${why}`, {
        cause: e,
        context: { path: this.#root },
      });
      this.#ready.reject(err);
      this.#ready = deferred();
      throw err;
    }
    const watcher: FSWatcher = watch(this.#root, {
      ignoreInitial: true,
      persistent: true,
      usePolling: this.#polling,
      ...(this.#awaitWrite !== false
        ? {
            awaitWriteFinish: {
              stabilityThreshold: this.#awaitWrite,
              pollInterval: Math.max(10, Math.floor(this.#awaitWrite / 4)),
            },
          }
        : {}),
    });
    const onEvent = (kind: FileEventKind) => (path: string) => this.#onEvent(kind, path);
    watcher.on("add", onEvent("add"));
    watcher.on("change", onEvent("change"));
    watcher.on("unlink", onEvent("unlink"));
    watcher.on("error", (e: unknown) => log.warn("file watcher error", { error: errorMessage(e) }));
    await new Promise<void>((res) => watcher.once("ready", () => res()));
    this.#stats.ready = true;
    this.#ready.resolve();
    log.info("file watcher ready");
    await new Promise<void>((res) => {
      if (signal.aborted) res();
      else signal.addEventListener("abort", () => res(), { once: true });
    });
    this.#stats.ready = false;
    this.#ready = deferred();
    await watcher.close();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    // A burst still being debounced is fired now rather than lost.
    if (this.#pending.size > 0) this.#flush(signal, log);
    await Promise.allSettled([...this.#inFlight]);
  }

  #onEvent(kind: FileEventKind, absPath: string): void {
    if (!this.#events.has(kind)) return;
    const rel = relative(this.#root, absPath).split(sep).join("/") || absPath.split(sep).pop() || absPath;
    if (this.#match !== null && !this.#match(rel)) return;
    const now = Date.now();
    if (this.#pending.size === 0) this.#burstStart = now;
    this.#pending.add(rel);
    const pair = `${kind}:${rel}`;
    if (!this.#pendingEvents.has(pair)) this.#pendingEvents.set(pair, { path: rel, event: kind });
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const wait = Math.max(0, Math.min(this.#debounce, this.#burstStart + this.#maxWait - now));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush(undefined, this.logger.child({ path: this.#root, workflowId: this.#workflow }));
    }, wait);
  }

  #flush(signal: AbortSignal | undefined, log: Logger): void {
    const paths = [...this.#pending].sort();
    const events = [...this.#pendingEvents.values()];
    this.#pending = new Set();
    this.#pendingEvents = new Map();
    const p = this.#trigger(paths, events, signal, log);
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  async #trigger(
    paths: string[],
    events: FileWatcherEvent["events"],
    signal: AbortSignal | undefined,
    log: Logger,
  ): Promise<void> {
    let params: Params = { ...this.#params };
    if (this.#pathsParam !== null) params[this.#pathsParam] = JSON.stringify(paths);
    let key = `fs:${randomUUID()}`;
    if (this.#mapping !== null) {
      const event: FileWatcherEvent = { paths, path: paths[0] ?? "", events, dir: this.#root };
      if (!this.#mapping.matches(event)) {
        this.#stats.filtered += 1;
        log.debug("file changes filtered out by `when`; no run", { files: paths.length, path: event.path });
        return;
      }
      const mapped = this.#mapping.map(event);
      if (!mapped.ok) {
        this.#stats.unmapped += 1;
        this.rejectEvent("unmapped", mapped.error);
        log.warn("file changes not mapped into a run; no run", {
          error: mapped.error,
          files: paths.length,
          path: event.path,
        });
        return;
      }
      params = { ...params, ...mapped.params };
      if (mapped.idempotencyKey !== undefined) key = scopedIdempotencyKey("fs:", mapped.idempotencyKey);
    }
    const giveUpAt = Date.now() + this.#retryFor;
    for (let attempt = 1; ; attempt++) {
      const result = await this.runWorkflow(this.#workflow, {
        ...(Object.keys(params).length > 0 ? { params } : {}),
        idempotencyKey: key,
        retry: false,
        timeoutMs: this.#timeout,
      });
      if (result.success) {
        this.#stats.triggered += 1;
        log.info("file changes triggered a run", {
          runId: result.runId,
          files: paths.length,
          ...(result.duplicate ? { duplicate: true } : {}),
        });
        return;
      }
      const code = result.error?.code ?? "INTERNAL";
      const delay = backoffDelay(attempt, this.#backoff);
      if (
        (!RETRYABLE.has(code) && result.error?.retryable !== true) ||
        signal?.aborted === true ||
        Date.now() + delay > giveUpAt
      ) {
        this.#stats.failed += 1;
        log.error("file changes did not trigger a run", { code, error: result.error?.message, files: paths.length });
        return;
      }
      log.warn("principal unavailable; retrying", { code, attempt, retryInMs: delay });
      await sleep(delay, signal);
    }
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // nobody may be waiting
  return { promise, resolve, reject };
}

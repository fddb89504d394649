/**
 * The webhook listener's replay cache: the signatures accepted within the tolerance window, kept
 * in memory and, unless memory-only, on disk so that they survive a restart of the listener.
 *
 * On disk the cache is a directory of append-only files, one per time bucket (`<bucket start,
 * epoch ms>.log`), each line `use <expires ms> <signature hex>` or `release <expires ms>
 * <signature hex>` (a signature that triggered nothing is free again). A line is written, and
 * flushed to the disk, before the request it records is acted upon. Files are never rewritten:
 * a whole file is deleted once every entry in it has expired, which bounds the directory to a
 * few files; the number of live entries is bounded by `maxEntries`.
 *
 * A missing directory is a new cache. A file that cannot be read, or a line that does not parse
 * (a torn write, an edited file), is logged and not fatal; since entries may have been lost, the
 * cache then reports {@link ReplayCache.lostAtMs}, and the listener refuses signatures made
 * before its start until they are stale anyway.
 */
import { createHmac } from "node:crypto";
import { mkdir, open, readdir, readFile, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { errorMessage, type Logger } from "@cdktr/protocol";
import { ListenerStartError, ReplayCacheError } from "../errors.js";

/** Options of {@link ReplayCache.open}. */
export interface ReplayCacheOptions {
  /** Directory of the cache files (created 0700), or null to keep the cache in memory only. */
  dir: string | null;
  /** Signature tolerance of the listener: entries expire at most 2 tolerances after they are written. */
  toleranceMs: number;
  /** Most live entries; past it new signatures are refused (never evicted: that would allow a replay). */
  maxEntries: number;
  now: () => number;
  logger: Logger;
}

const FILE = /^(\d{1,15})\.log$/;
const LINE = /^(use|release) (\d{1,15}) ([0-9a-f]{64})$/;
/** Shortest bucket: with a small tolerance, files are still not created every few seconds. */
const MIN_BUCKET_MS = 60_000;

/** The name of the cache directory of listeners sharing `secret` (they accept the same signatures). */
export function replayCacheDirName(secret: string | Uint8Array): string {
  const id = createHmac("sha256", secret).update("cdktr webhook replay cache").digest("hex").slice(0, 16);
  return `webhook-replay-${id}`;
}

/** Open caches by directory: listeners of one process sharing a secret share one cache. */
const shared = new Map<string, { cache: Promise<ReplayCache>; users: number }>();

/**
 * Signatures seen within the tolerance window; see the module comment for the file format.
 */
export class ReplayCache {
  readonly #o: ReplayCacheOptions;
  readonly #bucketMs: number;
  /** Signature -> expiry (epoch ms). */
  readonly #entries = new Map<string, number>();
  /** Bucket file -> latest expiry written to it. */
  readonly #files = new Map<string, number>();
  #lostAtMs: number | null = null;
  #claimsSincePrune = 0;

  private constructor(options: ReplayCacheOptions) {
    this.#o = options;
    this.#bucketMs = Math.max(MIN_BUCKET_MS, options.toleranceMs);
  }

  /**
   * Open (and load) the cache in `options.dir`, or return the one this process already has open
   * there. Release it with {@link close}.
   * @throws ListenerStartError when the directory cannot be created or written
   */
  static open(options: ReplayCacheOptions): Promise<ReplayCache> {
    if (options.dir === null) return Promise.resolve(new ReplayCache(options));
    const dir = options.dir;
    const known = shared.get(dir);
    if (known !== undefined) {
      known.users += 1;
      return known.cache;
    }
    const cache = (async () => {
      const c = new ReplayCache(options);
      await c.#load(dir);
      return c;
    })();
    shared.set(dir, { cache, users: 1 });
    cache.catch(() => shared.delete(dir));
    return cache;
  }

  /** When entries may have been lost (unreadable or corrupt files), the time the cache was opened; else null. */
  get lostAtMs(): number | null {
    return this.#lostAtMs;
  }

  /** Live entries held in memory. */
  get size(): number {
    return this.#entries.size;
  }

  /** The cache directory, or null in memory. */
  get dir(): string | null {
    return this.#o.dir;
  }

  /**
   * Record `signature` as used until `expiresMs`, on disk before this resolves. Resolves false,
   * recording nothing, when it is already recorded (accepted before, or in flight).
   * @throws ReplayCacheError when the entry cannot be written or the cache is full: nothing is recorded
   */
  async claim(signature: string, expiresMs: number): Promise<boolean> {
    // Synchronous up to the write: two concurrent requests with one signature cannot both pass.
    const now = this.#o.now();
    const seen = this.#entries.get(signature);
    if (seen !== undefined && seen >= now) return false;
    if (++this.#claimsSincePrune >= 1000 || this.#entries.size >= this.#o.maxEntries) this.#prune(now);
    if (this.#entries.size >= this.#o.maxEntries) {
      throw new ReplayCacheError(
        `the replay cache holds its maximum of ${this.#o.maxEntries} signatures of the last ${Math.round(this.#o.toleranceMs / 1000)} s`,
        { context: { maxEntries: this.#o.maxEntries } },
      );
    }
    this.#entries.set(signature, expiresMs);
    try {
      await this.#append(`use ${expiresMs} ${signature}`, expiresMs, now);
    } catch (e) {
      this.#entries.delete(signature);
      throw new ReplayCacheError(`cannot write the replay cache in ${this.#o.dir}: ${errorMessage(e)}`, {
        cause: e,
        context: { dir: this.#o.dir },
      });
    }
    return true;
  }

  /** Forget `signature` (it triggered nothing, so it may be sent again). Never throws. */
  async release(signature: string): Promise<void> {
    const expires = this.#entries.get(signature);
    if (expires === undefined) return;
    this.#entries.delete(signature);
    try {
      await this.#append(`release ${expires} ${signature}`, expires, this.#o.now());
    } catch (e) {
      // Fails closed: after a restart the signature counts as used until it expires.
      this.#o.logger.warn("webhook replay cache: cannot record a released signature", { error: errorMessage(e) });
    }
  }

  /** Let go of this cache (the last user of a shared one closes it). */
  close(): void {
    const dir = this.#o.dir;
    if (dir === null) return;
    const known = shared.get(dir);
    if (known === undefined) return;
    known.users -= 1;
    if (known.users <= 0) shared.delete(dir);
  }

  async #load(dir: string): Promise<void> {
    const log = this.#o.logger.child({ replayCache: dir });
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new ListenerStartError(
        `cannot create the webhook replay cache directory ${dir}: ${errorMessage(e)}; give the listener a writable state directory (stateDir, CDKTR_LISTENERS_STATE_DIR)`,
        { cause: e, context: { dir } },
      );
    }
    const now = this.#o.now();
    let names: string[] = [];
    const problems: string[] = [];
    try {
      names = (await readdir(dir))
        .filter((n) => FILE.test(n))
        .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
    } catch (e) {
      problems.push(`cannot list ${dir}: ${errorMessage(e)}`);
    }
    for (const name of names) {
      const file = join(dir, name);
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (e) {
        problems.push(`cannot read ${file}: ${errorMessage(e)}`);
        continue;
      }
      let latest = 0;
      let bad = 0;
      for (const raw of text.split("\n")) {
        if (raw === "") continue;
        const m = LINE.exec(raw);
        if (m === null) {
          bad += 1;
          continue;
        }
        const sig = m[3] ?? "";
        const expires = Number(m[2]);
        latest = Math.max(latest, expires);
        if (m[1] === "release") this.#entries.delete(sig);
        else if (expires >= now) this.#entries.set(sig, expires);
      }
      if (bad > 0) problems.push(`${file}: ${bad} unreadable line(s)`);
      this.#files.set(file, latest);
    }
    await this.#dropExpiredFiles(now, null);
    // Prove now that entries can be written: a listener that cannot record signatures must not start.
    const current = this.#bucketFile(now);
    try {
      const fh = await open(current, "a", 0o600);
      await fh.close();
      if (!this.#files.has(current)) this.#files.set(current, 0);
    } catch (e) {
      throw new ListenerStartError(
        `cannot write the webhook replay cache ${current}: ${errorMessage(e)}; give the listener a writable state directory (stateDir, CDKTR_LISTENERS_STATE_DIR)`,
        { cause: e, context: { dir } },
      );
    }
    if (problems.length > 0) {
      this.#lostAtMs = now;
      log.warn(
        "webhook replay cache damaged: signatures made before this start are refused until they are stale (sign again)",
        { problems, until: new Date(now + this.#o.toleranceMs).toISOString() },
      );
    } else {
      log.info("webhook replay cache loaded", { entries: this.#entries.size });
    }
  }

  #bucketFile(now: number): string {
    const dir = this.#o.dir ?? "";
    return join(dir, `${Math.floor(now / this.#bucketMs) * this.#bucketMs}.log`);
  }

  async #append(line: string, expiresMs: number, now: number): Promise<void> {
    if (this.#o.dir === null) return;
    const file = this.#bucketFile(now);
    this.#files.set(file, Math.max(this.#files.get(file) ?? 0, expiresMs));
    // One write per line, with a leading newline: a torn earlier line never swallows this one.
    const fh = await open(file, "a", 0o600);
    try {
      await fh.write(`\n${line}`);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await this.#dropExpiredFiles(now, file);
  }

  /** Delete bucket files whose every entry has expired (never the one being written). */
  async #dropExpiredFiles(now: number, current: string | null): Promise<void> {
    for (const [file, latest] of this.#files) {
      if (file === current || latest >= now) continue;
      const bucketEnd = Number(FILE.exec(basename(file))?.[1] ?? "0") + this.#bucketMs;
      // Another process may still append to a recent bucket: wait until no live entry can be there.
      if (bucketEnd + 2 * this.#o.toleranceMs >= now) continue;
      this.#files.delete(file);
      await rm(file, { force: true }).catch((e: unknown) =>
        this.#o.logger.debug("webhook replay cache: cannot delete an expired file", { file, error: errorMessage(e) }),
      );
    }
  }

  #prune(now: number): void {
    this.#claimsSincePrune = 0;
    for (const [sig, expires] of this.#entries) if (expires < now) this.#entries.delete(sig);
  }
}

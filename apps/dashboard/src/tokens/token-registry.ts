import { statSync } from "node:fs";
import { timingSafeEqual } from "node:crypto";
import { errorMessage, type Logger } from "@cdktr/protocol";
import { hashToken, readTokensFile, TOKEN_PATTERN, type TokenRecord } from "./token-file.js";

/** Options of {@link TokenRegistry}. */
export interface TokenRegistryOptions {
  /** The tokens file. */
  path: string;
  logger: Logger;
  /** The file is checked for changes at most this often. @default 1000 */
  checkIntervalMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * The server's view of the tokens file: re-read when its mtime or size changes (checked at most
 * once per `checkIntervalMs`), so `cdktr dashboard token create/revoke` take effect without a
 * restart. A file that turns invalid keeps the last good contents (logged); a file that
 * disappears means no tokens.
 */
export class TokenRegistry {
  readonly #path: string;
  readonly #logger: Logger;
  readonly #interval: number;
  readonly #now: () => number;
  #tokens: readonly TokenRecord[] = [];
  #hashes: readonly Buffer[] = [];
  #stamp = "";
  #checkedAt = Number.NEGATIVE_INFINITY;

  constructor(opts: TokenRegistryOptions) {
    this.#path = opts.path;
    this.#logger = opts.logger;
    this.#interval = opts.checkIntervalMs ?? 1000;
    this.#now = opts.now ?? Date.now;
  }

  /** The tokens file's path. */
  get path(): string {
    return this.#path;
  }

  /**
   * Read the file now.
   * @throws TokenFileError `TOKENS_FILE_INVALID` (at start-up the dashboard refuses a bad file)
   */
  load(): void {
    const stamp = this.#statStamp();
    const doc = readTokensFile(this.#path);
    this.#set(doc.tokens, stamp);
    this.#checkedAt = this.#now();
  }

  /** Re-read the file if it changed and the last check is older than the interval. */
  refresh(): void {
    const now = this.#now();
    if (now - this.#checkedAt < this.#interval) return;
    this.#checkedAt = now;
    const stamp = this.#statStamp();
    if (stamp === this.#stamp) return;
    try {
      this.#set(readTokensFile(this.#path).tokens, stamp);
      this.#logger.info("dashboard tokens reloaded", { file: this.#path, tokens: this.#tokens.length });
    } catch (e) {
      // Keep the last good tokens; the stamp is kept too, so a fix is picked up.
      this.#logger.error("the tokens file is invalid: keeping the tokens read before", {
        file: this.#path,
        error: errorMessage(e),
      });
    }
  }

  /** The live (not revoked) token whose hash matches `token`, compared in constant time; else null. */
  verify(token: string): TokenRecord | null {
    this.refresh();
    // The hash is compared for every record whatever the input, so timing says nothing of it.
    const wanted = Buffer.from(hashToken(token), "utf8");
    let found: TokenRecord | null = null;
    for (let i = 0; i < this.#tokens.length; i++) {
      const h = this.#hashes[i];
      const t = this.#tokens[i];
      if (h === undefined || t === undefined || h.length !== wanted.length) continue;
      if (timingSafeEqual(h, wanted) && t.revokedAt === null) found = t;
    }
    return TOKEN_PATTERN.test(token) ? found : null;
  }

  /**
   * The live record named `name` with hash `hash` (a session's token, still valid); null when it
   * was revoked, replaced or removed.
   */
  current(name: string, hash: string): TokenRecord | null {
    this.refresh();
    const t = this.#tokens.find((r) => r.name === name);
    return t !== undefined && t.revokedAt === null && t.hash === hash ? t : null;
  }

  #set(tokens: readonly TokenRecord[], stamp: string): void {
    this.#tokens = tokens;
    this.#hashes = tokens.map((t) => Buffer.from(t.hash, "utf8"));
    this.#stamp = stamp;
  }

  #statStamp(): string {
    try {
      const st = statSync(this.#path);
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      return "missing";
    }
  }
}

import { randomBytes } from "node:crypto";
import type { TokenRole } from "../tokens/token-file.js";

/** Name of the session cookie. */
export const SESSION_COOKIE = "cdktr_session";

/** A signed-in browser: the token it signed in with (name, role, hash). */
export interface Session {
  readonly id: string;
  readonly name: string;
  readonly role: TokenRole;
  /** Hash of the token: a token replaced under the same name ends the session. */
  readonly tokenHash: string;
  lastSeen: number;
}

/** Options of {@link SessionStore}. */
export interface SessionStoreOptions {
  /** Most sessions kept; the least recently used ends first. */
  maxSessions: number;
  /** A session unused this long ends. */
  idleMs: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Server-side sessions: a random 32-byte id (base64url) in the cookie, everything else here.
 * Bounded: at most `maxSessions`, least recently used evicted first; idle ones expire.
 */
export class SessionStore {
  readonly #max: number;
  readonly #idleMs: number;
  readonly #now: () => number;
  /** In least-recently-used order (a touch moves a session to the end). */
  readonly #sessions = new Map<string, Session>();

  constructor(opts: SessionStoreOptions) {
    this.#max = opts.maxSessions;
    this.#idleMs = opts.idleMs;
    this.#now = opts.now ?? Date.now;
  }

  /** How many sessions are kept. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Open a session for a token. */
  create(name: string, role: TokenRole, tokenHash: string): Session {
    const id = randomBytes(32).toString("base64url");
    const session: Session = { id, name, role, tokenHash, lastSeen: this.#now() };
    this.#sessions.set(id, session);
    while (this.#sessions.size > this.#max) {
      const oldest = this.#sessions.keys().next();
      if (oldest.done === true) break;
      this.#sessions.delete(oldest.value);
    }
    return session;
  }

  /** The live session with this id (touched), or null (unknown or idle too long: then removed). */
  get(id: string): Session | null {
    const s = this.#sessions.get(id);
    if (s === undefined) return null;
    const now = this.#now();
    this.#sessions.delete(id);
    if (now - s.lastSeen > this.#idleMs) return null;
    s.lastSeen = now;
    this.#sessions.set(id, s);
    return s;
  }

  /** End a session (sign-out, revoked token). */
  delete(id: string): void {
    this.#sessions.delete(id);
  }

  /** End every session. */
  clear(): void {
    this.#sessions.clear();
  }
}

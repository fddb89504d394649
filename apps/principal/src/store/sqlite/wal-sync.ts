import { closeSync, fstatSync, fsyncSync, openSync, statSync } from "node:fs";
import type Database from "better-sqlite3";

/**
 * Makes the commits of one connection durable on demand: transactions committed with
 * `synchronous = NORMAL` (no fsync at COMMIT in WAL mode; checkpoints still sync, so the database
 * cannot be corrupted) become durable with one fsync of the write-ahead log, which covers every
 * frame written before it. The group commit uses it for bulk pieces that acknowledge nothing:
 * they cost no fsync, and the piece that finishes a command syncs them all at once.
 */
export class WalSync {
  private fd: number | null = null;
  private ino = -1;
  private readonly walPath: string | null;

  /** `db` in WAL mode on a file; otherwise {@link available} is false. */
  constructor(db: Database.Database) {
    const wal = !db.memory && String(db.pragma("journal_mode", { simple: true })).toLowerCase() === "wal";
    this.walPath = wal ? `${db.name}-wal` : null;
  }

  /** Whether commits can be relaxed and synced later (a file database in WAL mode). */
  get available(): boolean {
    return this.walPath !== null;
  }

  /**
   * fsync the write-ahead log: every transaction committed before is durable afterwards. Opens
   * the file on first use and again if SQLite replaced it.
   * @throws the file system's error (EIO, ...)
   */
  sync(): void {
    if (this.walPath === null) return;
    const ino = statSync(this.walPath).ino;
    if (this.fd === null || ino !== this.ino) {
      this.close();
      this.fd = openSync(this.walPath, "r");
      this.ino = fstatSync(this.fd).ino;
    }
    fsyncSync(this.fd);
  }

  /** Close the file descriptor. Idempotent. */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.ino = -1;
  }
}

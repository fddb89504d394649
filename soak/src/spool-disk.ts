/**
 * The agent's small spool disk: a 2 MiB tmpfs mounted as the agent's data directory (needs root
 * or CAP_SYS_ADMIN). `fill()` writes a filler file until the disk says ENOSPC, `free()` removes
 * it. Where the mount is refused the disk fault is skipped, and the result says why.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "@cdktr/protocol";

/** A mounted small disk, or the reason there is none. */
export class SpoolDisk {
  /** The directory to use as the agent's data directory. */
  readonly dir: string;
  /** Null when the tmpfs is mounted; otherwise why the disk fault is skipped. */
  readonly unavailable: string | null;
  readonly #root: string;
  #filler: string | null = null;

  private constructor(root: string, dir: string, unavailable: string | null) {
    this.#root = root;
    this.dir = dir;
    this.unavailable = unavailable;
  }

  /** Mount a tmpfs of `sizeBytes` (or fall back to a plain directory, with the reason). */
  static mount(sizeBytes: number): SpoolDisk {
    const root = mkdtempSync(join(tmpdir(), "cdktr-soak-disk-"));
    const dir = join(root, "mnt");
    mkdirSync(dir);
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0700`, "tmpfs", dir], { stdio: "pipe" });
      return new SpoolDisk(root, dir, null);
    } catch (e) {
      return new SpoolDisk(
        root,
        dir,
        `cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): ${errorMessage(e).split("\n")[0] ?? ""}`,
      );
    }
  }

  /** Write a filler file until ENOSPC; resolves with the bytes written. */
  fill(): number {
    if (this.unavailable !== null) return 0;
    const path = join(this.dir, "soak-filler");
    this.#filler = path;
    const fd = openSync(path, "a");
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    let written = 0;
    try {
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw e;
        }
      }
      // Whatever is left below one chunk.
      const small = Buffer.alloc(512, 0x61);
      for (;;) {
        try {
          written += writeSync(fd, small);
        } catch {
          break;
        }
      }
    } finally {
      closeSync(fd);
    }
    return written;
  }

  /** Remove the filler file (space returns). */
  free(): void {
    if (this.#filler === null) return;
    try {
      unlinkSync(this.#filler);
    } catch {
      /* already gone */
    }
    this.#filler = null;
  }

  /** Unmount and remove the directories (call once every process using it stopped). */
  dispose(): void {
    this.free();
    if (this.unavailable === null) {
      try {
        execFileSync("umount", ["-l", this.dir], { stdio: "pipe" });
      } catch {
        /* not mounted */
      }
    }
    rmSync(this.#root, { recursive: true, force: true });
  }
}

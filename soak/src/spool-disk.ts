/**
 * The agent's small spool disk: a tmpfs mounted as the agent's data directory (needs root or
 * CAP_SYS_ADMIN). `fill()` writes a filler file until the disk is full, `free()` removes it. Where
 * the mount is refused the disk fault is skipped, and the result says why.
 */
import { mkdtempSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fillDisk, tryMountTmpfs, type TmpfsMount } from "@cdktr/test-utils";

/** A mounted small disk, or the reason there is none. */
export class SpoolDisk {
  /** The directory to use as the agent's data directory. */
  readonly dir: string;
  /** Null when the tmpfs is mounted; otherwise why the disk fault is skipped. */
  readonly unavailable: string | null;
  readonly #mount: TmpfsMount;
  #filler: string | null = null;

  private constructor(mount: TmpfsMount) {
    this.#mount = mount;
    // Without a tmpfs the agent still needs a data directory: a plain one.
    this.dir = mount.dir ?? mkdtempSync(join(tmpdir(), "cdktr-soak-disk-"));
    this.unavailable = mount.reason;
  }

  /** Mount a tmpfs of `sizeBytes` (or fall back to a plain directory, with the reason). */
  static mount(sizeBytes: number): SpoolDisk {
    return new SpoolDisk(tryMountTmpfs(sizeBytes, "cdktr-soak-disk-"));
  }

  /** Write a filler file until the disk is full; returns the bytes written. */
  fill(): number {
    if (this.unavailable !== null) return 0;
    this.#filler = fillDisk(this.dir, "soak-filler");
    return statSync(this.#filler).size;
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

  /** Unmount and remove the directory (call once every process using it stopped). */
  dispose(): void {
    this.free();
    if (this.#mount.dir !== null) this.#mount.unmount();
    else rmSync(this.dir, { recursive: true, force: true });
  }
}

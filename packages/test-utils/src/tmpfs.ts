/**
 * Small file systems of their own for the full-disk tests and the soak: a tmpfs gives a real
 * ENOSPC (no quota tricks). Mounting needs root (or CAP_SYS_ADMIN); a test without it is skipped
 * with the reason, except when `CI` is set, where it fails: CI must run it.
 */
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

/** A mounted tmpfs (`unmount()` once no process uses it; idempotent), or why none could be mounted. */
export type TmpfsMount = { dir: string; reason: null; unmount(): void } | { dir: null; reason: string };

/**
 * Mount a tmpfs of `sizeBytes` (mode 0700) on a new directory of the system temp dir (not a
 * fixture temp dir: the fixture's clean-up may run while it is mounted).
 */
export function tryMountTmpfs(sizeBytes: number, prefix = "cdktr-tmpfs-"): TmpfsMount {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let reason: string | null = process.getuid?.() === 0 ? null : "mounting a tmpfs needs root (or CAP_SYS_ADMIN)";
  if (reason === null) {
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0700`, "tmpfs", dir], { stdio: "pipe" });
    } catch (e: unknown) {
      reason = `cannot mount a tmpfs on ${dir}: ${String((e as { stderr?: unknown }).stderr ?? e).trim()}`;
    }
  }
  if (reason !== null) {
    rmSync(dir, { recursive: true, force: true });
    return { dir: null, reason };
  }
  let mounted = true;
  return {
    dir,
    reason: null,
    unmount: () => {
      if (!mounted) return;
      mounted = false;
      try {
        // Lazy: processes that still hold files there (a killed principal's) do not block it.
        execFileSync("umount", ["-l", dir], { stdio: "pipe" });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * {@link tryMountTmpfs} for a test, unmounted when the test ends. Without one the test is skipped
 * with the reason, or fails when `CI` is set.
 * @returns the mounted directory, or null when the test was skipped
 */
export function mountTmpfs(t: TestContext, sizeBytes: number): string | null {
  const m = tryMountTmpfs(sizeBytes);
  if (m.dir === null) {
    if (process.env.CI !== undefined && process.env.CI !== "") {
      throw new Error(`full-disk test: ${m.reason} (CI is set: not skipping)`);
    }
    t.skip(`full-disk test skipped: ${m.reason}`);
    return null;
  }
  t.after(m.unmount);
  return m.dir;
}

/**
 * Append to the file `name` in `dir` until its file system is full to the last byte; returns the
 * file's path (delete it to free the space; call again to fill what was freed meanwhile).
 */
export function fillDisk(dir: string, name = "filler"): string {
  const path = join(dir, name);
  for (const size of [256 * 1024, 4096, 512, 1]) {
    const chunk = Buffer.alloc(size, 120);
    for (;;) {
      try {
        appendFileSync(path, chunk);
      } catch {
        break;
      }
    }
  }
  return path;
}

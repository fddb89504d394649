/**
 * A small tmpfs of its own for the full-disk tests: real ENOSPC, no quota tricks. Needs root
 * (`mount`); without it the test is skipped with a message, or fails when `CI` is set.
 */
import { execFileSync } from "node:child_process";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { makeTempDir } from "@cdktr/test-utils";

/**
 * Mount a tmpfs of `sizeBytes` on a new temp directory, unmounted when the test ends. Returns
 * null when the test was skipped (not root, or `mount` refused).
 */
export function mountTmpfs(t: TestContext, sizeBytes: number): string | null {
  const why =
    process.getuid?.() !== 0 ? "needs root to mount a tmpfs (run the tests as root, or in the CI container)" : null;
  const dir = makeTempDir("cdktr-tmpfs-");
  let reason = why;
  if (reason === null) {
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", dir], { stdio: "pipe" });
    } catch (e: unknown) {
      reason = `cannot mount a tmpfs on ${dir}: ${String((e as { stderr?: unknown }).stderr ?? e)}`;
    }
  }
  if (reason !== null) {
    if (process.env.CI !== undefined && process.env.CI !== "") {
      throw new Error(`full-disk test: ${reason} (CI is set: not skipping)`);
    }
    t.skip(`full-disk test skipped: ${reason}`);
    return null;
  }
  t.after(() => {
    execFileSync("umount", ["-l", dir], { stdio: "pipe" });
  });
  return dir;
}

/** Fill the file system of `dir` to the last block with a file; returns its path (delete it to free the space). */
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

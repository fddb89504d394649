/**
 * One clean-up for every fixture of a test file: clients closed, every process group started
 * through the fixture or `spawnService` killed by pid, temp directories removed.
 */
import { killAllServices, removeTempDirs } from "@cdktr/test-base";

const closers = new Set<() => void>();

/** Register something to close at {@link cleanup} (clients of a fixture); returns an unregister function. */
export function closeAtCleanup(close: () => void): () => void {
  closers.add(close);
  return () => closers.delete(close);
}

/**
 * Close every fixture client, SIGKILL every service process group still running and remove every
 * temp directory of this test process. Call it in `afterEach` (or in `after` when a suite shares
 * one principal started in `before`); it is safe to call twice.
 */
export async function cleanup(): Promise<void> {
  for (const close of [...closers]) {
    closers.delete(close);
    close();
  }
  await killAllServices();
  removeTempDirs();
}

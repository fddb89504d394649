/**
 * Checks and clean-up of processes by pid: tests that start process trees (a supervisor and its
 * apps, an agent and its task groups) use them to assert that nothing is left behind.
 */

/** Whether a process with this pid exists (signal 0 is a permission check, nothing is sent). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether a process group still has members. */
export function groupAlive(pgid: number): boolean {
  return processAlive(-pgid);
}

/** SIGKILL these process groups (leftovers of a failed test); groups already gone are skipped. */
export function killGroups(pgids: readonly number[]): void {
  for (const pgid of pgids) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

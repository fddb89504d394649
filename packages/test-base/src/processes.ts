/**
 * Checks and clean-up of processes by pid: tests that start process trees (a supervisor and its
 * apps, an agent and its task groups) use them to assert that nothing is left behind.
 */
import { readFileSync } from "node:fs";

/** Whether a process with this pid exists (signal 0 is a permission check, nothing is sent). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `pid` is gone for good: no such process, or a zombie (it runs nothing and holds no
 * pipe; whoever is its parent, or PID 1, reaps it). Reads `/proc` (Linux).
 */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
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

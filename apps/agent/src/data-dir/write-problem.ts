/**
 * How a failed write of an agent record is named in the agent's heartbeat `problems` and logs.
 */
import { errorMessage } from "@cdktr/protocol";

/** The error code of a failed system call (`ENOSPC`...), or null. */
export function errnoCode(e: unknown): string | null {
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : null;
}

/** The write failed because the disk (or the user's quota) is full. */
export function isDiskFull(e: unknown): boolean {
  const code = errnoCode(e);
  return code === "ENOSPC" || code === "EDQUOT";
}

/**
 * One problem line: `disk full: <what> (<path>): <consequence>` when the disk is full, else
 * `cannot write <what> (<path>): <error>: <consequence>`.
 */
export function writeProblem(what: string, path: string, e: unknown, consequence: string): string {
  if (isDiskFull(e)) return `disk full: ${what} (${path}): ${consequence}; free space there`;
  return `cannot write ${what} (${path}): ${errorMessage(e)}: ${consequence}`;
}

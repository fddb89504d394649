/**
 * An exclusive lock on the agent's data directory: a `agent.lock` file holding the owner's pid.
 */
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { AgentStartError } from "../errors.js";

interface LockContent {
  pid: number;
  /** Start time of the owner in clock ticks since boot, to survive pid reuse (Linux). */
  startTicks: string | null;
  agentId: string;
}

function startTicksOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function isAlive(holder: LockContent): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (e: unknown) {
    if ((e as { code?: unknown }).code !== "EPERM") return false;
  }
  const now = startTicksOf(holder.pid);
  return holder.startTicks === null || now === null || now === holder.startTicks;
}

/** A held lock; {@link release} is idempotent. */
export interface DataDirLock {
  readonly path: string;
  release(): void;
}

/**
 * Create `dir` if needed and lock it for this process. A lock whose holder is dead (or whose pid
 * now belongs to another process) is taken over.
 * @throws AgentStartError `DATA_DIR_LOCKED` when a live process holds it, `DATA_DIR_UNUSABLE`
 * when the directory cannot be created or written.
 */
export function acquireDataDirLock(dir: string, agentId: string, pid: number = process.pid): DataDirLock {
  const path = join(dir, "agent.lock");
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e: unknown) {
    throw new AgentStartError("DATA_DIR_UNUSABLE", `cannot create the agent data directory ${dir}: ${String(e)}; set CDKTR_AGENT_DATA_DIR to a writable directory`, { cause: e });
  }
  const mine: LockContent = { pid, startTicks: startTicksOf(pid), agentId };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644);
      try {
        writeSync(fd, JSON.stringify(mine));
      } finally {
        closeSync(fd);
      }
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          try {
            const cur = JSON.parse(readFileSync(path, "utf8")) as LockContent;
            if (cur.pid === pid) rmSync(path, { force: true });
          } catch {
            /* already gone */
          }
        },
      };
    } catch (e: unknown) {
      if ((e as { code?: unknown }).code !== "EEXIST") {
        throw new AgentStartError("DATA_DIR_UNUSABLE", `cannot write the lock file ${path}: ${String(e)}; set CDKTR_AGENT_DATA_DIR to a writable directory`, { cause: e });
      }
    }
    let holder: LockContent | null = null;
    try {
      const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<LockContent>;
      if (typeof parsed.pid === "number") {
        holder = { pid: parsed.pid, startTicks: parsed.startTicks ?? null, agentId: parsed.agentId ?? "?" };
      }
    } catch {
      holder = null; // unreadable or half-written: treat as stale
    }
    if (holder !== null && holder.pid !== pid && isAlive(holder)) {
      throw new AgentStartError(
        "DATA_DIR_LOCKED",
        `the agent data directory ${dir} is in use by another agent (pid ${holder.pid}, id ${holder.agentId}); ` +
          "stop that agent or give this one its own directory with CDKTR_AGENT_DATA_DIR (or CDKTR_AGENT_ID)",
        { context: { dir, pid: holder.pid } },
      );
    }
    rmSync(path, { force: true }); // dead holder: take over
  }
  throw new AgentStartError("DATA_DIR_LOCKED", `could not lock the agent data directory ${dir} (another agent is starting there); retry`, { context: { dir } });
}

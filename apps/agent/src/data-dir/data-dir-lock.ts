/**
 * An exclusive lock on the agent's data directory: a `agent.lock` file holding the owner's pid.
 */
import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "@cdktr/protocol";
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

/** Test hooks of {@link acquireDataDirLock} (to replay races deterministically). */
export interface DataDirLockHooks {
  /** Called after the current holder was judged dead, before it is replaced. */
  beforeTakeover?: () => void;
}

/** A takeover mutex older than this was left by a process that died inside it. */
const TAKEOVER_STALE_MS = 2_000;
/** How long to keep trying while other agents are starting on the same directory. */
const CONTENTION_MS = 5_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The lock's holder, null when the file is unreadable or corrupt, "missing" when there is none. */
function readHolder(path: string): LockContent | null | "missing" {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e: unknown) {
    return (e as { code?: unknown }).code === "ENOENT" ? "missing" : null;
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockContent>;
    if (typeof parsed.pid !== "number") return null;
    return { pid: parsed.pid, startTicks: parsed.startTicks ?? null, agentId: parsed.agentId ?? "?" };
  } catch {
    return null;
  }
}

function lockedError(dir: string, holder: LockContent): AgentStartError {
  return new AgentStartError(
    "DATA_DIR_LOCKED",
    `the agent data directory ${dir} is in use by another agent (pid ${holder.pid}, id ${holder.agentId}); ` +
      "stop that agent or give this one its own directory with CDKTR_AGENT_DATA_DIR (or CDKTR_AGENT_ID)",
    { context: { dir, pid: holder.pid } },
  );
}

function unusable(path: string, e: unknown): AgentStartError {
  return new AgentStartError(
    "DATA_DIR_UNUSABLE",
    `cannot write the lock file ${path}: ${errorMessage(e)}; set CDKTR_AGENT_DATA_DIR to a writable directory`,
    {
      cause: e,
    },
  );
}

/**
 * Create the lock file atomically with its full content (written to a temp file, then
 * hard-linked into place), so no other process ever reads a half-written lock.
 * @returns false when a lock file already exists.
 */
function tryCreate(path: string, content: LockContent): boolean {
  const tmp = `${path}.${content.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(content), { mode: 0o644, flag: "wx" });
    linkSync(tmp, path);
    return true;
  } catch (e: unknown) {
    if ((e as { code?: unknown }).code === "EEXIST") return false;
    throw unusable(path, e);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Run `fn` holding the takeover mutex (a directory: `mkdir` is atomic). Returns false, without
 * running `fn`, when another process holds it; a mutex left by a process that died inside it is
 * removed once it is {@link TAKEOVER_STALE_MS} old.
 */
function withTakeoverMutex(path: string, fn: () => void): boolean {
  const mutex = `${path}.takeover`;
  try {
    mkdirSync(mutex);
  } catch (e: unknown) {
    if ((e as { code?: unknown }).code !== "EEXIST") throw unusable(mutex, e);
    try {
      if (Date.now() - statSync(mutex).mtimeMs > TAKEOVER_STALE_MS) rmSync(mutex, { recursive: true, force: true });
    } catch {
      /* gone meanwhile */
    }
    return false;
  }
  try {
    fn();
    return true;
  } finally {
    rmSync(mutex, { recursive: true, force: true });
  }
}

/**
 * Create `dir` if needed and lock it for this process. A lock whose holder is dead (or whose pid
 * now belongs to another process) is taken over. The takeover is race-free: the holder is read
 * again under a takeover mutex before the stale file is removed, so of several agents starting
 * at once on a directory with a dead holder exactly one gets it, and a lock another agent has
 * just created is never removed.
 * @param pid the owner recorded in the lock (this process by default).
 * @param hooks test hooks only.
 * @throws AgentStartError `DATA_DIR_LOCKED` when a live process holds it, `DATA_DIR_UNUSABLE`
 * when the directory cannot be created or written.
 */
export function acquireDataDirLock(
  dir: string,
  agentId: string,
  pid: number = process.pid,
  hooks: DataDirLockHooks = {},
): DataDirLock {
  const path = join(dir, "agent.lock");
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e: unknown) {
    throw new AgentStartError(
      "DATA_DIR_UNUSABLE",
      `cannot create the agent data directory ${dir}: ${errorMessage(e)}; set CDKTR_AGENT_DATA_DIR to a writable directory`,
      { cause: e },
    );
  }
  const mine: LockContent = { pid, startTicks: startTicksOf(pid), agentId };
  const giveUpAt = Date.now() + CONTENTION_MS;
  for (let first = true; ; first = false) {
    if (!first) {
      if (Date.now() > giveUpAt) {
        throw new AgentStartError(
          "DATA_DIR_LOCKED",
          `could not lock the agent data directory ${dir} (another agent is starting there); retry`,
          { context: { dir } },
        );
      }
      sleepSync(5 + Math.floor(Math.random() * 10));
    }
    if (tryCreate(path, mine)) {
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          const cur = readHolder(path);
          if (cur !== null && cur !== "missing" && cur.pid === pid && cur.agentId === agentId)
            rmSync(path, { force: true });
        },
      };
    }
    const holder = readHolder(path);
    if (holder === "missing") continue; // released meanwhile
    if (holder !== null && holder.pid !== pid && isAlive(holder)) throw lockedError(dir, holder);
    hooks.beforeTakeover?.();
    withTakeoverMutex(path, () => {
      // Read again: another agent may have replaced the dead holder since we looked.
      const cur = readHolder(path);
      if (cur === "missing") return;
      if (cur !== null && cur.pid !== pid && isAlive(cur)) throw lockedError(dir, cur);
      rmSync(path, { force: true }); // dead holder: take over
    });
  }
}

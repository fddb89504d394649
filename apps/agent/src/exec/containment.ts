/**
 * Finds and kills every process a task started, including those that left its process group
 * (`setsid`, double forks): a cgroup v2 subtree per task where the agent can create one,
 * otherwise a per-task marker in the environment found by scanning `/proc/<pid>/environ`.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { errorMessage, type Logger } from "@cdktr/protocol";
import { AgentStartError } from "../errors.js";
import { cgroupMount, cgroupPids, ownCgroup, pruneEmptySiblings, tryMkdir, tryRmdir } from "./cgroup-fs.js";
import {
  CgroupTask,
  MarkerTask,
  TASK_MARKER_ENV,
  type ContainmentMechanism,
  type ContainmentOwner,
  type TaskContainment,
} from "./task-containment.js";

export { TASK_MARKER_ENV, type ContainmentMechanism, type TaskContainment } from "./task-containment.js";

/** `CDKTR_AGENT_CONTAINMENT`: which mechanism to use; `auto` is cgroup v2 when usable, else proc. */
export type ContainmentMode = "auto" | "cgroup" | "proc";

/** Options of {@link Containment.create}. */
export interface ContainmentOptions {
  mode: ContainmentMode;
  /**
   * A cgroup v2 directory the agent may create subdirectories in (`CDKTR_AGENT_CGROUP_BASE`);
   * null = the agent's own cgroup (from `/proc/self/cgroup` and `/proc/self/mountinfo`).
   */
  cgroupBase: string | null;
  /** The agent's data directory: one agent process at a time owns it, and the subtree named after it. */
  dataDir: string;
  logger: Logger;
  /** Root of the proc file system (tests). @default "/proc" */
  procRoot?: string;
}

/** A process directory name in `/proc`. */
const PID_NAME = /^\d+$/;

/**
 * The cgroup this process was in before any containment moved it (each waits for spawns in fresh
 * cgroups of its subtree): the base of every containment the process makes (one per agent
 * process; tests make several) and where {@link Containment.close} moves it back to.
 */
let processHome: string | null = null;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * The agent's way of finding every process of a task. Create one per agent process with
 * {@link Containment.create}; {@link forTask} for each attempt; {@link reapOrphans} once at
 * start-up, before the first task.
 */
export class Containment implements ContainmentOwner {
  readonly mechanism: ContainmentMechanism;
  /** Why this mechanism (for the start-up log line). */
  readonly why: string;
  /** The agent's subtree (`<base>/cdktr-agent-<key>`) under cgroup v2, or null. */
  readonly cgroupDir: string | null;
  readonly #key: string;
  readonly #logger: Logger;
  readonly #procRoot: string;
  readonly #cgroupMount: string | null;
  readonly #hasKill: boolean;
  /** The cgroup the agent started in, to go back to at {@link close} (and when staging fails). */
  readonly #home: string | null;
  /** The fresh task cgroup the agent waits in for its next spawn (it becomes that task's), or null. */
  #staged: string | null = null;
  /** Staging failed: logged once. */
  #stagingProblem = false;
  /** Where cgroup v2 is mounted, read once (then each check of the agent's cgroup reads one small file), or why not. */
  readonly #mount: ReturnType<typeof cgroupMount> | null;

  private constructor(
    mechanism: ContainmentMechanism,
    why: string,
    key: string,
    cgroup: { dir: string; mount: string } | null,
    options: ContainmentOptions,
  ) {
    this.mechanism = mechanism;
    this.why = why;
    this.#key = key;
    this.cgroupDir = cgroup?.dir ?? null;
    this.#cgroupMount = cgroup?.mount ?? null;
    this.#logger = options.logger;
    this.#procRoot = options.procRoot ?? "/proc";
    this.#hasKill = cgroup !== null && existsSync(join(cgroup.dir, "cgroup.kill"));
    this.#mount = cgroup === null ? null : cgroupMount(this.#procRoot);
    this.#home = cgroup === null ? null : this.#procRoot === "/proc" ? processHome : this.#homeCgroup();
  }

  /**
   * Pick the mechanism: with mode `auto` or `cgroup`, create `<base>/cdktr-agent-<key>` (key: a
   * hash of the host name and the data directory) and check that the agent can move itself into
   * a child of it and back; with `auto`, fall back to the proc marker when it cannot.
   * @throws AgentStartError `CONTAINMENT_UNAVAILABLE` with mode `cgroup` when cgroup v2 cannot be used
   */
  static create(options: ContainmentOptions): Containment {
    // Host and data directory: one agent process at a time (the data directory lock) has this key.
    const key = createHash("sha256").update(`${hostname()}\0${options.dataDir}`).digest("hex").slice(0, 16);
    const procRoot = options.procRoot ?? "/proc";
    if (options.mode === "proc") {
      return new Containment("proc", "CDKTR_AGENT_CONTAINMENT=proc", key, null, options);
    }
    const probe = Containment.#probeCgroup(options, key, procRoot);
    if (typeof probe !== "string") {
      pruneEmptySiblings(probe.dir);
      return new Containment("cgroup", `cgroup v2 subtree ${probe.dir}`, key, probe, options);
    }
    if (options.mode === "cgroup") {
      throw new AgentStartError(
        "CONTAINMENT_UNAVAILABLE",
        `CDKTR_AGENT_CONTAINMENT=cgroup but cgroup v2 cannot be used: ${probe}; give the agent a writable cgroup v2 subtree (CDKTR_AGENT_CGROUP_BASE, systemd Delegate=yes, or a container with --cgroupns=private and a writable /sys/fs/cgroup), or set CDKTR_AGENT_CONTAINMENT=auto`,
        { context: { dataDir: options.dataDir } },
      );
    }
    return new Containment("proc", `no usable cgroup v2 (${probe}): /proc environment marker`, key, null, options);
  }

  static #probeCgroup(
    options: ContainmentOptions,
    key: string,
    procRoot: string,
  ): { dir: string; mount: string } | string {
    const own = ownCgroup(procRoot);
    if (typeof own === "string") return own;
    if (procRoot === "/proc") processHome ??= join(own.mount, own.path);
    const home = procRoot === "/proc" ? processHome : join(own.mount, own.path);
    const base = options.cgroupBase ?? home ?? join(own.mount, own.path);
    const dir = join(base, `cdktr-agent-${key}`);
    // Never create the base: a wrong path must not litter another file system with directories.
    if (!existsSync(join(base, "cgroup.procs"))) return `${base} is not a directory of a cgroup v2 file system`;
    let created = false;
    try {
      if (!existsSync(dir)) {
        mkdirSync(dir);
        created = true;
      }
      const probe = join(dir, `probe-${process.pid}`);
      mkdirSync(probe, { recursive: true });
      try {
        writeFileSync(join(probe, "cgroup.procs"), String(process.pid));
      } finally {
        writeFileSync(join(own.mount, own.path, "cgroup.procs"), String(process.pid)); // where it was
        rmdirSync(probe);
      }
      return { dir, mount: own.mount };
    } catch (e: unknown) {
      if (created) tryRmdir(dir);
      return `cannot create and join a cgroup under ${base}: ${errorMessage(e)}`;
    }
  }

  /**
   * The containment of one task attempt (a fresh marker, and a fresh cgroup from its spawn on when
   * in use).
   */
  forTask(): TaskContainment {
    const marker = `${this.#key}.${randomBytes(16).toString("hex")}`;
    return this.cgroupDir === null ? new MarkerTask(this, marker) : new CgroupTask(this, marker);
  }

  makeTaskCgroup(): string | null {
    if (this.cgroupDir === null) return null;
    const dir = join(this.cgroupDir, `task-${randomBytes(8).toString("hex")}`);
    for (let attempt = 1; ; attempt++) {
      try {
        mkdirSync(dir);
        return dir;
      } catch (e: unknown) {
        // Another agent starting may have pruned our subtree while it was empty: make it again.
        if ((e as { code?: unknown }).code === "ENOENT" && attempt < 3 && tryMkdir(this.cgroupDir)) continue;
        this.#logger.warn("cannot create a task cgroup: using the /proc marker for this task", {
          cgroup: dir,
          error: errorMessage(e),
        });
        return null;
      }
    }
  }

  takeStaged(): string | null {
    const staged = this.#staged;
    this.#staged = null;
    if (staged === null) return null;
    // Only if the agent is still in it (nothing else moves the agent, but another containment of
    // the same process, as in tests, would).
    if (this.#homeCgroup() === staged) return staged;
    tryRmdir(staged);
    return null;
  }

  restage(): void {
    const next = this.makeTaskCgroup();
    const problem = next === null ? "cannot create it" : this.#moveTo(next);
    if (problem === null) {
      this.#staged = next;
      return;
    }
    if (next !== null) tryRmdir(next);
    if (!this.#stagingProblem) {
      this.#stagingProblem = true;
      this.#logger.warn(
        "cannot wait for spawns in a fresh cgroup: each spawn moves the agent into its task's cgroup first",
        { cgroupDir: this.cgroupDir, error: errorMessage(problem) },
      );
    }
    if (this.#home !== null) this.#leaveCgroup(this.#home);
  }

  /**
   * Kill what an agent process with this data directory left (see {@link killAll}); call once at
   * start-up, before the first task. Returns how many processes were signalled.
   */
  reapOrphans(): number {
    const killed = this.killAll();
    if (killed > 0) this.#logger.warn("killed task processes left by a previous agent process", { processes: killed });
    return killed;
  }

  /**
   * SIGKILL every process of every task of this agent (any marker of its key, every task cgroup
   * of its subtree, then removed), synchronously: start-up reaping and the forced stop.
   * Returns how many processes were signalled.
   */
  killAll(): number {
    let killed = this.killMarked(`${TASK_MARKER_ENV}=${this.#key}.`, "SIGKILL", true);
    if (this.cgroupDir !== null) {
      let names: string[] = [];
      try {
        names = readdirSync(this.cgroupDir).filter((n) => n.startsWith("task-") || n.startsWith("probe-"));
      } catch {
        names = [];
      }
      for (const name of names) {
        const dir = join(this.cgroupDir, name);
        // The fresh cgroup the agent waits in holds no task (and the agent).
        if (dir === this.#staged) continue;
        killed += this.killCgroup(dir, "SIGKILL");
        for (let i = 0; i < 20 && !tryRmdir(dir); i++) sleepSync(25);
      }
    }
    return killed;
  }

  /** Signal every process of this uid whose environment holds `entry` (or an entry starting with it). */
  killMarked(entry: string, signal: NodeJS.Signals, prefix = false): number {
    let total = 0;
    const seen = new Set<number>();
    // Repeat while new processes turn up: one may fork while we kill its parent.
    for (let round = 0; round < 10; round++) {
      const found = this.#findMarked(entry, prefix);
      const fresh = this.#signalFound(found, seen, signal);
      total += fresh;
      if (fresh === 0 || signal !== "SIGKILL") break;
    }
    return total;
  }

  /** {@link killMarked} for an exact entry, reading `/proc` asynchronously; never rejects. */
  async killMarkedAsync(entry: string, signal: NodeJS.Signals): Promise<number> {
    let total = 0;
    const seen = new Set<number>();
    for (let round = 0; round < 10; round++) {
      const found = await this.#findMarkedAsync(entry);
      const fresh = this.#signalFound(found, seen, signal);
      total += fresh;
      if (fresh === 0 || signal !== "SIGKILL") break;
    }
    return total;
  }

  /** Signal `found` (SIGKILL again to those seen before, other signals once); returns how many are new. */
  #signalFound(pids: number[], seen: Set<number>, signal: NodeJS.Signals): number {
    let fresh = 0;
    for (const pid of pids) {
      if (seen.has(pid) && signal !== "SIGKILL") continue;
      if (!seen.has(pid)) fresh++;
      seen.add(pid);
      try {
        process.kill(pid, signal);
      } catch {
        /* gone meanwhile */
      }
    }
    return fresh;
  }

  async #findMarkedAsync(entry: string): Promise<number[]> {
    const uid = process.getuid?.();
    let names: string[];
    try {
      names = (await readdir(this.#procRoot)).filter((n) => PID_NAME.test(n) && Number(n) !== process.pid);
    } catch {
      return [];
    }
    const out: number[] = [];
    // A few at a time: the thread pool also serves the spool and the outbox.
    for (let i = 0; i < names.length; i += 16) {
      await Promise.all(
        names.slice(i, i + 16).map(async (name) => {
          try {
            if (uid !== undefined && (await stat(join(this.#procRoot, name))).uid !== uid) return;
            const env = (await readFile(join(this.#procRoot, name, "environ"), "latin1")).split("\0");
            if (env.includes(entry)) out.push(Number(name));
          } catch {
            /* gone, or not readable: not ours */
          }
        }),
      );
    }
    return out;
  }

  #findMarked(entry: string, prefix: boolean): number[] {
    const uid = process.getuid?.();
    let names: string[];
    try {
      names = readdirSync(this.#procRoot);
    } catch {
      return [];
    }
    const out: number[] = [];
    for (const name of names) {
      if (!PID_NAME.test(name)) continue;
      const pid = Number(name);
      if (pid === process.pid) continue;
      try {
        if (uid !== undefined && statSync(join(this.#procRoot, name)).uid !== uid) continue;
        const env = readFileSync(join(this.#procRoot, name, "environ"), "latin1").split("\0");
        if (prefix ? env.some((e) => e.startsWith(entry)) : env.includes(entry)) out.push(pid);
      } catch {
        /* gone, or not readable: not ours */
      }
    }
    return out;
  }

  /** Signal every process in cgroup `dir` (SIGKILL through `cgroup.kill` when the kernel has it). */
  killCgroup(dir: string, signal: NodeJS.Signals): number {
    const pids = cgroupPids(dir);
    if (pids.includes(process.pid)) {
      // Never signal the agent itself (it failed to move back after a spawn): one pid at a time.
      this.#logger.error("the agent is inside a task's cgroup: killing the task's processes one by one", {
        cgroup: dir,
      });
    } else if (signal === "SIGKILL" && this.#hasKill) {
      try {
        writeFileSync(join(dir, "cgroup.kill"), "1");
        return pids.length;
      } catch {
        /* fall through to one by one */
      }
    }
    let total = 0;
    const seen = new Set<number>();
    for (let round = 0; round < 10; round++) {
      const left = cgroupPids(dir).filter((p) => p !== process.pid && (signal === "SIGKILL" || !seen.has(p)));
      let fresh = 0;
      for (const pid of left) {
        if (!seen.has(pid)) fresh++;
        seen.add(pid);
        try {
          process.kill(pid, signal);
        } catch {
          /* gone meanwhile */
        }
      }
      total += fresh;
      if (left.length === 0 || signal !== "SIGKILL") break;
    }
    return total;
  }

  /** Move the agent into the task cgroup `dir`; false (logged) when it could not move. */
  joinCgroup(dir: string): boolean {
    const problem = this.#moveTo(dir);
    if (problem === null) return true;
    this.#logger.warn("cannot join a task's cgroup: using the /proc marker for this task", {
      cgroup: dir,
      error: errorMessage(problem),
    });
    return false;
  }

  /** Move the agent into the cgroup `dir`; the error when it could not, else null. */
  #moveTo(dir: string): unknown {
    if (this.#homeCgroup() === null) return "the agent's own cgroup is unknown";
    try {
      writeFileSync(join(dir, "cgroup.procs"), String(process.pid));
      return null;
    } catch (e: unknown) {
      return e;
    }
  }

  /** Move the agent back to `home`, the cgroup it started in. */
  #leaveCgroup(home: string): void {
    try {
      writeFileSync(join(home, "cgroup.procs"), String(process.pid));
    } catch (e: unknown) {
      this.#logger.error("cannot move the agent back to its cgroup", { cgroup: home, error: errorMessage(e) });
    }
  }

  #homeCgroup(): string | null {
    if (this.#mount === null) return null;
    const own = ownCgroup(this.#procRoot, this.#mount);
    if (typeof own === "string" || this.#cgroupMount === null) return null;
    return join(this.#cgroupMount, own.path);
  }

  /** Remove the agent's (empty) subtree at a clean stop; left in place when something is still in it. */
  close(): void {
    const staged = this.#staged;
    this.#staged = null;
    if (staged !== null && this.#home !== null) {
      this.#leaveCgroup(this.#home);
      tryRmdir(staged);
    }
    if (this.cgroupDir !== null) tryRmdir(this.cgroupDir);
  }

  get logger(): Logger {
    return this.#logger;
  }
}

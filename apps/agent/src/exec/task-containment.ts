/**
 * One task attempt's processes, as the two mechanisms of {@link Containment} find them: a cgroup
 * v2 directory per attempt, or the attempt's marker in the environment of its processes.
 */
import type { Logger } from "@cdktr/protocol";
import { tryRmdir } from "./cgroup-fs.js";

/** The mechanism that finds a task's processes. */
export type ContainmentMechanism = "cgroup" | "proc";

/** Name of the environment variable that tags every process of a task. */
export const TASK_MARKER_ENV = "CDKTR_TASK_MARKER";

/** The processes of one task attempt, from its spawn to its release. */
export interface TaskContainment {
  readonly mechanism: ContainmentMechanism;
  /** Variables to add to the task's environment (the marker), last so that nothing overrides them. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Run `spawn` (which must fork synchronously, as `child_process.spawn` does) so that the child
   * starts inside the task's cgroup: the agent forks from inside it, so no process of the task is
   * ever outside it (no race with a fast fork). The agent waits for each spawn inside a fresh
   * cgroup made ahead of time ({@link ContainmentOwner.takeStaged}), which becomes the task's;
   * then it moves on to the next fresh one ({@link ContainmentOwner.restage}): the cgroup
   * migration (7-20 ms on an idle machine: the kernel waits for an RCU grace period) happens
   * after the spawn, not before it.
   */
  spawnInside<T>(spawn: () => T): T;
  /**
   * The agent's spawner process started the task in the task cgroup `cgroup` (null: in none, and
   * the /proc marker finds its processes): instead of {@link spawnInside}.
   */
  spawnedIn(cgroup: string | null): void;
  /**
   * Send `signal` to every process of the task found now (never rejects); resolves with how many
   * were signalled. The `/proc` scan runs off the event loop.
   */
  signal(signal: NodeJS.Signals): Promise<number>;
  /** Kill what is left and remove the task's cgroup (in the background when it is still busy). */
  release(): void;
}

/** What a task's containment asks of the agent's {@link Containment} (which implements it). */
export interface ContainmentOwner {
  readonly logger: Logger;
  /** Signal every process whose environment holds `entry` (`NAME=value`); resolves with how many. */
  killMarkedAsync(entry: string, signal: NodeJS.Signals): Promise<number>;
  /** Signal every process of the cgroup `dir`; returns how many. */
  killCgroup(dir: string, signal: NodeJS.Signals): number;
  /** Move the agent into the task cgroup `dir`; false (logged) when it cannot. */
  joinCgroup(dir: string): boolean;
  /** Make a fresh, empty task cgroup; null (logged) when it cannot. */
  makeTaskCgroup(): string | null;
  /**
   * The fresh task cgroup the agent waits in, now this task's: spawn in it, then call
   * {@link restage}. Null when there is none (the first spawn, or staging failed).
   */
  takeStaged(): string | null;
  /** Move the agent into a new fresh cgroup to wait for the next spawn (or back home when it cannot). */
  restage(): void;
}

/** The `/proc` marker: the task's processes are those whose environment carries its marker. */
export class MarkerTask implements TaskContainment {
  readonly mechanism: ContainmentMechanism = "proc";
  readonly env: Readonly<Record<string, string>>;
  readonly #owner: ContainmentOwner;
  readonly #entry: string;

  constructor(owner: ContainmentOwner, marker: string) {
    this.#owner = owner;
    this.env = { [TASK_MARKER_ENV]: marker };
    this.#entry = `${TASK_MARKER_ENV}=${marker}`;
  }

  spawnInside<T>(spawn: () => T): T {
    return spawn();
  }

  spawnedIn(): void {
    /* the marker is in the task's environment */
  }

  /** Sweeps run one after the other. */
  #queue: Promise<number> = Promise.resolve(0);
  /** The last SIGKILL sweep found no process: none is left that could start another. */
  #clean = false;

  signal(signal: NodeJS.Signals): Promise<number> {
    this.#queue = this.#queue.then(async () => {
      const n = await this.#owner.killMarkedAsync(this.#entry, signal);
      if (signal === "SIGKILL") this.#clean = n === 0;
      return n;
    });
    return this.#queue;
  }

  release(): void {
    void this.#queue.then(() => (this.#clean ? 0 : this.signal("SIGKILL")));
  }
}

/** A cgroup v2 directory per task, holding every process the task ever starts. */
export class CgroupTask implements TaskContainment {
  readonly mechanism: ContainmentMechanism = "cgroup";
  readonly env: Readonly<Record<string, string>>;
  readonly #owner: ContainmentOwner;
  /** The task's cgroup, from its spawn on (none before: an attempt that never spawns makes none). */
  #dir: string | null = null;
  readonly #marker: MarkerTask;
  /** The spawn happened outside a cgroup (the agent could not make or join one): use the marker too. */
  #fallback: MarkerTask | null = null;

  constructor(owner: ContainmentOwner, marker: string) {
    this.#owner = owner;
    this.#marker = new MarkerTask(owner, marker);
    this.env = this.#marker.env;
  }

  spawnInside<T>(spawn: () => T): T {
    const staged = this.#owner.takeStaged();
    if (staged !== null) {
      this.#dir = staged;
      try {
        return spawn();
      } finally {
        this.#owner.restage();
      }
    }
    // No cgroup waiting (the first spawn, or staging failed): make one and move in for the spawn.
    const dir = this.#owner.makeTaskCgroup();
    if (dir === null || !this.#owner.joinCgroup(dir)) {
      if (dir !== null) tryRmdir(dir);
      this.#fallback = this.#marker;
      return spawn();
    }
    this.#dir = dir;
    try {
      return spawn();
    } finally {
      // Straight on to a fresh cgroup for the next spawn (back home when that fails).
      this.#owner.restage();
    }
  }

  spawnedIn(cgroup: string | null): void {
    this.#dir = cgroup;
    if (cgroup === null) this.#fallback = this.#marker;
  }

  async signal(signal: NodeJS.Signals): Promise<number> {
    const inCgroup = this.#dir === null ? 0 : this.#owner.killCgroup(this.#dir, signal);
    return inCgroup + ((await this.#fallback?.signal(signal)) ?? 0);
  }

  release(): void {
    this.#fallback?.release();
    const dir = this.#dir;
    if (dir === null) return;
    this.#owner.killCgroup(dir, "SIGKILL");
    if (tryRmdir(dir)) return;
    // Killed processes leave the cgroup a moment later: retry in the background.
    let tries = 0;
    const retry = (): void => {
      if (tryRmdir(dir)) return;
      if (++tries >= 50) {
        this.#owner.logger.warn("cannot remove a task's cgroup: the next agent start removes it", {
          cgroup: dir,
        });
        return;
      }
      this.#owner.killCgroup(dir, "SIGKILL");
      setTimeout(retry, 100).unref();
    };
    setTimeout(retry, 20).unref();
  }
}

/**
 * The agent's side of its spawner process (`spawner-main.ts`): one long-lived child process,
 * started with the agent, that forks every task process, so that forks and cgroup moves cost the
 * agent's thread nothing and run on another core. Each spawn is one request; the task's pipes come
 * back as handles and are read here, its exit is reported by the spawner.
 */
import { type ChildProcess, fork } from "node:child_process";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { errorMessage, type Logger } from "@cdktr/protocol";
import { SpawnerError } from "../../errors.js";
import { killGroup } from "../task-process.js";
import { SPAWNER_CGROUP_ENV, SpawnerReplySchema, type SpawnRequest } from "./spawner-messages.js";

const MAIN = fileURLToPath(new URL("./spawner-main.js", import.meta.url));

/** How long the spawner may take to start before the agent gives up on it. */
const START_TIMEOUT_MS = 10_000;

/** What {@link Spawner.spawn} is asked to start. */
export type SpawnCommand = Omit<SpawnRequest, "type" | "id">;

/**
 * A task process started by the spawner, seen from the agent: its pid, its pipes, and the events
 * of a `ChildProcess` that the attempt needs (`exit` when the leader exited, `close` once it
 * exited and both pipes closed). When the spawner dies first, the task's exit status is lost:
 * its process group is killed and `lost` says why, then `exit` (null, `SIGKILL`) follows.
 */
export class SpawnedTask extends EventEmitter {
  /** Why the exit status is unknown (the spawner died first), or null. */
  lost: string | null = null;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  #open = 2;

  constructor(
    readonly pid: number,
    /** The task cgroup it started in (null: none; the /proc marker finds its processes). */
    readonly cgroup: string | null,
    readonly stdout: Socket,
    readonly stderr: Socket,
  ) {
    super();
    for (const s of [stdout, stderr]) {
      if (s.closed) this.#open--;
      else
        s.once("close", () => {
          this.#open--;
          this.#maybeClose();
        });
    }
  }

  /** @internal The spawner reported the exit. */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#exit !== null) return;
    this.#exit = { code, signal };
    this.emit("exit", code, signal);
    this.#maybeClose();
  }

  #maybeClose(): void {
    if (this.#exit !== null && this.#open === 0) this.emit("close", this.#exit.code, this.#exit.signal);
  }
}

/** How a spawn ended: started, or the errno name and message of the failure. */
export type SpawnResult = { ok: true; task: SpawnedTask } | { ok: false; code: string | null; message: string };

interface Pending {
  /** Called in the turn the reply arrives (the exit may follow in the same turn). */
  resolve(r: SpawnResult): void;
  /** The `spawned` reply, until the stderr handle follows. */
  spawned?: { pid: number; cgroup: string | null; stdout: Socket };
}

/** Options of {@link Spawner.start}. */
export interface SpawnerOptions {
  /** The agent's cgroup v2 subtree (tasks wait for their spawn in fresh cgroups there), or null. */
  cgroupDir: string | null;
  logger: Logger;
}

/** The agent's spawner process; restarted on the next spawn when it died. */
export class Spawner {
  readonly #o: SpawnerOptions;
  #child: ChildProcess | null = null;
  #starting: Promise<ChildProcess> | null = null;
  #nextId = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #tasks = new Map<number, SpawnedTask>();
  #closed = false;

  private constructor(options: SpawnerOptions) {
    this.#o = options;
  }

  /**
   * Start the spawner process and wait until it is ready.
   * @throws SpawnerError `SPAWNER_UNAVAILABLE` when it does not start
   */
  static async start(options: SpawnerOptions): Promise<Spawner> {
    const s = new Spawner(options);
    await s.#ensure();
    return s;
  }

  /** The spawner's pid (null while none runs). */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /**
   * Start `command` as the leader of a new process group. `done` is called once, synchronously
   * in the turn the spawner's reply arrives: listeners for the task's `exit` and `close` must be
   * attached there (its exit may be reported in the same turn, before any promise callback).
   */
  spawn(command: SpawnCommand, done: (r: SpawnResult) => void): void {
    const send = (child: ChildProcess): void => {
      const id = this.#nextId++;
      this.#pending.set(id, { resolve: done });
      child.send({ type: "spawn", id, ...command }, (e) => {
        if (e == null || !this.#pending.delete(id)) return;
        done({ ok: false, code: null, message: `cannot reach the agent's spawner process: ${errorMessage(e)}` });
      });
    };
    if (this.#child !== null && !this.#closed) {
      send(this.#child);
      return;
    }
    this.#ensure().then(send, (e: unknown) => done({ ok: false, code: null, message: errorMessage(e) }));
  }

  /** Stop the spawner (it leaves its fresh cgroup first); resolves once it exited. */
  async close(): Promise<void> {
    this.#closed = true;
    const child = this.#child ?? (await this.#starting?.catch(() => null)) ?? null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.disconnect();
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }

  #ensure(): Promise<ChildProcess> {
    if (this.#closed) return Promise.reject(new SpawnerError("SPAWNER_UNAVAILABLE", "the agent is stopping"));
    if (this.#child !== null) return Promise.resolve(this.#child);
    this.#starting ??= this.#launch().finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  #launch(): Promise<ChildProcess> {
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
    if (this.#o.cgroupDir !== null) env[SPAWNER_CGROUP_ENV] = this.#o.cgroupDir;
    const child = fork(MAIN, [], {
      env,
      execArgv: [],
      serialization: "json",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    return new Promise<ChildProcess>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(
          new SpawnerError(
            "SPAWNER_UNAVAILABLE",
            `the agent's spawner process did not start within ${START_TIMEOUT_MS} ms`,
          ),
        );
      }, START_TIMEOUT_MS);
      child.on("message", (message: unknown, handle: unknown) => {
        const reply = SpawnerReplySchema.safeParse(message);
        if (!reply.success) {
          this.#o.logger.error("malformed message from the spawner process", { error: reply.error.message });
          (handle as Socket | undefined)?.destroy();
          return;
        }
        const r = reply.data;
        if (r.type === "ready") {
          clearTimeout(timer);
          this.#child = child;
          resolve(child);
        } else if (r.type === "warn") {
          this.#o.logger.warn(r.message, r.detail);
        } else if (r.type === "failed") {
          const p = this.#pending.get(r.id);
          this.#pending.delete(r.id);
          p?.resolve({ ok: false, code: r.code, message: r.message });
        } else if (r.type === "spawned") {
          const p = this.#pending.get(r.id);
          // Not read until the attempt is told (with the stderr, next message): its output stays
          // in the socket's buffer; an empty one may have ended and closed already (counted).
          if (p !== undefined) p.spawned = { pid: r.pid, cgroup: r.cgroup, stdout: handle as Socket };
        } else if (r.type === "stderr") {
          const p = this.#pending.get(r.id);
          this.#pending.delete(r.id);
          if (p?.spawned === undefined) return;
          const task = new SpawnedTask(p.spawned.pid, p.spawned.cgroup, p.spawned.stdout, handle as Socket);
          this.#tasks.set(r.id, task);
          p.resolve({ ok: true, task });
        } else {
          const task = this.#tasks.get(r.id);
          this.#tasks.delete(r.id);
          task?.exited(r.code, r.signal as NodeJS.Signals | null);
        }
      });
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(new SpawnerError("SPAWNER_UNAVAILABLE", `cannot start the agent's spawner process: ${errorMessage(e)}`));
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(
          new SpawnerError(
            "SPAWNER_UNAVAILABLE",
            `the agent's spawner process exited at start (code ${code}, signal ${signal})`,
          ),
        );
        this.#died(child, code, signal);
      });
    });
  }

  /** The spawner exited: fail what waits for it, and end the tasks whose exit it can no longer report. */
  #died(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child === child) this.#child = null;
    const why = `the agent's spawner process exited (code ${code}, signal ${signal}) while the task ran: its process group was killed and its exit status is unknown`;
    if (!this.#closed)
      this.#o.logger.error("the spawner process exited; the next spawn starts a new one", { code, signal });
    for (const p of this.#pending.values()) {
      let message = `the agent's spawner process exited before starting the task (code ${code}, signal ${signal})`;
      if (p.spawned !== undefined) {
        // Started, but its stderr never came: nobody could watch it, so it does not run on.
        p.spawned.stdout.destroy();
        killGroup(p.spawned.pid, "SIGKILL");
        message = `the agent's spawner process exited (code ${code}, signal ${signal}) while handing the task over: its process group was killed`;
      }
      p.resolve({ ok: false, code: null, message });
    }
    this.#pending.clear();
    for (const task of this.#tasks.values()) {
      task.lost = why;
      killGroup(task.pid, "SIGKILL");
      task.exited(null, "SIGKILL");
    }
    this.#tasks.clear();
  }
}

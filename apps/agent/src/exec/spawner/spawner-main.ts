/**
 * The agent's spawner process: forks task processes on the agent's behalf, so that the agent's
 * own thread never pays for a fork (its page tables, the copy-on-write faults after it) nor for a
 * move between cgroups (the kernel waits for an RCU grace period). Started by {@link Spawner}
 * with an IPC channel; it takes `spawn` requests, starts each command directly (no shell) as the
 * leader of a new process group, hands the read ends of its stdout and stderr to the agent (the
 * handles of the replies: it never reads them itself) and reports each exit.
 *
 * With cgroup containment (`CDKTR_SPAWNER_CGROUP_DIR`, the agent's subtree) it waits for each
 * spawn inside a fresh, empty cgroup, which becomes the task's: the task is in its cgroup from its
 * first instruction, and the move into the next fresh cgroup happens after the spawn, here, off
 * the agent. It replies only once it has left the task's cgroup.
 *
 * It ignores SIGINT and SIGTERM (a Ctrl-C reaches the agent's whole process group: the agent stops
 * the tasks itself) and exits when the channel closes, after going back to its first cgroup.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { ownCgroup, tryMkdir, tryRmdir } from "../cgroup-fs.js";
import { SPAWNER_CGROUP_ENV, SpawnRequestSchema, type SpawnRequest, type SpawnerReply } from "./spawner-messages.js";

const send = (reply: SpawnerReply, handle?: Socket): void => {
  process.send?.(reply, handle);
};

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Fresh task cgroups under the agent's subtree, and this process's moves between them. */
class Stager {
  /** The fresh cgroup this process waits in for its next spawn, or null. */
  #staged: string | null = null;
  #warned = false;

  constructor(
    private readonly subtree: string,
    private readonly home: string,
  ) {}

  /** The cgroup to spawn in (this process is inside it now), or null: spawn without one. */
  take(): string | null {
    const staged = this.#staged ?? this.#stage();
    this.#staged = null;
    return staged;
  }

  /** Nothing was spawned in `cgroup` (taken by {@link take}): wait in it for the next spawn. */
  keep(cgroup: string | null): void {
    if (cgroup !== null) this.#staged = cgroup;
  }

  /** Move into a fresh cgroup for the next spawn (back home when that fails). */
  restage(): void {
    this.#staged = this.#stage();
    if (this.#staged === null) this.#moveTo(this.home);
  }

  /** Back to the cgroup of origin, and the fresh one removed (the channel closed). */
  leave(): void {
    if (this.#staged === null) return;
    this.#moveTo(this.home);
    tryRmdir(this.#staged); // else the agent's next start prunes it
    this.#staged = null;
  }

  #stage(): string | null {
    const dir = join(this.subtree, `task-${randomBytes(8).toString("hex")}`);
    for (let attempt = 1; ; attempt++) {
      try {
        mkdirSync(dir);
        break;
      } catch (e: unknown) {
        // Another agent starting prunes empty agent subtrees: ours is empty until this process
        // first waits in it (as the agent's own Containment.makeTaskCgroup does: make it again).
        if ((e as { code?: unknown }).code === "ENOENT" && attempt < 3 && tryMkdir(this.subtree)) continue;
        this.#warn("cannot create a task cgroup", dir, e);
        return null;
      }
    }
    const problem = this.#moveTo(dir);
    if (problem === null) return dir;
    tryRmdir(dir); // else left for the agent's pruning
    this.#warn("cannot move into a task cgroup", dir, problem);
    return null;
  }

  #moveTo(dir: string): unknown {
    try {
      writeFileSync(join(dir, "cgroup.procs"), String(process.pid));
      return null;
    } catch (e: unknown) {
      return e;
    }
  }

  #warn(what: string, dir: string, e: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    send({
      type: "warn",
      message: `spawner: ${what}: the tasks it affects use the /proc marker`,
      detail: { cgroup: dir, error: errorText(e) },
    });
  }
}

/** The spawner's cgroup of origin (where it goes back to), when the subtree is on the mount it sees. */
function ownCgroupDir(subtree: string): string | null {
  const own = ownCgroup("/proc");
  if (typeof own === "string") return null;
  return subtree.startsWith(own.mount) ? join(own.mount, own.path) : null;
}

/**
 * The read end of a pipe the spawner must not read: `spawn` makes a socket of it that starts
 * reading at once; stopping it in the same turn (before any I/O) leaves every byte in the pipe for
 * the agent. Node gives no public way to create a child's pipe unread.
 */
function unread(socket: Socket): Socket {
  (socket as unknown as { _handle: { readStop(): number } | null })._handle?.readStop();
  return socket;
}

const subtree = process.env[SPAWNER_CGROUP_ENV] ?? "";
const home = subtree === "" ? null : ownCgroupDir(subtree);
const stager = home === null ? null : new Stager(subtree, home);

function start(req: SpawnRequest): void {
  const cgroup = stager?.take() ?? null;
  let child: ChildProcess;
  try {
    child = spawn(req.cmd, req.args, {
      cwd: req.cwd ?? undefined,
      env: req.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      shell: false,
      windowsHide: true,
    });
  } catch (e: unknown) {
    stager?.keep(cgroup);
    send({ type: "failed", id: req.id, code: errnoName(e), message: errorText(e) });
    return;
  }
  const { pid, stdout, stderr } = child;
  if (pid === undefined || stdout === null || stderr === null) {
    // The exec failed (ENOENT, EACCES...): `error` follows with the reason; nothing ran.
    stager?.keep(cgroup);
    child.once("error", (e) => send({ type: "failed", id: req.id, code: errnoName(e), message: errorText(e) }));
    return;
  }
  if (req.record !== null) recordGroup(req.record, pid);
  // The pipes are the agent's: take them from the ChildProcess (it would drain them at exit).
  child.stdio[1] = null;
  child.stdio[2] = null;
  unread(stdout as Socket);
  unread(stderr as Socket);
  // Leave the task's cgroup before the agent hears of it (it may kill that cgroup at once).
  if (cgroup !== null) stager?.restage();
  send({ type: "spawned", id: req.id, pid, cgroup }, stdout as Socket);
  send({ type: "stderr", id: req.id }, stderr as Socket);
  child.once("exit", (code, signal) => send({ type: "exit", id: req.id, code, signal }));
}

/**
 * Write the process-group record the agent's registry writes too (same file, same content; the
 * agent rewrites and fsyncs it): not fsynced here, it only has to outlive a SIGKILLed agent.
 */
function recordGroup(record: NonNullable<SpawnRequest["record"]>, pid: number): void {
  let startTicks: string | null = null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    startTicks = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    /* gone already: the record is checked against the environment too */
  }
  try {
    writeFileSync(
      join(record.dir, String(pid)),
      JSON.stringify({ pgid: pid, runId: record.runId, taskId: record.taskId, startTicks }),
    );
  } catch {
    /* the agent records it (and reports the problem) once it hears of the task */
  }
}

function errnoName(e: unknown): string | null {
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : null;
}

process.on("message", (message: unknown) => {
  const req = SpawnRequestSchema.safeParse(message);
  if (!req.success) {
    const id = (message as { id?: unknown } | null)?.id;
    const text = `spawner: malformed request: ${req.error.message}`;
    if (typeof id === "number" && Number.isInteger(id) && id >= 0)
      send({ type: "failed", id, code: null, message: text });
    else send({ type: "warn", message: text, detail: {} });
    return;
  }
  start(req.data);
});
process.on("disconnect", () => {
  stager?.leave();
  process.exit(0);
});
process.on("SIGINT", () => {});
process.on("SIGTERM", () => {});
stager?.restage();
send({ type: "ready", pid: process.pid });

/**
 * The cgroup v2 file system as the agent's {@link Containment} uses it: where the agent's own
 * cgroup is, the processes of a cgroup, and creating, pruning and removing directories.
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

/** The text of a thrown value (this module imports nothing of `@cdktr/protocol`: the spawner process loads it). */
const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Where cgroup v2 is mounted (`mount`) and the root of that mount in the hierarchy (`root`), or why not. */
export function cgroupMount(procRoot: string): { mount: string; root: string } | string {
  let mountinfo: string;
  try {
    mountinfo = readFileSync(join(procRoot, "self/mountinfo"), "utf8");
  } catch (e: unknown) {
    return `cannot read ${procRoot}/self/mountinfo: ${errorMessage(e)}`;
  }
  // mountinfo: "id parent major:minor root mountpoint options ... - fstype source superoptions"
  const line = mountinfo.split("\n").find((l) => l.split(" - ")[1]?.startsWith("cgroup2 "));
  if (line === undefined) return "no cgroup2 file system is mounted (cgroup v1 only, or none)";
  const fields = line.split(" ");
  return { mount: (fields[4] ?? "").replace(/\\040/g, " "), root: fields[3] ?? "/" };
}

/**
 * Where cgroup v2 is mounted and the agent's own cgroup path in it, or why not. Pass `mount` (from
 * {@link cgroupMount}, which does not change) to read only `/proc/self/cgroup`.
 */
export function ownCgroup(
  procRoot: string,
  mount: { mount: string; root: string } | string = cgroupMount(procRoot),
): { mount: string; path: string } | string {
  if (typeof mount === "string") return mount;
  let cgroup: string;
  try {
    cgroup = readFileSync(join(procRoot, "self/cgroup"), "utf8");
  } catch (e: unknown) {
    return `cannot read ${procRoot}/self/cgroup: ${errorMessage(e)}`;
  }
  const own = cgroup.split("\n").find((l) => l.startsWith("0::"));
  if (own === undefined) return "the agent has no cgroup v2 path in /proc/self/cgroup";
  let path = own.slice(3);
  // A bind mount of a subtree (mount root not "/"): the path is relative to that root.
  if (mount.root !== "/" && path.startsWith(mount.root)) path = path.slice(mount.root.length);
  return { mount: mount.mount, path: path === "" ? "/" : path };
}

/** The pids in the cgroup `dir` (none when it is gone). */
export function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map(Number);
  } catch {
    return [];
  }
}

/** Make `dir`; true when it exists now. */
export function tryMkdir(dir: string): boolean {
  try {
    mkdirSync(dir);
    return true;
  } catch (e: unknown) {
    return (e as { code?: unknown }).code === "EEXIST";
  }
}

/** A task cgroup empty and older than this belongs to no live attempt (one is filled at its spawn). */
const STALE_TASK_CGROUP_MS = 60_000;

/**
 * Remove the empty `cdktr-agent-*` directories next to `dir` and their empty task cgroups older
 * than a minute (agents killed, or whose data directory is gone, leave them). A cgroup with a
 * process or a child cannot be removed, so nothing in use goes; a live agent whose directory went
 * makes it again at its next task.
 */
export function pruneEmptySiblings(dir: string): void {
  const parent = dirname(dir);
  for (const name of safeReaddir(parent)) {
    const sibling = join(parent, name);
    if (!name.startsWith("cdktr-agent-") || sibling === dir) continue;
    for (const child of safeReaddir(sibling)) {
      if (!child.startsWith("task-") && !child.startsWith("probe-")) continue;
      const task = join(sibling, child);
      try {
        const empty = readFileSync(join(task, "cgroup.events"), "utf8").includes("populated 0");
        if (empty && Date.now() - statSync(task).ctimeMs > STALE_TASK_CGROUP_MS) tryRmdir(task);
      } catch {
        /* gone meanwhile */
      }
    }
    tryRmdir(sibling);
  }
}

/** The names in `dir`, or none when it cannot be read. */
function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Remove the (cgroup) directory `dir`; true when it is gone. */
export function tryRmdir(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (e: unknown) {
    return (e as { code?: unknown }).code === "ENOENT";
  }
}

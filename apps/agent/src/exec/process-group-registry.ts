/**
 * Records the process groups of running tasks in the data directory, so that an agent started
 * after a SIGKILLed one can find and kill the task processes it left behind.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage, type Logger } from "@cdktr/protocol";
import { SyncBatch } from "../data-dir/sync-batch.js";
import { writeProblem } from "../data-dir/write-problem.js";
import { killGroup, type GroupRecorder } from "./task-process.js";

/** What a `pgids/<pgid>` file holds. */
interface GroupRecord {
  pgid: number;
  runId: string;
  taskId: string;
  /** Start time of the leader in clock ticks since boot (`/proc/<pid>/stat` field 22). */
  startTicks: string | null;
}

/** A process seen in `/proc`. */
interface ProcInfo {
  pid: number;
  pgrp: number;
  startTicks: string;
}

function readProcStat(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid pgrp session ... starttime(22)"; comm may contain spaces and ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const pgrp = Number(rest[2]);
    const startTicks = rest[19];
    if (!Number.isInteger(pgrp) || startTicks === undefined) return null;
    return { pid, pgrp, startTicks };
  } catch {
    return null;
  }
}

function environHas(pid: number, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(entry);
  } catch {
    return false;
  }
}

/** Every live process whose process group is `pgid` (Linux `/proc`; empty elsewhere). */
function groupMembers(pgid: number): ProcInfo[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: ProcInfo[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProcStat(Number(name));
    if (info !== null && info.pgrp === pgid) out.push(info);
  }
  return out;
}

/**
 * One file per live task process group under `<dataDir>/pgids/`, written right after spawn and
 * removed when the group is gone. The only reader and writer of that directory: the next agent
 * process reaps what a killed one left ({@link ProcessGroupRegistry.reapOrphans}), a forced stop
 * kills every group at once ({@link ProcessGroupRegistry.killAll}). Records and the directory
 * are fsynced once per turn of the event loop (`sync`). A record that cannot be written (disk
 * full) does not stop the task: it is a {@link ProcessGroupRegistry.problem} until a later record
 * is written.
 */
export class ProcessGroupRegistry {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #sync: SyncBatch;
  #problem: string | null = null;

  constructor(dataDir: string, logger: Logger, sync?: SyncBatch) {
    this.#dir = join(dataDir, "pgids");
    this.#logger = logger;
    this.#sync = sync ?? new SyncBatch({ logger });
    this.#ensureDir();
  }

  /**
   * Why the last process group could not be recorded (disk full...), or null: a task started
   * meanwhile is not reaped if this agent process is killed.
   */
  get problem(): string | null {
    return this.#problem;
  }

  #ensureDir(): boolean {
    try {
      mkdirSync(this.#dir, { recursive: true });
      return true;
    } catch (e: unknown) {
      this.#failed(this.#dir, e);
      return false;
    }
  }

  #failed(path: string, e: unknown): void {
    this.#problem = writeProblem(
      "process-group records",
      path,
      e,
      "tasks started now are not killed by the next agent if this one is killed",
    );
  }

  /** A recorder that tags the groups it records with this run and task. */
  recorderFor(runId: string, taskId: string): GroupRecorder {
    return {
      file: { dir: this.#dir, runId, taskId },
      record: (pgid) => {
        const rec: GroupRecord = { pgid, runId, taskId, startTicks: readProcStat(pgid)?.startTicks ?? null };
        const file = join(this.#dir, String(pgid));
        const write = (): void => writeFileSync(file, JSON.stringify(rec));
        try {
          try {
            write();
          } catch (e: unknown) {
            // The directory went away (or was never made): make it and try once more.
            if ((e as { code?: unknown }).code !== "ENOENT" || !this.#ensureDir()) throw e;
            write();
          }
          this.#sync.file(file);
          this.#sync.dir(this.#dir);
          this.#problem = null;
        } catch (e: unknown) {
          // A partly written record is worse than none (the next agent skips unreadable ones anyway).
          try {
            rmSync(file, { force: true });
          } catch {
            /* nothing there to remove */
          }
          this.#ensureDir();
          this.#failed(file, e);
          this.#logger.warn("cannot record task process group", { pgid, runId, taskId, error: errorMessage(e) });
        }
      },
      release: (pgid) => {
        try {
          rmSync(join(this.#dir, String(pgid)), { force: true });
          this.#sync.dir(this.#dir);
        } catch (e: unknown) {
          this.#logger.warn("cannot remove a task process group record", { pgid, error: errorMessage(e) });
        }
      },
    };
  }

  /**
   * Send `signal` to every group recorded now, synchronously: the forced stop of a second
   * SIGINT/SIGTERM. No ownership check (after {@link reapOrphans} at start every record is a
   * group of this process); records stay until each task's own release, or the next agent
   * process's {@link reapOrphans}, removes them.
   * @returns the pgids that were signalled (groups already gone are skipped).
   */
  killAll(signal: NodeJS.Signals = "SIGKILL"): number[] {
    const signalled: number[] = [];
    let names: string[];
    try {
      names = readdirSync(this.#dir);
    } catch {
      return signalled; // no records
    }
    for (const name of names) {
      const pgid = Number(name);
      if (Number.isInteger(pgid) && pgid > 1 && killGroup(pgid, signal)) signalled.push(pgid);
    }
    return signalled;
  }

  /**
   * Kill (SIGKILL) the groups a previous agent process recorded and that still exist and are
   * still ours: the leader has the recorded start time, or a member's environment carries the
   * recorded `CDKTR_RUN_ID` and `CDKTR_TASK_ID`. Removes every record. Returns the pgids killed.
   */
  reapOrphans(): number[] {
    const killed: number[] = [];
    let names: string[];
    try {
      names = readdirSync(this.#dir);
    } catch {
      return killed;
    }
    for (const name of names) {
      const file = join(this.#dir, name);
      let rec: GroupRecord | null = null;
      try {
        rec = JSON.parse(readFileSync(file, "utf8")) as GroupRecord;
      } catch {
        rec = null;
      }
      if (rec !== null && Number.isInteger(rec.pgid) && rec.pgid > 1) {
        const members = groupMembers(rec.pgid);
        const leader = members.find((m) => m.pid === rec.pgid);
        const ours =
          (leader !== undefined && rec.startTicks !== null && leader.startTicks === rec.startTicks) ||
          members.some(
            (m) => environHas(m.pid, `CDKTR_RUN_ID=${rec.runId}`) && environHas(m.pid, `CDKTR_TASK_ID=${rec.taskId}`),
          );
        if (members.length > 0 && ours && killGroup(rec.pgid, "SIGKILL")) {
          killed.push(rec.pgid);
          this.#logger.warn("killed task processes left by a previous agent process", {
            pgid: rec.pgid,
            runId: rec.runId,
            taskId: rec.taskId,
            processes: members.length,
          });
        } else if (members.length > 0) {
          this.#logger.warn("process group recorded by a previous agent is not ours any more: left alone", {
            pgid: rec.pgid,
          });
        }
      }
      rmSync(file, { force: true });
    }
    return killed;
  }
}

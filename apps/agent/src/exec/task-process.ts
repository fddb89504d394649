/**
 * Runs one attempt of a task as a process group and reports how it ended.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { statSync } from "node:fs";
import type { Readable } from "node:stream";
import { errorMessage, type Reason } from "@cdktr/protocol";
import type { TaskContainment } from "./containment.js";
import { LineSplitter } from "./line-splitter.js";
import type { Spawner } from "./spawner/spawner.js";
import type { TaskCommand } from "./task-command.js";

/** Output stream of a task process. */
export type OutputStream = "stdout" | "stderr";

/**
 * Backpressure from the log pipeline: while `shouldPause()` is true the task's pipes are not
 * read (the task blocks on write once the pipe fills), until `whenWritable()` resolves.
 */
export interface OutputFlowControl {
  shouldPause(): boolean;
  whenWritable(): Promise<void>;
}

/** Where process-group ids are recorded while their group lives (see `ProcessGroupRegistry`). */
export interface GroupRecorder {
  record(pgid: number): void;
  release(pgid: number): void;
  /** Where a spawner process writes the same record first, right after the spawn (see `SpawnRequest.record`). */
  readonly file?: { dir: string; runId: string; taskId: string };
}

/** Options of {@link runTaskProcess}. */
export interface RunTaskProcessOptions {
  command: TaskCommand;
  /** Kill the attempt after this long (reason `timeout`); null = no limit. */
  timeoutMs: number | null;
  /** Time between SIGTERM and SIGKILL to the group on timeout or cancel. */
  killGraceMs: number;
  /** Receives every output line, in order per stream. */
  onLine(stream: OutputStream, line: string): void;
  flow?: OutputFlowControl;
  groups?: GroupRecorder;
  /**
   * Aborting kills the process group; the attempt ends with the abort reason when it is a
   * {@link Reason} (`cancelled`, `agent_shutdown`), else `cancelled`.
   */
  signal?: AbortSignal;
  /** Longest line kept in one piece. @default 65536 */
  maxLineBytes?: number;
  /**
   * Finds the task's processes that left its process group (`setsid`, double fork): signalled
   * with the group on timeout and cancel, and killed when the leader exits. Without it only the
   * group is killed.
   */
  containment?: TaskContainment;
  /**
   * Once the leader exited and every process found was killed, how long the output pipes may stay
   * open (held by a process that escaped every mechanism) before they are closed unread and the
   * attempt ends; time while the log pipeline pauses reading does not count. @default 2000
   */
  pipeDrainMs?: number;
  /**
   * The agent's spawner process, which forks the task on the agent's behalf (the agent's thread
   * then pays for neither the fork nor the cgroup move). Without it the task is spawned here.
   */
  spawner?: Spawner;
}

/** What an attempt watches of its task process: a `ChildProcess`, or a task the spawner started. */
interface TaskChild {
  readonly pid?: number | undefined;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Why the exit status is unknown (the spawner died first); absent or null when known. */
  readonly lost?: string | null;
  on(event: "error", listener: (e: Error) => void): unknown;
  on(event: "exit" | "close", listener: (code: number | null, sig: NodeJS.Signals | null) => void): unknown;
}

/** How one attempt ended. */
export type AttemptResult =
  | { ok: true; exitCode: 0 }
  | {
      ok: false;
      reason: Extract<Reason, "exit_code" | "signal" | "timeout" | "cancelled" | "agent_shutdown" | "spawn_error">;
      exitCode: number | null;
      signal: string | null;
      message: string;
      pid: number | null;
    };

function abortReason(signal: AbortSignal): "cancelled" | "agent_shutdown" {
  return signal.reason === "agent_shutdown" ? "agent_shutdown" : "cancelled";
}

/** Send `sig` to every process of group `pgid`; false when the group is gone. */
export function killGroup(pgid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Spawn the command directly (no shell) as the leader of a new process group, read stdout and
 * stderr concurrently line by line, and resolve when the process exited and both pipes closed.
 * Never rejects: spawn failures resolve with reason `spawn_error` and a message naming the
 * command. Whatever happens, the group and every process the containment finds are killed
 * before this resolves (no stragglers); a pipe still held open `pipeDrainMs` after that (by a
 * process out of reach) is closed unread, so a timeout or cancel always ends the attempt.
 */
export function runTaskProcess(options: RunTaskProcessOptions): Promise<AttemptResult> {
  const { command, signal } = options;
  if (signal?.aborted === true) {
    options.containment?.release();
    const reason = abortReason(signal);
    return Promise.resolve({
      ok: false,
      reason,
      exitCode: null,
      signal: null,
      message: `${reason} before start`,
      pid: null,
    });
  }
  if (command.cwd !== null) {
    let isDir = false;
    try {
      isDir = statSync(command.cwd).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) {
      options.containment?.release();
      return Promise.resolve({
        ok: false,
        reason: "spawn_error",
        exitCode: null,
        signal: null,
        message: `cannot start \`${command.cmd}\`: working directory ${command.cwd} does not exist or is not a directory`,
        pid: null,
      });
    }
  }

  const jail = options.containment;
  const env = jail === undefined ? command.env : { ...command.env, ...jail.env };
  if (options.spawner !== undefined) {
    const record = options.groups?.file ?? null;
    const spawner = options.spawner;
    return new Promise<AttemptResult>((resolve) => {
      spawner.spawn({ cmd: command.cmd, args: command.args, cwd: command.cwd, env, record }, (r) => {
        if (!r.ok) {
          jail?.release();
          resolve(spawnFailure(command.cmd, { code: r.code ?? undefined, message: r.message }));
          return;
        }
        jail?.spawnedIn(r.task.cgroup);
        // In the turn of the reply: the task's exit may follow in the same turn.
        watchTask(r.task, options, resolve);
      });
    });
  }
  return new Promise<AttemptResult>((resolve) => {
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      const start = (): ChildProcessByStdio<null, Readable, Readable> =>
        spawn(command.cmd, command.args, {
          cwd: command.cwd ?? undefined,
          env,
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
          shell: false,
          windowsHide: true,
        });
      child = jail === undefined ? start() : jail.spawnInside(start);
    } catch (e: unknown) {
      jail?.release();
      resolve(spawnFailure(command.cmd, e));
      return;
    }
    watchTask(child, options, resolve);
  });
}

/**
 * Read the task's pipes line by line, enforce its timeout and abort, and resolve with how it
 * ended once it exited and both pipes closed (see {@link runTaskProcess}).
 */
function watchTask(child: TaskChild, options: RunTaskProcessOptions, resolve: (r: AttemptResult) => void): void {
  const { command, signal } = options;
  const jail = options.containment;
  const pid = child.pid;
  if (pid !== undefined) options.groups?.record(pid);

  let settled = false;
  let terminating: "timeout" | "cancelled" | "agent_shutdown" | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let spawnError: unknown;
  /** The group had no process left when the leader exited (its id may be reused from then on). */
  let groupGone = false;
  /** How the leader exited, once it did. */
  let exited: { code: number | null; sig: NodeJS.Signals | null } | null = null;
  let drainTimer: NodeJS.Timeout | undefined;
  const pipeDrainMs = options.pipeDrainMs ?? 2000;
  const streams: { stream: Readable; close(): void }[] = [];

  const terminate = (why: "timeout" | "cancelled" | "agent_shutdown"): void => {
    if (terminating !== null || pid === undefined) return;
    terminating = why;
    killGroup(pid, "SIGTERM");
    void jail?.signal("SIGTERM");
    killTimer = setTimeout(() => {
      killGroup(pid, "SIGKILL");
      void jail?.signal("SIGKILL");
    }, options.killGraceMs);
    killTimer.unref();
  };
  /**
   * The leader exited and everything found was killed: if the pipes are still open after
   * `pipeDrainMs` (not counting time paused by the log pipeline), a process out of reach holds
   * them: stop reading and end the attempt.
   */
  const armDrain = (): void => {
    drainTimer = setTimeout(() => {
      if (settled) return;
      if (streams.some((s) => s.stream.isPaused() && !s.stream.destroyed)) return armDrain();
      options.onLine(
        "stderr",
        `[cdktr] output pipes still open ${pipeDrainMs} ms after the task's processes were killed: held by a process out of the agent's reach; stopped reading`,
      );
      for (const s of streams) s.close();
      if (exited !== null) settle(exited.code, exited.sig);
    }, pipeDrainMs);
    drainTimer.unref();
  };
  const onAbort = (): void => {
    if (signal !== undefined) terminate(abortReason(signal));
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  // Aborted while the spawner was starting it.
  if (signal?.aborted === true) onAbort();
  if (options.timeoutMs !== null && pid !== undefined) {
    timeoutTimer = setTimeout(() => terminate("timeout"), options.timeoutMs);
  }

  const readLines = (stream: Readable, name: OutputStream): void => {
    const splitter = new LineSplitter(options.maxLineBytes === undefined ? {} : { maxLineBytes: options.maxLineBytes });
    stream.on("data", (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) options.onLine(name, line);
      const flow = options.flow;
      if (flow?.shouldPause() && !stream.isPaused()) {
        stream.pause();
        void flow.whenWritable().then(() => stream.resume());
      }
    });
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      for (const line of splitter.end()) options.onLine(name, line);
    };
    stream.on("end", end);
    stream.on("error", () => {
      /* the pipe broke: close/exit still report the outcome */
    });
    streams.push({
      stream,
      close: () => {
        end();
        stream.destroy();
      },
    });
  };
  readLines(child.stdout, "stdout");
  readLines(child.stderr, "stderr");

  const finish = (result: AttemptResult): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timeoutTimer);
    clearTimeout(killTimer);
    clearTimeout(drainTimer);
    signal?.removeEventListener("abort", onAbort);
    if (pid !== undefined) {
      if (!groupGone) killGroup(pid, "SIGKILL");
      options.groups?.release(pid);
    }
    jail?.release();
    resolve(result);
  };

  child.on("error", (e) => {
    spawnError = e;
    if (pid === undefined) finish(spawnFailure(command.cmd, e));
  });
  child.on("exit", (code, sig) => {
    exited = { code, sig };
    // The leader is gone: kill what it left, in its group and outside, so the pipes can close.
    if (pid !== undefined && !killGroup(pid, "SIGKILL")) groupGone = true;
    void jail?.signal("SIGKILL");
    clearTimeout(timeoutTimer);
    if (pid !== undefined) armDrain();
  });
  child.on("close", (code, sig) => {
    if (spawnError !== undefined && pid === undefined) return finish(spawnFailure(command.cmd, spawnError));
    settle(code, sig);
  });
  function settle(code: number | null, sig: NodeJS.Signals | null): void {
    const p = pid ?? null;
    if (terminating === "timeout") {
      finish({
        ok: false,
        reason: "timeout",
        exitCode: code,
        signal: sig,
        message: `timed out after ${options.timeoutMs ?? 0} ms`,
        pid: p,
      });
    } else if (terminating !== null) {
      finish({
        ok: false,
        reason: terminating,
        exitCode: code,
        signal: sig,
        message: terminating === "cancelled" ? "cancelled" : "stopped because the agent is shutting down",
        pid: p,
      });
    } else if (code === 0) {
      finish({ ok: true, exitCode: 0 });
    } else if (code !== null) {
      finish({
        ok: false,
        reason: "exit_code",
        exitCode: code,
        signal: null,
        message: `exited with code ${code}`,
        pid: p,
      });
    } else {
      finish({
        ok: false,
        reason: "signal",
        exitCode: null,
        signal: sig,
        message: child.lost ?? `killed by ${sig ?? "a signal"}`,
        pid: p,
      });
    }
  }
}

function spawnFailure(cmd: string, e: unknown): AttemptResult {
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined;
  let message: string;
  if (code === "ENOENT") message = `command not found: \`${cmd}\` (no such file, or not on PATH)`;
  else if (code === "EACCES") message = `cannot execute \`${cmd}\`: permission denied`;
  else message = `cannot start \`${cmd}\`: ${errorMessage(e)}`;
  return { ok: false, reason: "spawn_error", exitCode: null, signal: null, message, pid: null };
}

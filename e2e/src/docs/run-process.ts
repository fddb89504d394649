/** Run a documentation example as a child process to its end, bounded in time. */
import { spawn } from "node:child_process";

/** How a process ended. */
export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
  /** True when it was killed for running longer than `timeoutMs`. */
  timedOut: boolean;
}

/** Options of {@link runToEnd}. */
export interface RunOptions {
  /** The whole environment of the child (nothing is inherited but what is given). */
  env: Record<string, string>;
  cwd?: string;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** SIGKILL the process group after this long. @default 60000 */
  timeoutMs?: number;
}

/** Spawn `cmd args` in its own process group and resolve when it exits (or is killed at the timeout). */
export function runToEnd(cmd: string, args: string[], options: RunOptions): Promise<Finished> {
  const started = Date.now();
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  let timedOut = false;
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.stdin.end(options.input ?? "");
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }, options.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

/** `PATH` for children: the test's own, so that `node`, `echo` and `python3` resolve as usual. */
export function basePath(): string {
  return process.env.PATH ?? "/usr/bin:/bin";
}

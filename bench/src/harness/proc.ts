/**
 * Child processes of a benchmark through the fixture's `spawnService`: started in their own
 * process group, stdout read line by line (JSON log records parsed, each line timed), `ready`
 * awaited, and every one of them killed on exit; plus their memory from /proc.
 */
import { readFileSync } from "node:fs";
import { killAllServices, killAllServicesSync, spawnService, type ServiceHandle } from "@cdktr/test-utils";

/** A parsed JSON log record, or undefined for a non-JSON line. */
export type LogRecord = Record<string, unknown>;

/** Options of {@link startProcess}. */
export interface StartOptions {
  name: string;
  /** The node script, then its arguments. */
  args: string[];
  /** Merged over this process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Wait for a JSON line whose `message` is `ready`. @default true */
  waitReady?: boolean;
  /** @default 60000 */
  readyTimeoutMs?: number;
  /** Called for every stdout/stderr line (after JSON parsing when possible). */
  onLine?: (line: string, json: LogRecord | undefined, at: number) => void;
  /** Keep at most this many recent lines for error messages. @default 200 */
  keepLines?: number;
  /** Node flags placed before the script (e.g. `--cpu-prof`). */
  nodeFlags?: string[];
}

/** A running child process with its memory figures. */
export interface Proc extends ServiceHandle {
  /** Resident set size in bytes from /proc (0 if gone). */
  rss(): number;
  /** Peak resident set size (VmHWM) in bytes from /proc (0 if gone). */
  peakRss(): number;
}

function procStatusBytes(pid: number, field: string): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m?.[1] !== undefined ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Add the /proc memory readings to a service handle. */
export function withMemory(handle: ServiceHandle): Proc {
  return Object.assign(handle, {
    rss: () => procStatusBytes(handle.pid, "VmRSS"),
    peakRss: () => procStatusBytes(handle.pid, "VmHWM"),
  });
}

/** Start a node script and (by default) wait for its `ready` line. Throws with its output tail if it dies or times out. */
export async function startProcess(opts: StartOptions): Promise<Proc> {
  const [script = "", ...args] = opts.args;
  const handle = await spawnService({
    script,
    args,
    name: opts.name,
    inheritEnv: true,
    keepLines: opts.keepLines ?? 200,
    readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
    ...(opts.env === undefined ? {} : { env: opts.env }),
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    ...(opts.waitReady === undefined ? {} : { waitReady: opts.waitReady }),
    ...(opts.onLine === undefined ? {} : { onLine: opts.onLine }),
    ...(opts.nodeFlags === undefined ? {} : { nodeFlags: opts.nodeFlags }),
  });
  return withMemory(handle);
}

/** Kill every process still running (used between scenarios and at exit). */
export function stopAll(): Promise<void> {
  return killAllServices();
}

/** Synchronous last-resort cleanup for `process.on("exit")`. */
export function killAllSync(): void {
  killAllServicesSync();
}

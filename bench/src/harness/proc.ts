/**
 * Child processes of a benchmark: started in their own process group, stdout read line by line
 * (JSON log records parsed), `ready` awaited, and every one of them killed on exit.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { nowMs } from "./stats.js";

/** A parsed JSON log record, or undefined for a non-JSON line. */
export type LogRecord = Record<string, unknown>;

/** Options of {@link startProcess}. */
export interface StartOptions {
  name: string;
  /** Executable; defaults to this node. */
  command?: string;
  args: string[];
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

/** A running child process. */
export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Epoch ms (sub-ms) when spawn was called. */
  readonly spawnedAt: number;
  /** Epoch ms when the ready line arrived (NaN if not awaited). */
  readyAt: number;
  readonly ready: LogRecord;
  /** Most recent output lines. */
  readonly tail: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resident set size in bytes from /proc (0 if gone). */
  rss(): number;
  /** Peak resident set size (VmHWM) in bytes from /proc (0 if gone). */
  peakRss(): number;
  /** SIGTERM (or `signal`), then SIGKILL of the group after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

const live = new Set<Proc>();

function parseJson(line: string): LogRecord | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null ? (v as LogRecord) : undefined;
  } catch {
    return undefined;
  }
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

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Start a process and (by default) wait for its `ready` line. Throws with its output tail if it dies or times out. */
export async function startProcess(opts: StartOptions): Promise<Proc> {
  const command = opts.command ?? process.execPath;
  const args = opts.command === undefined ? [...(opts.nodeFlags ?? []), ...opts.args] : opts.args;
  const spawnedAt = nowMs();
  const child = spawn(command, args, {
    cwd: opts.cwd ?? process.cwd(),
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${opts.name}: failed to spawn ${command}`);
  const keep = opts.keepLines ?? 200;
  const tail: string[] = [];
  let readyResolve: ((r: LogRecord) => void) | undefined;
  const readyPromise = new Promise<LogRecord>((resolve) => {
    readyResolve = resolve;
  });
  const onLine = (line: string): void => {
    const at = nowMs();
    tail.push(line);
    if (tail.length > keep) tail.shift();
    // Parse only what is needed: services log a line per run at the default level.
    const json = opts.onLine !== undefined || line.includes('"ready"') ? parseJson(line) : undefined;
    if (json !== undefined && json.message === "ready") readyResolve?.(json);
    opts.onLine?.(line, json, at);
  };
  if (child.stdout) createInterface({ input: child.stdout, crlfDelay: Infinity }).on("line", onLine);
  if (child.stderr) createInterface({ input: child.stderr, crlfDelay: Infinity }).on("line", onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  const ready: LogRecord = {};
  const proc: Proc = {
    name: opts.name,
    child,
    pid,
    spawnedAt,
    readyAt: Number.NaN,
    ready,
    tail,
    exited,
    rss: () => procStatusBytes(pid, "VmRSS"),
    peakRss: () => procStatusBytes(pid, "VmHWM"),
    async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) {
        killGroup(pid, "SIGKILL");
        live.delete(proc);
        return;
      }
      killGroup(pid, signal);
      const timer = setTimeout(() => killGroup(pid, "SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
      killGroup(pid, "SIGKILL"); // leftovers of the group (task processes)
      live.delete(proc);
    },
  };
  live.add(proc);
  if (opts.waitReady === false) return proc;
  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    readyPromise.then((r) => ({ kind: "ready" as const, r })),
    exited.then((e) => ({ kind: "exit" as const, e })),
    new Promise<{ kind: "timeout" }>((resolve) => {
      timer = setTimeout(() => resolve({ kind: "timeout" }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (outcome.kind !== "ready") {
    await proc.stop("SIGKILL", 1000);
    const why =
      outcome.kind === "exit" ? `exited (${outcome.e.code ?? outcome.e.signal})` : `no ready line in ${timeoutMs} ms`;
    throw new Error(`${opts.name} ${why}; last output:\n${tail.slice(-15).join("\n")}`);
  }
  Object.assign(ready, outcome.r);
  proc.readyAt = nowMs();
  return proc;
}

/** Kill every process still running (used between scenarios and at exit). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop("SIGKILL", 2000)));
}

/** Synchronous last-resort cleanup for `process.on("exit")`. */
export function killAllSync(): void {
  for (const p of live) killGroup(p.pid, "SIGKILL");
  live.clear();
}

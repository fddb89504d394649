/**
 * Start a built cdktr app (or any node script) as a real process in its own process group, read
 * its output line by line, wait for its structured `ready` line, and kill it (with its whole
 * group) on stop or at clean-up, even when the test failed half-way.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** Called for every stdout/stderr line of a service: the parsed JSON record when it is one, and when it arrived. */
export type LineListener = (line: string, json: Record<string, unknown> | undefined, atMs: number) => void;

/** How a service process ended. */
export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Options of {@link spawnService}. */
export interface SpawnServiceOptions {
  /** Path of the node script to run, e.g. the app entry point that `appMain("principal")` resolves. */
  script: string;
  args?: string[];
  /**
   * Merged over a minimal environment (PATH, HOME from `env` or the parent), or over the whole
   * parent environment with `inheritEnv`.
   */
  env?: Record<string, string>;
  /** Start from a copy of this process's environment instead of PATH and HOME only. @default false */
  inheritEnv?: boolean;
  /** Node flags placed before the script (e.g. `--cpu-prof`). */
  nodeFlags?: string[];
  cwd?: string;
  /** Name used in messages. */
  name?: string;
  /** How long to wait for the `ready` line. @default 20000 */
  readyTimeoutMs?: number;
  /** Set false to return without waiting for `ready`. @default true */
  waitReady?: boolean;
  /** Called for every output line, with its arrival time (epoch ms, sub-ms resolution). */
  onLine?: LineListener;
  /** Keep only this many recent lines in {@link ServiceHandle.lines} (long benchmarks). @default all */
  keepLines?: number;
}

/** A running service process started by {@link spawnService}. */
export interface ServiceHandle {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every stdout/stderr line so far (the most recent `keepLines` when that is set). */
  readonly lines: string[];
  /** The parsed `ready` log record (empty object if not waited for). */
  readonly ready: Record<string, unknown>;
  /** When `spawn` was called (epoch ms, sub-ms resolution). */
  readonly spawnedAt: number;
  /** When the `ready` line arrived (epoch ms, sub-ms resolution); NaN when not waited for. */
  readonly readyAt: number;
  /**
   * Resolves with the first line (parsed JSON when possible) matching `pred`, looking at the
   * lines already received first.
   * @throws Error with the last output lines when the time is up or the process exits first.
   */
  waitForLine(
    pred: (line: string, json: Record<string, unknown> | undefined) => boolean,
    timeoutMs?: number,
  ): Promise<string>;
  /** Send `signal` (default SIGTERM), SIGKILL the group after `timeoutMs`, resolve with the exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ServiceExit>;
  /** SIGKILL the whole process group now. */
  kill(): Promise<void>;
  readonly exited: Promise<ServiceExit>;
}

const live = new Set<ServiceHandle>();

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

const nowMs = (): number => performance.timeOrigin + performance.now();

/**
 * Start a node script as a real process in its own process group and (by default) wait for its
 * structured `ready` line (a JSON log record whose `message` is `ready`).
 * @throws Error with the last output lines when the process exits or stays silent before `ready`.
 */
export async function spawnService(options: SpawnServiceOptions): Promise<ServiceHandle> {
  const name = options.name ?? options.script;
  const base: Record<string, string | undefined> =
    options.inheritEnv === true
      ? { ...process.env }
      : { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" };
  const spawnedAt = nowMs();
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), options.script, ...(options.args ?? [])], {
    cwd: options.cwd ?? process.cwd(),
    env: { ...base, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: failed to spawn ${options.script}`);
  const lines: string[] = [];
  const keep = options.keepLines ?? Number.POSITIVE_INFINITY;
  const waiters: {
    pred: (l: string, j: Record<string, unknown> | undefined) => boolean;
    resolve: (l: string) => void;
  }[] = [];
  const onLine = (line: string): void => {
    const at = nowMs();
    lines.push(line);
    if (lines.length > keep) lines.shift();
    if (process.env.CDKTR_TEST_VERBOSE) process.stderr.write(`[${name}] ${line}\n`);
    // Parse only when someone looks: a busy service logs a line per run.
    const json = waiters.length > 0 || options.onLine !== undefined ? parseJson(line) : undefined;
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (w?.pred(line, json)) {
        waiters.splice(i, 1);
        w.resolve(line);
      }
    }
    options.onLine?.(line, json, at);
  };
  if (child.stdout) createInterface({ input: child.stdout, crlfDelay: Infinity }).on("line", onLine);
  if (child.stderr) createInterface({ input: child.stderr, crlfDelay: Infinity }).on("line", onLine);
  const exited = new Promise<ServiceExit>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });

  const waitForLine = (
    pred: (l: string, j: Record<string, unknown> | undefined) => boolean,
    timeoutMs = 20_000,
  ): Promise<string> => {
    for (const l of lines) if (pred(l, parseJson(l))) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${name}: no matching line within ${timeoutMs} ms. Output:\n${lines.slice(-40).join("\n")}`));
      }, timeoutMs);
      waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(
          new Error(
            `${name}: exited (code ${code}, signal ${signal}) before a matching line. Output:\n${lines.slice(-40).join("\n")}`,
          ),
        );
      });
    });
  };

  let ready: Record<string, unknown> = {};
  let readyAt = Number.NaN;
  const handle: ServiceHandle = {
    name,
    child,
    pid,
    lines,
    spawnedAt,
    get ready() {
      return ready;
    },
    get readyAt() {
      return readyAt;
    },
    waitForLine,
    exited,
    async stop(signal = "SIGTERM", timeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => killGroup(pid, "SIGKILL"), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      killGroup(pid, "SIGKILL"); // leftovers of the group (task processes)
      live.delete(handle);
      return result;
    },
    async kill() {
      killGroup(pid, "SIGKILL");
      await exited;
      live.delete(handle);
    },
  };
  live.add(handle);
  if (options.waitReady !== false) {
    try {
      const line = await waitForLine((_l, j) => j?.message === "ready", options.readyTimeoutMs ?? 20_000);
      readyAt = nowMs();
      ready = parseJson(line) ?? {};
    } catch (e) {
      await handle.kill();
      throw e;
    }
  }
  return handle;
}

/** SIGKILL every service (and its process group) still running; call it in `afterEach`. */
export async function killAllServices(): Promise<void> {
  await Promise.all([...live].map((h) => h.kill()));
}

/** Synchronous last resort for `process.on("exit")`: SIGKILL every service group still running. */
export function killAllServicesSync(): void {
  for (const h of live) killGroup(h.pid, "SIGKILL");
  live.clear();
}

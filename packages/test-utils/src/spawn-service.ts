import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** Options of {@link spawnService}. */
export interface SpawnServiceOptions {
  /** Path of the built entry point, e.g. `apps/principal/dist/main.js`. */
  script: string;
  args?: string[];
  /** Merged over a minimal environment (PATH, HOME from `env` or the parent). */
  env?: Record<string, string>;
  cwd?: string;
  /** Name used in messages. */
  name?: string;
  /** How long to wait for the `ready` line. @default 20000 */
  readyTimeoutMs?: number;
  /** Set false to return without waiting for `ready`. @default true */
  waitReady?: boolean;
}

/** A running service process started by {@link spawnService}. */
export interface ServiceHandle {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every stdout/stderr line so far. */
  readonly lines: string[];
  /** The parsed `ready` log record (empty object if not waited for). */
  readonly ready: Record<string, unknown>;
  /** Resolves with the first line (parsed JSON when possible) matching `pred`. */
  waitForLine(
    pred: (line: string, json: Record<string, unknown> | undefined) => boolean,
    timeoutMs?: number,
  ): Promise<string>;
  /** Send `signal` (default SIGTERM) and resolve with the exit code / signal. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL the whole process group now. */
  kill(): Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
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

/**
 * Start a built cdktr app as a real process in its own process group and wait for its
 * structured `ready` line (a JSON log record whose `message` is `ready`).
 */
export async function spawnService(options: SpawnServiceOptions): Promise<ServiceHandle> {
  const name = options.name ?? options.script;
  const child = spawn(process.execPath, [options.script, ...(options.args ?? [])], {
    cwd: options.cwd ?? process.cwd(),
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: failed to spawn ${options.script}`);
  const lines: string[] = [];
  const waiters: {
    pred: (l: string, j: Record<string, unknown> | undefined) => boolean;
    resolve: (l: string) => void;
  }[] = [];
  const onLine = (line: string): void => {
    lines.push(line);
    if (process.env.CDKTR_TEST_VERBOSE) process.stderr.write(`[${name}] ${line}\n`);
    const json = parseJson(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (w?.pred(line, json)) {
        waiters.splice(i, 1);
        w.resolve(line);
      }
    }
  };
  if (child.stdout) createInterface({ input: child.stdout }).on("line", onLine);
  if (child.stderr) createInterface({ input: child.stderr }).on("line", onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
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

  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pid, signal);
    } catch {
      /* already gone */
    }
  };

  let ready: Record<string, unknown> = {};
  const handle: ServiceHandle = {
    name,
    child,
    pid,
    lines,
    get ready() {
      return ready;
    },
    waitForLine,
    exited,
    async stop(signal = "SIGTERM", timeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => killGroup("SIGKILL"), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      killGroup("SIGKILL");
      live.delete(handle);
      return result;
    },
    async kill() {
      killGroup("SIGKILL");
      await exited;
      live.delete(handle);
    },
  };
  live.add(handle);
  if (options.waitReady !== false) {
    try {
      const line = await waitForLine((_l, j) => j?.message === "ready", options.readyTimeoutMs ?? 20_000);
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

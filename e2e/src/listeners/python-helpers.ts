/**
 * Running the Python client (`clients/python`, package `cdktr` on pyzmq) from the e2e suites:
 * scripts run with /usr/bin/python3 exactly as a user would write them and report what they saw
 * as JSON on stdout.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTempDir } from "@cdktr/test-utils";

export const PYTHON = "/usr/bin/python3";
/** The Python client of the repository (not a workspace: e2e/dist/listeners -> clients/python). */
export const CLIENT_DIR = fileURLToPath(new URL("../../../clients/python", import.meta.url));

/** A skip message when Python is missing; with `CI` set that is a failure instead. */
export function skipReason(): string | undefined {
  if (existsSync(PYTHON)) return undefined;
  const msg = `${PYTHON} is missing (install python3 and python3-zmq)`;
  if (process.env.CI !== undefined && process.env.CI !== "") throw new Error(`${msg}; CI is set: Python is required`);
  return msg;
}

/**
 * Run a Python script; resolve with its stdout parsed as JSON. Its HOME is a fresh temp directory
 * (no keys) unless `env` sets one: pass the principal's `home` for its local keys.
 */
export function python(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const dir = makeTempDir("cdktr-py-");
  const file = join(dir, "script.py");
  writeFileSync(file, script);
  return new Promise((resolve, reject) => {
    execFile(
      PYTHON,
      [file, ...args],
      {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: dir,
          PYTHONPATH: CLIENT_DIR,
          PYTHONDONTWRITEBYTECODE: "1",
          ...env,
        },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        if (err !== null) {
          reject(new Error(`python failed: ${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout.trim().split("\n").pop() ?? "") as Record<string, unknown>);
        } catch {
          reject(new Error(`python printed no JSON: ${stdout}\nstderr: ${stderr}`));
        }
      },
    );
  });
}

/** How a process ended: exit code (null when killed), output, and how long it took. */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Run `file` with `args` (no shell) and resolve when it ends, whatever its exit code. `env` is the
 * whole environment beyond PATH; a process still running after `timeoutMs` is killed (code null).
 */
export function runProcess(
  file: string,
  args: readonly string[],
  env: Record<string, string>,
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<Finished> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      cwd: options.cwd ?? makeTempDir("cdktr-py-cwd-"),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** The Debian packages the wheel build and the venv need, by the module each provides. */
const PACKAGE_MODULES = {
  zmq: "python3-zmq",
  build: "python3-build",
  setuptools: "python3-setuptools",
  wheel: "python3-wheel",
  ensurepip: "python3-venv",
} as const;

/**
 * A skip message when Python or a module the wheel build and the venv need is missing (naming
 * the Debian packages to install); with `CI` set that is a failure instead.
 */
export function packageSkipReason(): string | undefined {
  const missing = existsSync(PYTHON)
    ? Object.entries(PACKAGE_MODULES)
        .filter(([module]) => spawnSync(PYTHON, ["-c", `import ${module}`]).status !== 0)
        .map(([, pkg]) => pkg)
    : ["python3", ...Object.values(PACKAGE_MODULES)];
  if (missing.length === 0) return undefined;
  const msg = `the Python wheel tests need ${missing.join(", ")} (apt-get install -y ${missing.join(" ")})`;
  if (process.env.CI !== undefined && process.env.CI !== "") throw new Error(`${msg}; CI is set: they are required`);
  return msg;
}

/** Environment of Python processes that must use the installed package only (no PYTHONPATH). */
export function isolatedEnv(env: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: makeTempDir("cdktr-py-home-"),
    PYTHONDONTWRITEBYTECODE: "1",
    PYTHONNOUSERSITE: "1",
    // pip reads nothing of this machine's configuration (find-links, index URLs)
    PIP_CONFIG_FILE: "/dev/null",
    PIP_DISABLE_PIP_VERSION_CHECK: "1",
    PIP_NO_INPUT: "1",
    ...env,
  };
}

/** `clients/python/build-wheel.sh`: build the wheel into `outDir`; resolves with its path. */
export async function buildWheel(outDir: string): Promise<string> {
  const r = await runProcess("bash", [join(CLIENT_DIR, "build-wheel.sh"), outDir], isolatedEnv(), {
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`build-wheel.sh failed (exit ${String(r.code)}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim().split("\n").pop() ?? "";
}

/** A virtual environment with the wheel installed. */
export interface Venv {
  dir: string;
  /** Its python interpreter. */
  python: string;
  /** Run its python with `args` (the installed package only: no PYTHONPATH, a fresh HOME unless `env` sets one). */
  run(args: readonly string[], env?: Record<string, string>, options?: { timeoutMs?: number }): Promise<Finished>;
}

/**
 * A venv made with `python3 -m venv --system-site-packages` (Debian's python3-zmq stays visible)
 * in a temp dir, with `wheel` installed by `pip install --no-index --no-deps`.
 */
export async function installInVenv(wheel: string): Promise<Venv> {
  const dir = join(makeTempDir("cdktr-py-venv-"), "venv");
  const made = await runProcess(PYTHON, ["-m", "venv", "--system-site-packages", dir], isolatedEnv(), {
    timeoutMs: 120_000,
  });
  if (made.code !== 0) throw new Error(`python3 -m venv failed:\n${made.stdout}\n${made.stderr}`);
  const python = join(dir, "bin", "python");
  const installed = await runProcess(
    python,
    ["-m", "pip", "install", "--no-index", "--no-deps", wheel],
    isolatedEnv(),
    { timeoutMs: 120_000 },
  );
  if (installed.code !== 0) throw new Error(`pip install failed:\n${installed.stdout}\n${installed.stderr}`);
  return {
    dir,
    python,
    run: (args, env = {}, options = {}) => runProcess(python, args, isolatedEnv(env), options),
  };
}

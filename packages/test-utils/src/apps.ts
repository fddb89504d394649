/**
 * Where the built apps are. This package declares none of them (a package never depends on an
 * app): each entry point is resolved at run time by package name, from the workspace of the test
 * that asks, which declares the apps it starts, so `turbo` has built them.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CodedError } from "@cdktr/protocol";
import type { SpawnServiceOptions } from "@cdktr/test-base";

/** The apps a test can start as processes. */
export type AppName = "principal" | "agent" | "scheduler" | "listeners" | "dashboard";

/** Process options a fixture passes through to `spawnService` (benchmarks profile and time processes with them). */
export type ServiceTuning = Pick<SpawnServiceOptions, "nodeFlags" | "onLine" | "keepLines" | "readyTimeoutMs">;

/** An app or the `cdktr` bin cannot be found: not declared by the test's workspace, or not built. */
export class AppNotBuiltError extends CodedError<"APP_NOT_BUILT"> {}

function resolveBuilt(pkg: string): string {
  const spec = `${pkg}/main`;
  let path: string;
  try {
    path = fileURLToPath(import.meta.resolve(spec));
  } catch (e) {
    throw new AppNotBuiltError(
      "APP_NOT_BUILT",
      `cannot resolve ${spec}: declare ${pkg} in the package.json of the test's workspace and run \`npm install\``,
      { cause: e, context: { pkg } },
    );
  }
  if (!existsSync(path))
    throw new AppNotBuiltError(
      "APP_NOT_BUILT",
      `${path} is missing: build it first (\`npx turbo run build --filter=${pkg}\`)`,
      { context: { pkg, path } },
    );
  return path;
}

/**
 * Path of the built entry point of `@cdktr/<app>` (its `./main` export, `dist/main.js`).
 * @throws AppNotBuiltError when the package does not resolve or has not been built.
 */
export function appMain(app: AppName): string {
  return resolveBuilt(`@cdktr/${app}`);
}

/**
 * Path of the `cdktr` executable shim of `@cdktr/cli` (its package.json `bin`), the file a user
 * runs.
 * @throws AppNotBuiltError when `@cdktr/cli` does not resolve, is not built or declares no bin.
 */
export function cliBin(): string {
  let dir = dirname(resolveBuilt("@cdktr/cli"));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { bin?: Record<string, string> };
  const bin = pkg.bin?.cdktr;
  if (bin === undefined)
    throw new AppNotBuiltError("APP_NOT_BUILT", `${dir}/package.json declares no \`cdktr\` bin`, { context: { dir } });
  return join(dir, bin);
}

/** Result of one {@link runCli} invocation. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link runCli}. */
export interface RunCliOptions {
  /** Merged over PATH and HOME of this process. */
  env?: Record<string, string>;
  cwd?: string;
  /** The process group is SIGKILLed after this long. @default 60000 */
  timeoutMs?: number;
}

/** Run `cdktr ...args` (the real bin) as a process in its own process group; resolves when it closes. */
export function runCli(args: readonly string[], options: RunCliOptions = {}): Promise<CliResult> {
  const bin = cliBin();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? process.cwd(),
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }, options.timeoutMs ?? 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

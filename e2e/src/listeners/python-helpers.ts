/**
 * Running the Python client (`clients/python`, package `cdktr` on pyzmq) from the e2e suites:
 * scripts run with /usr/bin/python3 exactly as a user would write them and report what they saw
 * as JSON on stdout.
 */
import { execFile } from "node:child_process";
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

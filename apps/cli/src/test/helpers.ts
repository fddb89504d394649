/**
 * Helpers of the CLI's multi-process tests: run the real `cdktr` bin, start a real principal.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GetRunReplySchema, LogLineSchema } from "@cdktr/protocol";
import { freePorts, makeTempDir, spawnService, type ServiceHandle } from "@cdktr/test-utils";

/** The committed executable shim. */
export const BIN = fileURLToPath(new URL("../../bin/cdktr.js", import.meta.url));
/** Repository root. */
export const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
/** The example workflows. */
export const EXAMPLES = join(REPO, "examples", "workflows");

/** Built entry point of an app, resolved the way `cdktr start` resolves it. */
export function appMain(app: "principal" | "agent" | "scheduler" | "listeners"): string {
  return fileURLToPath(new URL("./main.js", import.meta.resolve(`@cdktr/${app}`)));
}

/** Result of one CLI invocation. */
export interface BinResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `cdktr ...args` as a real process (own process group, killed at `timeoutMs`). */
export function runBin(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<BinResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
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

/** Ports and directories of one local cdktr installation. */
export interface Sandbox {
  dir: string;
  workflowDir: string;
  ports: { api: number; logs: number; publish: number };
  /** The environment every process of this sandbox gets. */
  env: Record<string, string>;
}

/** A temp HOME with a copy of the example workflows and free ports. */
export async function makeSandbox(extraWorkflows: Record<string, string> = {}): Promise<Sandbox> {
  const dir = makeTempDir("cdktr-cli-");
  const workflowDir = join(dir, "workflows");
  mkdirSync(workflowDir, { recursive: true });
  cpSync(EXAMPLES, workflowDir, { recursive: true });
  for (const [name, text] of Object.entries(extraWorkflows)) {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(workflowDir, name), text);
  }
  const [api, logs, publish] = await freePorts(3);
  if (api === undefined || logs === undefined || publish === undefined) throw new Error("no ports");
  const env: Record<string, string> = {
    HOME: dir,
    CDKTR_PRINCIPAL_HOST: "127.0.0.1",
    CDKTR_PRINCIPAL_PORT: String(api),
    CDKTR_LOGS_LISTENING_PORT: String(logs),
    CDKTR_LOGS_PUBLISHING_PORT: String(publish),
    CDKTR_WORKFLOW_DIR: workflowDir,
    CDKTR_DB_PATH: join(dir, "cdktr.db"),
    CDKTR_AGENT_DATA_DIR: join(dir, "agent"),
  };
  return { dir, workflowDir, ports: { api, logs, publish }, env };
}

/** Start a real principal for the sandbox and wait for its `ready` line. */
export function startPrincipal(sb: Sandbox): Promise<ServiceHandle> {
  return spawnService({ script: appMain("principal"), env: sb.env, cwd: sb.dir, name: "principal" });
}

/** Start a real agent for the sandbox. */
export function startAgent(sb: Sandbox): Promise<ServiceHandle> {
  return spawnService({ script: appMain("agent"), env: sb.env, cwd: sb.dir, name: "agent" });
}

/** Non-empty lines of a text. */
export function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** Pids announced by `cdktr start all` (`[cdktr] <app> started (pid N)`). */
export function announcedPids(output: readonly string[]): number[] {
  const out: number[] = [];
  for (const l of output) {
    const m = /started \(pid (\d+)\)/.exec(l);
    if (m?.[1] !== undefined) out.push(Number(m[1]));
  }
  return out;
}

/** SIGKILL these process groups (leftovers of a failed test). */
export function killGroups(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

/** Whether a process is alive. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Check a finished run through the CLI: every task COMPLETED, and `cdktr logs --run` shows each
 * task's stdout. Returns the task ids.
 */
export async function assertRunOutput(runId: string, env: Record<string, string>, cwd?: string): Promise<string[]> {
  const opts = cwd === undefined ? { env } : { env, cwd };
  const show = await runBin(["runs", "show", runId, "--json"], opts);
  assert.equal(show.code, 0, show.stderr);
  const { run, tasks } = GetRunReplySchema.parse(JSON.parse(show.stdout));
  assert.equal(run.status, "COMPLETED");
  assert.ok(tasks.length >= 2, "the example has at least two tasks");
  for (const t of tasks) assert.equal(t.status, "COMPLETED", `task ${t.taskId}`);
  const json = await runBin(["logs", "--run", runId, "--json"], opts);
  assert.equal(json.code, 0, json.stderr);
  const stored = (JSON.parse(json.stdout) as unknown[]).map((l) => LogLineSchema.parse(l));
  const text = await runBin(["logs", "--run", runId], opts);
  assert.equal(text.code, 0, text.stderr);
  for (const t of tasks) {
    const out = stored.filter((l) => l.taskId === t.taskId && l.stream === "stdout");
    assert.ok(out.length > 0, `task ${t.taskId} has stdout lines`);
    for (const l of out) {
      assert.ok(
        text.stdout.split("\n").some((row) => row.includes(` ${t.taskId}  ${l.line}`)),
        `logs --run shows ${t.taskId}: ${l.line}\n${text.stdout}`,
      );
    }
  }
  return tasks.map((t) => t.taskId);
}

/**
 * Turns a task definition into the argv, environment and working directory of its process.
 */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import type { Params, TaskDefinition } from "@cdktr/protocol";
import { TaskCommandError } from "../errors.js";

/** What to spawn for one task attempt. */
export interface TaskCommand {
  /** Executable: a path, or a bare name looked up on PATH by the OS. */
  cmd: string;
  args: string[];
  /** Working directory, or null for the agent's own. */
  cwd: string | null;
  env: Record<string, string>;
}

/** The run a task belongs to, as far as its environment is concerned. */
export interface TaskRunContext {
  runId: string;
  workflowId: string;
  source: string;
  params: Params;
}

/**
 * `CDKTR_PARAM_<NAME>` for a parameter name: upper-cased, every character outside `[A-Z0-9]`
 * replaced by `_` (`batch-size` -> `CDKTR_PARAM_BATCH_SIZE`).
 */
export function paramEnvName(name: string): string {
  return `CDKTR_PARAM_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * The environment of a task process: the agent's environment, then the task's `env`, then the
 * run context (`CDKTR_RUN_ID`, `CDKTR_WORKFLOW_ID`, `CDKTR_TASK_ID`, `CDKTR_TRIGGER_SOURCE`,
 * one `CDKTR_PARAM_*` per run parameter). Later entries win.
 */
export function buildTaskEnv(
  base: Readonly<Record<string, string | undefined>>,
  task: Pick<TaskDefinition, "id" | "env">,
  run: TaskRunContext,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  Object.assign(env, task.env);
  for (const [name, value] of Object.entries(run.params)) env[paramEnvName(name)] = String(value);
  env.CDKTR_RUN_ID = run.runId;
  env.CDKTR_WORKFLOW_ID = run.workflowId;
  env.CDKTR_TASK_ID = task.id;
  env.CDKTR_TRIGGER_SOURCE = run.source;
  return env;
}

/**
 * Where `name` resolves on `PATH` (or as a path when it contains `/`); null when there is no
 * executable file by that name.
 */
export function findExecutable(name: string, pathVar: string | undefined, cwd: string = process.cwd()): string | null {
  const isExec = (p: string): boolean => {
    try {
      if (!statSync(p).isFile()) return false;
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (name.includes("/")) {
    const p = isAbsolute(name) ? name : resolve(cwd, name);
    return isExec(p) ? p : null;
  }
  for (const dir of (pathVar ?? "").split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, name);
    if (isExec(p)) return p;
  }
  return null;
}

/**
 * The command of a task. `!Subprocess` is its argv as written (never through a shell).
 * `!UvPython` is `<uvPath> run [--with <pkg>]... <scriptPath>` (no `--with` for a uv project),
 * run in its `workingDirectory` (else the task's).
 * @throws TaskCommandError `UV_NOT_FOUND` when `uv` cannot be found (the message names it).
 */
export function buildTaskCommand(
  task: TaskDefinition,
  run: TaskRunContext,
  baseEnv: Readonly<Record<string, string | undefined>>,
): TaskCommand {
  const env = buildTaskEnv(baseEnv, task, run);
  const config = task.config;
  if (config.type === "subprocess") {
    return { cmd: config.cmd, args: [...config.args], cwd: task.workingDirectory, env };
  }
  const cwd = config.workingDirectory ?? task.workingDirectory;
  const uv = findExecutable(config.uvPath, env.PATH, cwd ?? process.cwd());
  if (uv === null) {
    const where = config.uvPath.includes("/")
      ? `\`${config.uvPath}\` does not exist or is not executable`
      : `\`${config.uvPath}\` is not on PATH`;
    throw new TaskCommandError("UV_NOT_FOUND", `uv not found: ${where}; install uv or set uv_path`, {
      context: { uvPath: config.uvPath },
    });
  }
  const args = ["run"];
  if (!config.isUvProject) for (const pkg of config.packages) args.push("--with", pkg);
  args.push(config.scriptPath);
  return { cmd: uv, args, cwd, env };
}

/**
 * Turns a task definition into the argv, environment and working directory of its process, with
 * the task templates (`{{ params.date }}`, `{{ run.id }}`, ...) of its `args`, `env` values and
 * working directory expanded: each inside its own string, never through a shell.
 */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import type { ParamDefinition, Params, TaskDefinition, Upstream } from "@cdktr/protocol";
import { expandTaskTemplate, taskTemplateValues, withParamDefaults } from "@cdktr/workflow";
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

/** The run a task belongs to, as far as its command and environment are concerned. */
export interface TaskRunContext {
  runId: string;
  workflowId: string;
  source: string;
  params: Params;
  /**
   * The workflow's param definitions: a declared param the run lacks gets its default (a run
   * triggered before the param was added), and `{{ params.<name> }}` of an optional param
   * without a value expands to "".
   */
  paramDefs: Readonly<Record<string, ParamDefinition>>;
  /** The cron occurrence of a scheduled run, else null (`{{ run.scheduled_for }}` is then ""). */
  scheduledFor: string | null;
  /**
   * The run whose outcome started this one (chaining): `CDKTR_UPSTREAM_*` and `{{ upstream.* }}`.
   * Null or absent for other runs (those expand to "").
   */
  upstream?: Upstream | null;
}

/** Expands the templates of one task's fields; throws for a template the loader would refuse. */
type Expand = (text: string, field: string) => string;

function templateExpander(taskId: string, run: TaskRunContext): Expand {
  let values: ReadonlyMap<string, string> | null = null;
  return (text, field) => {
    values ??= taskTemplateValues({
      params: run.params,
      paramDefs: run.paramDefs,
      runId: run.runId,
      workflowId: run.workflowId,
      scheduledFor: run.scheduledFor,
      source: run.source,
      taskId,
      ...(run.upstream == null ? {} : { upstream: run.upstream }),
    });
    const r = expandTaskTemplate(text, values);
    if (r.ok) return r.value;
    throw new TaskCommandError("TEMPLATE_INVALID", `task \`${taskId}\`: ${field}: ${r.error}`, {
      context: { taskId, field },
    });
  };
}

/**
 * `CDKTR_PARAM_<NAME>` for a parameter name: upper-cased, every character outside `[A-Z0-9]`
 * replaced by `_` (`batch-size` -> `CDKTR_PARAM_BATCH_SIZE`).
 */
export function paramEnvName(name: string): string {
  return `CDKTR_PARAM_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * The clean base of every task's environment: these variables of the agent's environment, when
 * set there (names, or prefixes ending in `*`). Anything else of the agent reaches a task only
 * through an `inherit_env` allow-list.
 */
export const TASK_BASE_ENV: readonly string[] = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LC_*",
  "TZ",
  "TMPDIR",
  "HTTP_PROXY",
  "http_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "NO_PROXY",
  "no_proxy",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "NODE_EXTRA_CA_CERTS",
];

/** The agent's side of a task's environment, taken once when the agent is created. */
export interface TaskEnvSource {
  /** The agent's environment (with its `.env` merged in). */
  env: Readonly<Record<string, string | undefined>>;
  /**
   * Names set from the agent's `.env` file: they reach a task only through an allow-list, even
   * when in {@link TASK_BASE_ENV}. @default none
   */
  fromDotEnv?: ReadonlySet<string>;
  /** The agent's allow-list (`CDKTR_AGENT_INHERIT_ENV`): names, or prefixes ending in `*`. @default [] */
  inheritEnv?: readonly string[];
}

/** Whether `name` is one of `patterns` (exact names, or prefixes ending in `*`; case-sensitive). */
export function matchesEnvPattern(name: string, patterns: readonly string[]): boolean {
  for (const p of patterns) {
    if (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p) return true;
  }
  return false;
}

/**
 * The environment of a task process, later entries winning:
 * 1. from the agent's environment, the {@link TASK_BASE_ENV} variables (unless they came from its
 *    `.env`) and the variables allowed by the agent's `inheritEnv`, the workflow's and the task's
 *    `inherit_env` (`task.inheritEnv`); never one of the agent's own `CDKTR_*` settings;
 * 2. the task's `env` (the workflow's `env` merged with the task's by the loader), templates in
 *    its values expanded;
 * 3. the run variables: one `CDKTR_PARAM_*` per run parameter (declared defaults included),
 *    `CDKTR_RUN_ID`, `CDKTR_WORKFLOW_ID`, `CDKTR_TASK_ID`, `CDKTR_TRIGGER_SOURCE`, and for a run
 *    started by another run's outcome `CDKTR_UPSTREAM_RUN_ID`, `CDKTR_UPSTREAM_WORKFLOW_ID`,
 *    `CDKTR_UPSTREAM_STATUS` (an `env` cannot override them).
 *
 * At spawn the agent adds `CDKTR_TASK_MARKER` over all of these (see `containment.ts`).
 * @throws TaskCommandError `TEMPLATE_INVALID` for a template the loader would have refused.
 */
export function buildTaskEnv(
  source: TaskEnvSource,
  task: Pick<TaskDefinition, "id" | "env" | "inheritEnv">,
  run: TaskRunContext,
): Record<string, string> {
  return taskEnv(source, task, run, templateExpander(task.id, run));
}

function taskEnv(
  source: TaskEnvSource,
  task: Pick<TaskDefinition, "id" | "env" | "inheritEnv">,
  run: TaskRunContext,
  expand: Expand,
): Record<string, string> {
  const allowed = [...(source.inheritEnv ?? []), ...(task.inheritEnv ?? [])];
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(source.env)) {
    if (value === undefined || name.startsWith("CDKTR_")) continue;
    const base = source.fromDotEnv?.has(name) !== true && matchesEnvPattern(name, TASK_BASE_ENV);
    if (base || matchesEnvPattern(name, allowed)) env[name] = value;
  }
  for (const [name, value] of Object.entries(task.env)) env[name] = expand(value, `env.${name}`);
  for (const [name, value] of Object.entries(withParamDefaults(run.paramDefs, run.params))) {
    env[paramEnvName(name)] = String(value);
  }
  env.CDKTR_RUN_ID = run.runId;
  env.CDKTR_WORKFLOW_ID = run.workflowId;
  env.CDKTR_TASK_ID = task.id;
  env.CDKTR_TRIGGER_SOURCE = run.source;
  if (run.upstream != null) {
    env.CDKTR_UPSTREAM_RUN_ID = run.upstream.runId;
    env.CDKTR_UPSTREAM_WORKFLOW_ID = run.upstream.workflowId;
    env.CDKTR_UPSTREAM_STATUS = run.upstream.status;
  }
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
 * The command of a task. `!Subprocess` is its argv as written (never through a shell), each
 * argument's templates expanded inside that argument: a value with spaces, quotes or `;` stays one
 * plain argument, and is never expanded again. `cmd` is not templated. `!UvPython` is
 * `<uvPath> run [--with <pkg>]... <scriptPath>` (no `--with` for a uv project), run in its
 * `workingDirectory` (else the task's). Working directories are templated too. The environment is
 * {@link buildTaskEnv}'s; `uv` is looked up on its PATH.
 * @throws TaskCommandError `UV_NOT_FOUND` when `uv` cannot be found (the message names it);
 *   `TEMPLATE_INVALID` for a template the loader would have refused (from a principal that does not
 *   check templates).
 */
export function buildTaskCommand(task: TaskDefinition, run: TaskRunContext, source: TaskEnvSource): TaskCommand {
  const expand = templateExpander(task.id, run);
  const env = taskEnv(source, task, run, expand);
  const config = task.config;
  const taskCwd = task.workingDirectory === null ? null : expand(task.workingDirectory, "working_directory");
  if (config.type === "subprocess") {
    const args = config.args.map((arg, i) => expand(arg, `config.args[${i}]`));
    return { cmd: config.cmd, args, cwd: taskCwd, env };
  }
  const cwd = config.workingDirectory === null ? taskCwd : expand(config.workingDirectory, "config.working_directory");
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

/**
 * Parses one workflow file's text (no file system access) into a normalised
 * `WorkflowDefinition`, or a list of errors that each name file, line, column and field path.
 */
import { createHash } from "node:crypto";
import { LineCounter } from "yaml";
import { WorkflowIdSchema } from "@cdktr/protocol";
import type {
  ChainTrigger,
  ParamDefinition,
  TaskConfig,
  TaskDefinition,
  WorkflowDefinition,
  WorkflowLoadError,
} from "@cdktr/protocol";
import { normaliseCron } from "../cron/normalise-cron.js";
import { findCycle } from "../dag/graph.js";
import { coerceParam } from "../params/resolve-params.js";
import { NodeError } from "../errors.js";
import { checkTaskTemplates } from "./check-task-templates.js";
import { ProblemCollector } from "./problem-collector.js";
import { suggestKey } from "./suggest.js";
import { KNOWN_KEYS, SubprocessYamlSchema, UvPythonYamlSchema, WorkflowYamlSchema } from "./yaml-schema.js";
import type { ParamYaml, TaskYaml, WorkflowYaml } from "./yaml-schema.js";
import {
  CONFIG_TAGS,
  Tagged,
  isPlainObject,
  parseWorkflowYaml,
  toPlain,
  valueAt,
  type ConfigTag,
  type PathSeg,
} from "./yaml-reader.js";

/** Options of {@link parseWorkflowText}. */
export interface ParseWorkflowOptions {
  /** Name of the file in error messages (e.g. its path). */
  file: string;
  /** The workflow id (see {@link workflowIdFromPath}). */
  id: string;
  /** Path relative to the workflow directory, `/` separated, stored in the definition. @default file */
  path?: string;
}

/** Result of {@link parseWorkflowText}: a definition when there are no errors. */
export interface ParseWorkflowResult {
  workflow: WorkflowDefinition | null;
  errors: WorkflowLoadError[];
  warnings: WorkflowLoadError[];
}

/** Default retry policy: no retries. */
const NO_RETRIES = { count: 0, backoffMs: 0, factor: 1 } as const;
/** Backoff and factor used when `retries` gives only a count. */
const DEFAULT_BACKOFF_MS = 1000;
const DEFAULT_BACKOFF_FACTOR = 2;
/** Default upper bound of catch-up runs for policy `all`. */
export const DEFAULT_CATCH_UP_MAX = 10;

const TASK_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Maps a path relative to the workflow directory to a workflow id: extension dropped, `/`
 * replaced by `.` (`etl/daily.yml` -> `etl.daily`).
 */
export function workflowIdFromPath(relPath: string): string {
  return relPath
    .replace(/\\/g, "/")
    .replace(/\.ya?ml$/i, "")
    .split("/")
    .join(".");
}

/**
 * Parses and validates one workflow file.
 *
 * Never throws for bad input: every problem becomes a {@link WorkflowLoadError} with the
 * file's line and column (1-based) and the field path. Warnings (e.g. an ambiguous day of week)
 * do not prevent loading.
 */
export function parseWorkflowText(text: string, options: ParseWorkflowOptions): ParseWorkflowResult {
  return new WorkflowFileParser(text, options).parse();
}

/** Maps one file's YAML onto a `WorkflowDefinition`; {@link ProblemCollector} locates what is wrong. */
class WorkflowFileParser {
  readonly #lines = new LineCounter();
  readonly #problems: ProblemCollector;

  constructor(
    private readonly text: string,
    private readonly options: ParseWorkflowOptions,
  ) {
    this.#problems = new ProblemCollector(options.file, this.#lines, text);
  }

  parse(): ParseWorkflowResult {
    const workflow = this.#parse();
    const { errors, warnings } = this.#problems.sorted();
    return { workflow: errors.length === 0 ? workflow : null, errors, warnings };
  }

  #parse(): WorkflowDefinition | null {
    const { id } = this.options;
    const problems = this.#problems;
    if (!WorkflowIdSchema.safeParse(id).success) {
      problems.errorInFile(
        `workflow id \`${id}\` (from the file name) is invalid: ids use letters, digits, '_', '-' and '.', and start with a letter, digit or '_'; rename the file`,
      );
    }
    const doc = parseWorkflowYaml(this.text, this.#lines);
    problems.doc = doc;
    for (const e of doc.errors) problems.errorAtOffset(e.pos[0], `YAML syntax error: ${firstLine(e.message)}`);
    for (const w of doc.warnings) problems.warnAtOffset(w.pos[0], `YAML: ${firstLine(w.message)}`);
    if (doc.errors.length > 0) return null;
    if (doc.contents === null) {
      problems.errorAt(1, 1, "the file is empty: a workflow needs at least `name` and `tasks`");
      return null;
    }

    let plain: unknown;
    try {
      plain = toPlain(doc.contents, doc);
    } catch (e: unknown) {
      if (e instanceof NodeError) problems.errorAtNode(e.node, null, e.message);
      else throw e;
      return null;
    }

    // Task configs are tagged maps: check them even when other fields are wrong.
    const rawTasks = isPlainObject(plain) && isPlainObject(plain.tasks) ? plain.tasks : {};
    const configs = new Map<string, TaskConfig>();
    for (const [taskId, task] of Object.entries(rawTasks)) {
      if (!isPlainObject(task)) continue;
      if (!("config" in task) || task.config === null) {
        this.#problems.error(
          ["tasks", taskId],
          `task \`${taskId}\` has no config: add \`config: !Subprocess {cmd: ..., args: [...]}\` or \`config: !UvPython {script_path: ...}\``,
          true,
        );
        continue;
      }
      const config = this.#config(task.config, ["tasks", taskId, "config"]);
      if (config !== null) configs.set(taskId, config);
    }

    let parsed = WorkflowYamlSchema.safeParse(plain);
    if (!parsed.success) {
      this.#problems.zodIssues(parsed.error.issues, [], plain);
      // When unknown keys are the only problem, drop them and go on, so that one run of
      // `validate` also reports unknown dependencies, cycles and cron errors.
      if (!parsed.error.issues.every((i) => i.code === "unrecognized_keys")) return null;
      for (const issue of parsed.error.issues) {
        const target = valueAt(
          plain,
          issue.path.filter((s): s is PathSeg => typeof s !== "symbol"),
        );
        if (isPlainObject(target) && issue.code === "unrecognized_keys") for (const k of issue.keys) delete target[k];
      }
      parsed = WorkflowYamlSchema.safeParse(plain);
      if (!parsed.success) return null;
    }
    return this.#build(parsed.data, configs);
  }

  #build(y: WorkflowYaml, configs: ReadonlyMap<string, TaskConfig>): WorkflowDefinition | null {
    const timezone = y.timezone ?? "UTC";
    if (!isValidTimezone(timezone)) {
      this.#problems.error(
        ["timezone"],
        `unknown timezone \`${timezone}\`: use an IANA name such as UTC, Europe/London or America/New_York`,
      );
    }

    let schedule: string | null = null;
    if (y.cron !== undefined && y.cron !== null) {
      const r = normaliseCron(y.cron, {
        dialect: y.cron_dialect ?? "standard",
        timezone: isValidTimezone(timezone) ? timezone : "UTC",
      });
      if (r.ok) {
        schedule = r.schedule;
        for (const w of r.warnings) this.#problems.warn(["cron"], w);
      } else this.#problems.error(["cron"], r.error);
    } else if (y.cron_dialect !== undefined) {
      this.#problems.warn(["cron_dialect"], "cron_dialect has no effect without cron");
    }

    const params: Record<string, ParamDefinition> = {};
    for (const [name, p] of Object.entries(y.params ?? {})) {
      const def = this.#param(name, p);
      if (def !== null) params[name] = def;
    }

    const triggers: ChainTrigger[] = [];
    (y.triggers ?? []).forEach((t, i) => {
      if (t.after === this.options.id) {
        this.#problems.error(
          ["triggers", i, "after"],
          `a workflow cannot follow its own runs (chaining cycle ${t.after} -> ${t.after}): remove this trigger`,
        );
        return;
      }
      const status = t.status === undefined ? ["COMPLETED" as const] : Array.isArray(t.status) ? t.status : [t.status];
      triggers.push({ after: t.after, status: [...new Set(status)] });
    });

    if (y.catch_up_max !== undefined && y.catch_up !== undefined && y.catch_up.max !== undefined) {
      this.#problems.error(["catch_up_max"], "give the maximum either as catch_up.max or as catch_up_max, not both");
    }
    const catchUp = {
      policy: y.catch_up?.policy ?? "skip",
      max: y.catch_up?.max ?? y.catch_up_max ?? DEFAULT_CATCH_UP_MAX,
    } as const;

    const taskIds = Object.keys(y.tasks);
    if (taskIds.length === 0) {
      this.#problems.error(["tasks"], "the task map is empty: a workflow needs at least one task");
    }
    const tasks: Record<string, TaskDefinition> = {};
    for (const taskId of taskIds) {
      const t = y.tasks[taskId] as TaskYaml;
      if (!TASK_ID.test(taskId)) {
        this.#problems.error(
          ["tasks", taskId],
          `task id \`${taskId}\` is invalid: use letters, digits, '_', '-' and '.', starting with a letter, digit or '_'`,
          true,
        );
      }
      const depends = t.depends ?? [];
      const seen = new Set<string>();
      depends.forEach((dep, i) => {
        if (!Object.hasOwn(y.tasks, dep)) {
          const hint = suggestKey(dep, taskIds);
          this.#problems.error(
            ["tasks", taskId, "depends", i],
            `task \`${taskId}\` depends on unknown task \`${dep}\`${hint === null ? "" : ` (did you mean \`${hint}\`?)`}; known tasks: ${taskIds.join(", ")}`,
          );
        } else if (dep === taskId) {
          this.#problems.error(["tasks", taskId, "depends", i], `task \`${taskId}\` depends on itself`);
        } else if (seen.has(dep)) {
          this.#problems.warn(["tasks", taskId, "depends", i], `dependency \`${dep}\` is listed twice`);
        }
        seen.add(dep);
      });
      const config = configs.get(taskId);
      if (config === undefined) continue;
      const retries =
        t.retries === undefined || t.retries === null
          ? { ...NO_RETRIES }
          : {
              count: t.retries.count,
              backoffMs: t.retries.backoff ?? DEFAULT_BACKOFF_MS,
              factor: t.retries.factor ?? DEFAULT_BACKOFF_FACTOR,
            };
      if (t.timeout === 0)
        this.#problems.error(["tasks", taskId, "timeout"], "timeout must be more than 0 (leave it out for no timeout)");
      // Left out when empty, so a workflow without inherit_env normalises exactly as before.
      const inheritEnv = [...new Set([...(y.inherit_env ?? []), ...(t.inherit_env ?? [])])];
      tasks[taskId] = {
        id: taskId,
        name: t.name,
        description: t.description ?? null,
        depends: [...seen].filter((d) => Object.hasOwn(y.tasks, d) && d !== taskId),
        config,
        env: { ...y.env, ...t.env },
        ...(inheritEnv.length === 0 ? {} : { inheritEnv }),
        workingDirectory: t.working_directory ?? null,
        timeoutMs: t.timeout === undefined || t.timeout === null || t.timeout === 0 ? null : t.timeout,
        retries,
      };
    }

    checkTaskTemplates(y, configs, this.#problems);

    if (!this.#problems.hasErrors) {
      const cycle = findCycle(tasks);
      if (cycle !== null) {
        const last = cycle[cycle.length - 1] as string;
        const before = cycle[cycle.length - 2] as string;
        const idx = (y.tasks[last]?.depends ?? []).indexOf(before);
        this.#problems.error(["tasks", last, "depends", Math.max(idx, 0)], `dependency cycle: ${cycle.join(" -> ")}`);
      }
    }

    if (this.#problems.hasErrors) return null;
    return {
      id: this.options.id,
      name: y.name,
      description: y.description ?? null,
      path: this.options.path ?? this.options.file,
      cron: y.cron ?? null,
      schedule,
      timezone,
      startTime: y.start_time ?? null,
      params,
      maxActiveRuns: y.max_active_runs ?? null,
      overlap: y.overlap ?? "queue",
      onAgentLost: y.on_agent_lost ?? "fail",
      catchUp,
      jitterMs: y.jitter ?? 0,
      agentLabels: y.agent_labels ?? [],
      ...(triggers.length > 0 ? { triggers } : {}),
      tasks,
      hash: createHash("sha256").update(this.text).digest("hex"),
    };
  }

  #param(name: string, p: ParamYaml): ParamDefinition | null {
    const path = ["params", name];
    let ok = true;
    if (!PARAM_NAME.test(name)) {
      this.#problems.error(
        path,
        `param name \`${name}\` is invalid: use letters, digits and '_', starting with a letter or '_'`,
        true,
      );
      ok = false;
    }
    if (p.type === "enum" && p.values === undefined) {
      this.#problems.error(path, `enum param \`${name}\` needs \`values\`: a non-empty list of the accepted values`);
      ok = false;
    }
    if (p.type !== "enum" && p.values !== undefined) {
      this.#problems.error([...path, "values"], `\`values\` is only for type enum (param \`${name}\` is ${p.type})`);
      ok = false;
    }
    if (p.required === true && p.default !== undefined) {
      this.#problems.error([...path, "required"], `param \`${name}\` is required and has a default: drop one of them`);
      ok = false;
    }
    const base: ParamDefinition = {
      type: p.type,
      required: p.required ?? p.default === undefined,
      description: p.description ?? null,
    };
    if (p.values !== undefined) base.values = p.values;
    if (p.default !== undefined && ok) {
      const r = coerceParam(base, p.default);
      if (r.ok) base.default = r.value;
      else {
        this.#problems.error([...path, "default"], `default of param \`${name}\`: ${r.error}`);
        ok = false;
      }
    }
    return ok ? base : null;
  }

  #config(value: unknown, path: PathSeg[]): TaskConfig | null {
    if (!(value instanceof Tagged) || !(CONFIG_TAGS as readonly string[]).includes(value.tag)) {
      const got = value instanceof Tagged ? `tag \`${value.tag}\`` : "an untagged value";
      this.#problems.error(
        path,
        `config must be tagged \`!Subprocess\` (cmd, args) or \`!UvPython\` (script_path, ...); got ${got}`,
      );
      return null;
    }
    const tag = value.tag as ConfigTag;
    if (tag === "!Subprocess") {
      const r = SubprocessYamlSchema.safeParse(value.value);
      if (!r.success) {
        this.#problems.zodIssues(r.error.issues, path, value.value, KNOWN_KEYS.subprocess);
        return null;
      }
      return { type: "subprocess", cmd: r.data.cmd, args: r.data.args ?? [] };
    }
    const r = UvPythonYamlSchema.safeParse(value.value);
    if (!r.success) {
      this.#problems.zodIssues(r.error.issues, path, value.value, KNOWN_KEYS.uvPython);
      return null;
    }
    return {
      type: "uvPython",
      scriptPath: r.data.script_path,
      packages: r.data.packages ?? [],
      isUvProject: r.data.is_uv_project ?? false,
      workingDirectory: r.data.working_directory ?? null,
      uvPath: r.data.uv_path ?? "uv",
    };
  }
}

/** Time zone names found valid (as many as distinct spellings in the files): a check costs ~0.1 ms of Intl. */
const validTimezones = new Set<string>();

function isValidTimezone(tz: string): boolean {
  if (validTimezones.has(tz)) return true;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
  } catch {
    return false;
  }
  validTimezones.add(tz);
  return true;
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}

/**
 * zod schemas of the workflow YAML as written by users (snake_case, shorthands, durations as
 * text). The loader validates the document against these, then checks what needs the whole
 * file (dependencies, cycles, cron with its timezone) and builds the normalised
 * `WorkflowDefinition` of `@cdktr/protocol`.
 */
import { z } from "zod";
import { ChainStatusSchema, InheritEnvEntrySchema, WorkflowIdSchema, parseDurationWithUnit } from "@cdktr/protocol";

function duration(numberUnit: "s" | "ms") {
  return z
    .union([z.number(), z.string()], {
      error: `expected a duration: a number of ${numberUnit === "s" ? "seconds" : "milliseconds"} or a string such as "30s", "5m"`,
    })
    .transform((v, ctx) => {
      const r = parseDurationWithUnit(v, numberUnit);
      if (!r.ok) {
        ctx.addIssue({ code: "custom", message: r.error });
        return z.NEVER;
      }
      return r.ms;
    });
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** `start_time`: an RFC 3339 instant with an offset, normalised to ISO UTC. */
export const StartTimeYamlSchema = z
  .string({ error: "start_time must be an RFC 3339 date-time with an offset, e.g. 2025-01-20T12:30:00+00:00" })
  .transform((v, ctx) => {
    const m = RFC3339.exec(v.trim());
    const ms = Date.parse(v.trim());
    // Date.parse rolls 2025-02-30 over to March: check the calendar fields round-trip.
    const valid =
      m !== null &&
      Number.isFinite(ms) &&
      Number(m[2]) >= 1 &&
      Number(m[2]) <= 12 &&
      Number(m[3]) >= 1 &&
      Number(m[3]) <= daysIn(Number(m[1]), Number(m[2])) &&
      Number(m[4]) < 24 &&
      Number(m[5]) < 60 &&
      Number(m[6]) < 60;
    if (!valid) {
      ctx.addIssue({
        code: "custom",
        message: `invalid start_time ${JSON.stringify(v)}: use an RFC 3339 date-time with an offset, e.g. 2025-01-20T12:30:00+00:00`,
      });
      return z.NEVER;
    }
    return new Date(ms).toISOString();
  });

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** `!Subprocess` map: `cmd` and optional `args` (the original required `args`). */
export const SubprocessYamlSchema = z.strictObject({
  cmd: z.string().min(1, "cmd must not be empty"),
  args: z.array(z.union([z.string(), z.number(), z.boolean()]).transform(String)).nullish(),
});

/** `!UvPython` map, fields and defaults as in the original. */
export const UvPythonYamlSchema = z.strictObject({
  script_path: z.string().min(1, "script_path must not be empty"),
  packages: z.array(z.string()).nullish(),
  is_uv_project: z.boolean().nullish(),
  working_directory: z.string().nullish(),
  uv_path: z.string().min(1).nullish(),
});

/** `retries`: a count, or `{count, backoff, factor}`. */
export const RetriesYamlSchema = z.preprocess(
  (v) => (typeof v === "number" ? { count: v } : v),
  z.strictObject(
    {
      count: z.number().int().min(0, "retries.count must be 0 or more"),
      backoff: duration("s").optional(),
      factor: z.number().min(1, "retries.factor must be 1 or more").optional(),
    },
    { error: "retries must be a count (e.g. 3) or a map {count, backoff, factor}" },
  ),
);

const EnvValue = z
  .union([z.string(), z.number(), z.boolean()], { error: "env values must be strings" })
  .transform(String);

/** `env`: variable name -> value (numbers and booleans become strings). */
const EnvYamlSchema = z.record(z.string(), EnvValue, { error: "env must be a map of variable name -> value" });

/** `inherit_env`: names (`AWS_REGION`) or prefixes (`AWS_*`) of the agent's variables the tasks get. */
export const InheritEnvYamlSchema = z.array(InheritEnvEntrySchema, {
  error: "inherit_env must be a list of variable names or prefixes ending in '*', e.g. [AWS_REGION, AWS_*]",
});

/** One task. `config` is checked separately: it is a tagged map (`!Subprocess` / `!UvPython`). */
export const TaskYamlSchema = z.strictObject(
  {
    name: z.string({ error: "task name must be a string" }),
    description: z.string().nullish(),
    depends: z.array(z.string()).nullish(),
    config: z.unknown().optional(),
    env: EnvYamlSchema.nullish(),
    inherit_env: InheritEnvYamlSchema.nullish(),
    working_directory: z.string().min(1).nullish(),
    timeout: duration("s").nullish(),
    retries: RetriesYamlSchema.nullish(),
  },
  { error: "a task must be a map with name, config and optional depends" },
);
/** A task as validated from YAML (durations already in ms). */
export type TaskYaml = z.output<typeof TaskYamlSchema>;

/** A parameter: `{type, values, required, default, description}` or just the type name. */
export const ParamYamlSchema = z.preprocess(
  (v) => (typeof v === "string" ? { type: v } : v),
  z.strictObject(
    {
      type: z.enum(["string", "number", "boolean", "enum"], {
        error: "param type must be string, number, boolean or enum",
      }),
      values: z
        .array(z.union([z.string(), z.number()]).transform(String))
        .min(1)
        .optional(),
      required: z.boolean().optional(),
      default: z.union([z.string(), z.number(), z.boolean()]).optional(),
      description: z.string().nullish(),
    },
    {
      error:
        "a param must be a type name (string, number, boolean, enum) or a map {type, default, required, values, description}",
    },
  ),
);
/** A param as validated from YAML (shorthand expanded). */
export type ParamYaml = z.output<typeof ParamYamlSchema>;

/** `catch_up`: a policy name, or `{policy, max}`. */
export const CatchUpYamlSchema = z.preprocess(
  (v) => (typeof v === "string" ? { policy: v } : v),
  z.strictObject(
    {
      policy: z.enum(["skip", "once", "all"], { error: "catch_up policy must be skip, once or all" }),
      max: z.number().int().positive().optional(),
    },
    { error: "catch_up must be skip, once, all or a map {policy, max}" },
  ),
);

const CHAIN_STATUS_ERROR = `status must be one or more of ${ChainStatusSchema.options.join(", ")} (the states a run ends in)`;
const ChainStatusYaml = z.enum(ChainStatusSchema.options, { error: CHAIN_STATUS_ERROR });

/** One `triggers` entry: `{after: <workflow id>, status: COMPLETED | [COMPLETED, FAILED]}`. */
export const ChainTriggerYamlSchema = z.strictObject(
  {
    after: WorkflowIdSchema,
    status: z
      .union([ChainStatusYaml, z.array(ChainStatusYaml).min(1, "list at least one status")], {
        error: CHAIN_STATUS_ERROR,
      })
      .optional(),
  },
  { error: "a trigger is a map {after: <workflow id>, status: [COMPLETED, ...]}" },
);

/** A whole workflow file. */
export const WorkflowYamlSchema = z.strictObject(
  {
    name: z.string({ error: "name must be a string" }),
    description: z.string().nullish(),
    cron: z.string().nullish(),
    cron_dialect: z.enum(["standard", "cdktr"], { error: "cron_dialect must be standard or cdktr" }).optional(),
    timezone: z.string().min(1).optional(),
    start_time: StartTimeYamlSchema.nullish(),
    params: z.record(z.string(), ParamYamlSchema).nullish(),
    max_active_runs: z.number().int().positive("max_active_runs must be a positive integer").nullish(),
    overlap: z.enum(["queue", "skip"], { error: "overlap must be queue or skip" }).optional(),
    on_agent_lost: z.enum(["fail", "requeue"], { error: "on_agent_lost must be fail or requeue" }).optional(),
    catch_up: CatchUpYamlSchema.optional(),
    catch_up_max: z.number().int().positive("catch_up_max must be a positive integer").optional(),
    jitter: duration("ms").nullish(),
    agent_labels: z.array(z.string().min(1)).nullish(),
    env: EnvYamlSchema.nullish(),
    inherit_env: InheritEnvYamlSchema.nullish(),
    triggers: z.array(ChainTriggerYamlSchema, { error: "triggers must be a list of {after, status}" }).nullish(),
    tasks: z.preprocess(
      (v) => (v === null ? {} : v),
      z.record(z.string(), TaskYamlSchema, { error: "tasks must be a map of task id -> task" }),
    ),
  },
  { error: "a workflow file must be a YAML map with name and tasks" },
);
/** A workflow file as validated from YAML, before normalisation. */
export type WorkflowYaml = z.output<typeof WorkflowYamlSchema>;

/** The keys each kind of map accepts, for "did you mean" suggestions. */
export const KNOWN_KEYS = {
  workflow: Object.keys(WorkflowYamlSchema.shape),
  task: Object.keys(TaskYamlSchema.shape),
  subprocess: Object.keys(SubprocessYamlSchema.shape),
  uvPython: Object.keys(UvPythonYamlSchema.shape),
  param: ["type", "values", "required", "default", "description"],
  retries: ["count", "backoff", "factor"],
  catchUp: ["policy", "max"],
  trigger: ["after", "status"],
} as const;

/** The known keys of the map at `path` (for suggestions). */
export function knownKeysAt(path: readonly (string | number)[]): readonly string[] {
  if (path.length === 0) return KNOWN_KEYS.workflow;
  if (path[0] === "tasks" && path.length === 2) return KNOWN_KEYS.task;
  if (path[0] === "tasks" && path.length === 3 && path[2] === "retries") return KNOWN_KEYS.retries;
  if (path[0] === "params" && path.length === 2) return KNOWN_KEYS.param;
  if (path[0] === "catch_up" && path.length === 1) return KNOWN_KEYS.catchUp;
  if (path[0] === "triggers" && path.length === 2) return KNOWN_KEYS.trigger;
  return [];
}

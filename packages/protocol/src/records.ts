/**
 * Records shared by every cdktr process: workflow definitions as the principal serves them,
 * runs, task runs, log lines and agents. These are the shapes the CLI's `--json` prints too.
 *
 * Times on the wire are ISO-8601 UTC strings with millisecond precision
 * (`2026-11-28T13:00:00.000Z`).
 */
import { z } from "zod";

/** An ISO-8601 instant with a timezone designator, e.g. `2026-11-28T13:00:00.000Z`. */
export const IsoTimeSchema = z.iso.datetime({ offset: true });

/** A workflow id: the file path relative to the workflow directory, `/` replaced by `.`. */
export const WorkflowIdSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, "workflow ids use letters, digits, '_', '-' and '.'");

/** A value a run parameter can carry once coerced. */
export const ParamValueSchema = z.union([z.string(), z.number(), z.boolean()]);
/** Type of {@link ParamValueSchema}. */
export type ParamValue = z.infer<typeof ParamValueSchema>;

/** Parameters of a run, by name. */
export const ParamsSchema = z.record(z.string(), ParamValueSchema);
/** Type of {@link ParamsSchema}. */
export type Params = z.infer<typeof ParamsSchema>;

// ---------------------------------------------------------------------------------------------
// Workflow definitions (what the principal serves; produced from YAML by @cdktr/workflow)
// ---------------------------------------------------------------------------------------------

/** `!Subprocess`: argv spawned directly, never through a shell. */
export const SubprocessConfigSchema = z.object({
  type: z.literal("subprocess"),
  cmd: z.string().min(1),
  args: z.array(z.string()),
});

/** `!UvPython`: a Python script run with `uv run`. */
export const UvPythonConfigSchema = z.object({
  type: z.literal("uvPython"),
  scriptPath: z.string().min(1),
  packages: z.array(z.string()),
  isUvProject: z.boolean(),
  workingDirectory: z.string().nullable(),
  uvPath: z.string().min(1),
});

/** How a task runs: `Subprocess` (`cmd`, `args`) or `UvPython` (`script_path`, packages, ...), tagged by `type`. */
export const TaskConfigSchema = z.discriminatedUnion("type", [SubprocessConfigSchema, UvPythonConfigSchema]);
/** Type of {@link TaskConfigSchema}. */
export type TaskConfig = z.infer<typeof TaskConfigSchema>;

/** Retry policy of a task: `count` extra attempts, waiting `backoffMs * factor^(attempt-1)`. */
export const RetryPolicySchema = z.object({
  count: z.number().int().min(0),
  backoffMs: z.number().int().min(0),
  factor: z.number().min(1),
});
/** Type of {@link RetryPolicySchema}. */
export type RetryPolicy = z.infer<typeof RetryPolicySchema>;

/**
 * One entry of an `inherit_env` allow-list: a variable name (`AWS_REGION`), or a prefix ending in
 * `*` (`AWS_*`) for every variable starting with it. Names are case-sensitive, as in the
 * environment. Entries naming the agent's own `CDKTR_*` settings are refused: those never reach a
 * task (a prefix such as `C*` still skips them), only the run variables (`CDKTR_RUN_ID`, ...) do.
 */
export const InheritEnvEntrySchema = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*\*?$/, {
    error: (issue) =>
      `\`${String(issue.input)}\` is not a variable name: use letters, digits and '_' (AWS_REGION), or a prefix ending in '*' (AWS_*)`,
    abort: true,
  })
  .refine((v) => !v.startsWith("CDKTR"), {
    error: (issue) =>
      `\`${String(issue.input)}\`: the agent's own CDKTR_* settings never reach a task; put a value the task needs in its \`env\` (the run variables CDKTR_RUN_ID, CDKTR_WORKFLOW_ID, CDKTR_TASK_ID, CDKTR_TRIGGER_SOURCE and CDKTR_PARAM_* are always set)`,
  });

/** One task of a workflow, normalised from YAML (camelCase). */
export const TaskDefinitionSchema = z.object({
  id: z.string().min(1),
  name: z.string(),
  description: z.string().nullable(),
  depends: z.array(z.string()),
  config: TaskConfigSchema,
  /** Extra variables of the task: the workflow's `env`, then the task's (which wins). */
  env: z.record(z.string(), z.string()),
  /**
   * Variables of the agent's environment the task inherits on top of the clean base (see
   * docs/workflows.md, "Task environment"): the workflow's and the task's `inherit_env`, in that
   * order, without duplicates. Absent (sent by an older principal) means none.
   */
  inheritEnv: z.array(InheritEnvEntrySchema).optional(),
  workingDirectory: z.string().nullable(),
  timeoutMs: z.number().int().positive().nullable(),
  retries: RetryPolicySchema,
});
/** Type of {@link TaskDefinitionSchema}. */
export type TaskDefinition = z.infer<typeof TaskDefinitionSchema>;

/** A typed workflow parameter: type (string, number, boolean, enum), required or default. */
export const ParamDefinitionSchema = z.object({
  type: z.enum(["string", "number", "boolean", "enum"]),
  values: z.array(z.string()).optional(),
  required: z.boolean(),
  default: ParamValueSchema.optional(),
  description: z.string().nullable(),
});
/** Type of {@link ParamDefinitionSchema}. */
export type ParamDefinition = z.infer<typeof ParamDefinitionSchema>;

/** What the scheduler does with occurrences missed while it was down: `skip`, `once` or `all` (capped by `max`). */
export const CatchUpSchema = z.object({
  policy: z.enum(["skip", "once", "all"]),
  /** Upper bound of occurrences fired by `all`. */
  max: z.number().int().positive(),
});
/** Type of {@link CatchUpSchema}. */
export type CatchUp = z.infer<typeof CatchUpSchema>;

/** The run states a chaining rule can follow: the terminal ones. */
export const ChainStatusSchema = z.enum(["COMPLETED", "FAILED", "CRASHED", "CANCELLED", "SKIPPED"]);

/**
 * A workflow's `triggers: [{after, status}]` entry: run this workflow once each time a run of
 * `after` ends in one of `status` (default `[COMPLETED]`).
 */
export const ChainTriggerSchema = z
  .object({
    after: WorkflowIdSchema,
    status: z.array(ChainStatusSchema).min(1),
  })
  .strict();
/** Type of {@link ChainTriggerSchema}. */
export type ChainTrigger = z.infer<typeof ChainTriggerSchema>;

/** A loaded, validated workflow (the normalised form of a YAML file), as served by the principal. */
export const WorkflowDefinitionSchema = z.object({
  id: WorkflowIdSchema,
  name: z.string(),
  description: z.string().nullable(),
  /** Path of the file relative to the workflow directory, `/` separated. */
  path: z.string(),
  /** The cron expression as written in the file, or null. */
  cron: z.string().nullable(),
  /**
   * The same schedule normalised for croner: 6 fields (seconds first), day of week 0-6 with
   * Sunday 0, whatever the file's field count and dialect. Null when `cron` is null.
   */
  schedule: z.string().nullable(),
  /** IANA timezone the schedule is evaluated in. */
  timezone: z.string(),
  startTime: IsoTimeSchema.nullable(),
  params: z.record(z.string(), ParamDefinitionSchema),
  /** At most this many runs QUEUED-but-eligible/ASSIGNED/RUNNING at once; null = unlimited. */
  maxActiveRuns: z.number().int().positive().nullable(),
  overlap: z.enum(["queue", "skip"]),
  onAgentLost: z.enum(["fail", "requeue"]),
  catchUp: CatchUpSchema,
  /** Random delay 0..jitterMs added to each scheduled trigger. */
  jitterMs: z.number().int().min(0),
  agentLabels: z.array(z.string()),
  /** Chaining rules: run this workflow when runs of other workflows end (absent from older principals: none). */
  triggers: z.array(ChainTriggerSchema).optional(),
  tasks: z.record(z.string(), TaskDefinitionSchema),
  /** Content hash of the source file; changes whenever the definition changes. */
  hash: z.string(),
});
/** Type of {@link WorkflowDefinitionSchema}. */
export type WorkflowDefinition = z.infer<typeof WorkflowDefinitionSchema>;

// ---------------------------------------------------------------------------------------------
// Runs and tasks
// ---------------------------------------------------------------------------------------------

/** Every run state (see docs/protocol.md for the transitions). */
export const RUN_STATUSES = [
  "QUEUED",
  "ASSIGNED",
  "RUNNING",
  "COMPLETED",
  "FAILED",
  "CRASHED",
  "CANCELLED",
  "SKIPPED",
] as const;
/**
 * Run states. `SKIPPED` is the record of a trigger refused by the `skip` overlap policy: it never
 * ran and never will.
 */
export const RunStatusSchema = z.enum(RUN_STATUSES);
/** Type of {@link RunStatusSchema}. */
export type RunStatus = z.infer<typeof RunStatusSchema>;

/** Run states a run never leaves. */
export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED", "SKIPPED"];

/** Every task state. */
export const TASK_STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "SKIPPED", "CRASHED", "CANCELLED"] as const;
/** A task state. */
export const TaskStatusSchema = z.enum(TASK_STATUSES);
/** Type of {@link TaskStatusSchema}. */
export type TaskStatus = z.infer<typeof TaskStatusSchema>;

/**
 * Task states a task attempt ends in (a FAILED task may still get a new attempt: see the
 * principal's state machine).
 */
export const TERMINAL_TASK_STATUSES: readonly TaskStatus[] = ["COMPLETED", "FAILED", "SKIPPED", "CRASHED", "CANCELLED"];

/** Whether a run in this state never changes again. */
export function isTerminalRunStatus(status: RunStatus): boolean {
  return TERMINAL_RUN_STATUSES.includes(status);
}

/** Whether a task in this state has finished (see {@link TERMINAL_TASK_STATUSES}). */
export function isTerminalTaskStatus(status: TaskStatus): boolean {
  return TERMINAL_TASK_STATUSES.includes(status);
}

/** Why a task or run ended the way it did, when it is not a plain exit code. */
export const ReasonSchema = z.enum([
  "exit_code",
  "signal",
  "timeout",
  "cancelled",
  "spawn_error",
  "dependency_failed",
  "agent_lost",
  "agent_shutdown",
  "agent_error",
  "overlap_skip",
]);
/** Type of {@link ReasonSchema}. */
export type Reason = z.infer<typeof ReasonSchema>;

/**
 * The run whose outcome started this one (workflow chaining: a workflow's `triggers: [{after}]` or
 * a `run_status` listener). The principal checks it against the stored upstream run.
 */
export const UpstreamSchema = z
  .object({
    runId: z.string().min(1).max(128),
    workflowId: WorkflowIdSchema,
    status: RunStatusSchema,
  })
  .strict();
/** Type of {@link UpstreamSchema}. */
export type Upstream = z.infer<typeof UpstreamSchema>;

/** A run as stored and served (`getRun`, `listRuns`, events, the CLI's `--json`). */
export const RunRecordSchema = z.object({
  runId: z.string(),
  workflowId: z.string(),
  status: RunStatusSchema,
  /** Who triggered it: `scheduler`, `cli`, `webhook`, ... free text chosen by the caller. */
  source: z.string(),
  /** The name of the key that triggered it (null when authentication is off, or for a requeue of such a run). */
  triggeredBy: z.string().nullable(),
  idempotencyKey: z.string().nullable(),
  params: ParamsSchema,
  /** The cron occurrence this run is for (scheduler triggers), else null. */
  scheduledFor: IsoTimeSchema.nullable(),
  /**
   * The run whose outcome started this one (chaining), else null. Absent from principals older
   * than chaining.
   */
  upstream: UpstreamSchema.nullable().optional(),
  /**
   * The run this one re-runs from its failed tasks (`runWorkflow` with `retryFrom`), else null:
   * the tasks that COMPLETED there are taken as done here (`TaskRunRecord.reusedFrom`). Absent
   * from principals older than retries.
   */
  retryOf: z.string().nullable().optional(),
  /** When the principal committed the trigger. */
  createdAt: IsoTimeSchema,
  startedAt: IsoTimeSchema.nullable(),
  finishedAt: IsoTimeSchema.nullable(),
  agentId: z.string().nullable(),
  reason: ReasonSchema.nullable(),
  message: z.string().nullable(),
});
/** Type of {@link RunRecordSchema}. */
export type RunRecord = z.infer<typeof RunRecordSchema>;

/** One task of a run: state, attempt, times, exit code or signal, reason. */
export const TaskRunRecordSchema = z.object({
  runId: z.string(),
  taskId: z.string(),
  status: TaskStatusSchema,
  attempt: z.number().int().min(0),
  startedAt: IsoTimeSchema.nullable(),
  finishedAt: IsoTimeSchema.nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  reason: ReasonSchema.nullable(),
  message: z.string().nullable(),
  /**
   * On a retry's task taken as done (see `RunRecord.retryOf`): the id of the run where the task
   * actually ran (the original one, through a retry of a retry). Such a task is COMPLETED from
   * the start, with the attempt, exit code and times of that run, and is never executed. Null
   * for a task that runs; absent from principals older than retries.
   */
  reusedFrom: z.string().nullable().optional(),
});
/** Type of {@link TaskRunRecordSchema}. */
export type TaskRunRecord = z.infer<typeof TaskRunRecordSchema>;

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

/** Log levels, lowest first (a query's `level` is a minimum). */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** A log level. */
export const LogLevelSchema = z.enum(LOG_LEVELS);
/** Type of {@link LogLevelSchema}. */
export type LogLevel = z.infer<typeof LogLevelSchema>;

/** Where a log line came from: the task's stdout or stderr, or the agent itself (`system`). */
export const LogStreamSchema = z.enum(["stdout", "stderr", "system"]);
/** Type of {@link LogStreamSchema}. */
export type LogStream = z.infer<typeof LogStreamSchema>;

/**
 * One line of task output. `seq` is a per-(run, task) sequence number starting at 1, assigned
 * by the agent; (runId, taskId, seq) identifies a line, so resending it is harmless.
 * stdout lines have level `info`, stderr lines `error` (as in the original), system lines any.
 */
export const LogLineSchema = z.object({
  time: IsoTimeSchema,
  runId: z.string(),
  workflowId: z.string(),
  taskId: z.string(),
  stream: LogStreamSchema,
  level: LogLevelSchema,
  seq: z.number().int().positive(),
  line: z.string(),
});
/** Type of {@link LogLineSchema}. */
export type LogLine = z.infer<typeof LogLineSchema>;

// ---------------------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------------------

/** A registered agent as `listAgents` reports it. */
export const AgentRecordSchema = z.object({
  agentId: z.string(),
  host: z.string(),
  capacity: z.number().int().positive(),
  labels: z.array(z.string()),
  version: z.string(),
  runningRuns: z.array(z.string()),
  registeredAt: IsoTimeSchema,
  lastHeartbeatAt: IsoTimeSchema,
  status: z.enum(["ACTIVE", "LOST"]),
  /** The problems of the agent's last heartbeat (disk full...); empty when all is well. */
  problems: z.array(z.string()).optional(),
});
/** Type of {@link AgentRecordSchema}. */
export type AgentRecord = z.infer<typeof AgentRecordSchema>;

/**
 * The verbs an agent speaks on the API channel (port 5561): `registerAgent`, `heartbeat`,
 * `fetchWork`, `confirmAssignment`, `runStatus` and `taskStatus`, with the bounds on what an agent
 * may report. The verb table that serves them is `API_VERBS` (`messages.ts`); `docs/protocol.md`
 * documents each with JSON examples.
 */
import { z } from "zod";
import { PrincipalEndpointsSchema } from "./errors.js";
import {
  IsoTimeSchema,
  ReasonSchema,
  RunRecordSchema,
  RunStatusSchema,
  TaskStatusSchema,
  WorkflowDefinitionSchema,
} from "./records.js";

/** An agent id (1-256 characters), chosen by the agent and stable across its restarts. */
export const AgentIdSchema = z.string().min(1).max(256);

/** Most labels one agent may register (`CDKTR_AGENT_LABELS`). */
export const MAX_AGENT_LABELS = 64;
/** Longest label, in characters. */
export const MAX_AGENT_LABEL_LENGTH = 128;
/** Largest `capacity` of an agent (the agent's `CDKTR_AGENT_MAX_CONCURRENCY` goes up to it). */
export const MAX_AGENT_CAPACITY = 1000;
/** Most runs an agent may list as running in `registerAgent` and `heartbeat`. */
export const MAX_AGENT_RUNNING_RUNS = 1000;

const AgentLabelsSchema = z
  .array(
    z
      .string()
      .max(
        MAX_AGENT_LABEL_LENGTH,
        `a label has at most ${MAX_AGENT_LABEL_LENGTH} characters: shorten it in CDKTR_AGENT_LABELS`,
      ),
  )
  .max(MAX_AGENT_LABELS, `an agent has at most ${MAX_AGENT_LABELS} labels: remove some from CDKTR_AGENT_LABELS`);
/**
 * One agent process's session id (8-64 letters, digits, `-` or `_`), new at every start of the
 * agent process. Assignments fetched with it are settled by that process's own word: see
 * {@link AgentSettlementSchema} and docs/architecture.md ("Dispatch without a confirmation").
 */
export const AgentSessionSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{8,64}$/, "a session id has 8-64 letters, digits, '-' or '_'");

const RunningRunsSchema = z
  .array(z.string().max(128, "a run id has at most 128 characters"))
  .max(MAX_AGENT_RUNNING_RUNS, `an agent lists at most ${MAX_AGENT_RUNNING_RUNS} running runs`);

/**
 * What an agent process says about the `fetchWork` calls it made with its session: every call
 * numbered `settledThrough` or lower has been answered and acted on (its run started and listed
 * in `runningRuns`, or dropped for good) or given up (its late reply is discarded). An assignment
 * fetched with this session and such a number that the same message does not list was never
 * started and never will be: the principal queues it again.
 */
export const AgentSettlementSchema = z.object({
  /** The sending agent process's session (the one it passes to `fetchWork`). */
  session: AgentSessionSchema.optional(),
  /** Every `fetchWork` of this session numbered up to this one is settled. */
  settledThrough: z.number().int().min(0).optional(),
});

/**
 * The agent process that held this agent's data directory before this one (it is dead: the
 * directory is locked), and the runs it had started without their start being acknowledged, as
 * its status journal shows them (written before each start). Sent only when that journal is
 * known to be complete (same boot of the machine), so an assignment of that session not listed
 * here was never started: the principal queues it again instead of crashing it.
 */
export const AgentPredecessorSchema = z
  .object({
    session: AgentSessionSchema,
    started: z
      .array(z.string().max(128, "a run id has at most 128 characters"))
      .max(MAX_AGENT_RUNNING_RUNS, `a predecessor lists at most ${MAX_AGENT_RUNNING_RUNS} started runs`),
  })
  .strict();

/** Request body of `registerAgent` (port 5561). Labels, host, version and running runs are bounded (listAgents pages must fit a message). */
export const RegisterAgentRequestSchema = z
  .object({
    agentId: AgentIdSchema,
    host: z.string().max(255, "a host name has at most 255 characters"),
    capacity: z
      .number()
      .int()
      .positive()
      .max(MAX_AGENT_CAPACITY, `capacity is at most ${MAX_AGENT_CAPACITY}: lower CDKTR_AGENT_MAX_CONCURRENCY`),
    labels: AgentLabelsSchema,
    version: z.string().max(128, "a version has at most 128 characters"),
    /** Runs this agent process is executing right now (after a principal restart, say). */
    runningRuns: RunningRunsSchema,
    /** The previous process on this agent's data directory (see {@link AgentPredecessorSchema}). */
    predecessor: AgentPredecessorSchema.optional(),
  })
  .extend(AgentSettlementSchema.shape)
  .strict();
/** Reply body of `registerAgent` (port 5561). */
export const RegisterAgentReplySchema = z.object({
  heartbeatIntervalMs: z.number().int().positive(),
  heartbeatTimeoutMs: z.number().int().positive(),
  /** Of the reported running runs, those the agent must stop (cancelled or already CRASHED). */
  cancel: z.array(z.string()),
  /** The leader's endpoints: the agent ships its log batches to `leader.logs`. Absent from older servers. */
  leader: PrincipalEndpointsSchema.optional(),
});

/** Request body of `heartbeat` (port 5561). */
export const HeartbeatRequestSchema = z
  .object({
    agentId: AgentIdSchema,
    runningRuns: RunningRunsSchema,
    /**
     * What keeps the agent from working normally right now (for instance `"disk full: log spool
     * (...)"`); absent or empty when all is well. `listAgents` shows the last reported list.
     */
    problems: z.array(z.string().max(1000)).max(20).optional(),
  })
  .extend(AgentSettlementSchema.shape)
  .strict();
/** Reply body of `heartbeat` (port 5561). */
export const HeartbeatReplySchema = z.object({
  /** Runs the agent must cancel. */
  cancel: z.array(z.string()),
  /** The principal does not know this agent (it restarted): register again. */
  reregister: z.boolean(),
});

/** Request body of `fetchWork` (port 5561). */
export const FetchWorkRequestSchema = z
  .object({
    agentId: AgentIdSchema,
    /** How long the principal may hold the request when nothing is eligible. */
    waitMs: z.number().int().min(0).max(60_000),
    freeSlots: z.number().int().min(1),
    /**
     * The agent process's session and this call's number in it (1, 2, ...). With them, the
     * assignment is the permission to start: the reply waits for its commit, and the agent starts
     * the run at once, confirming afterwards. Without them (older agents), the agent must confirm
     * before it starts anything, and an unconfirmed assignment goes back to the queue when its
     * lease expires.
     */
    session: AgentSessionSchema.optional(),
    seq: z.number().int().min(1).optional(),
  })
  .strict()
  .refine((r) => (r.session === undefined) === (r.seq === undefined), {
    message: "give both `session` and `seq`, or neither",
    path: ["seq"],
  });
/** A run handed to an agent by `fetchWork`: the run, its workflow definition, the assignment token to confirm with and the lease expiry. */
export const AssignmentSchema = z.object({
  run: RunRecordSchema,
  workflow: WorkflowDefinitionSchema,
  /** Present it in `confirmAssignment` and every report; a stale token is refused. */
  token: z.string(),
  /**
   * Fetched without a session: confirm before this instant or the run goes back to the queue.
   * With a session the lease does not expire: the agent's settlement or its loss ends it.
   */
  leaseExpiresAt: IsoTimeSchema,
  /**
   * A retry's tasks taken as done (`TaskRunRecord.reusedFrom` set, status COMPLETED): the agent
   * seeds them as COMPLETED, never runs them and never reports them; their dependents may start
   * at once. Absent or empty for any other run.
   */
  reusedTasks: z.array(z.string()).optional(),
});
/** Type of {@link AssignmentSchema}. */
export type Assignment = z.infer<typeof AssignmentSchema>;
/** Reply body of `fetchWork` (port 5561). */
export const FetchWorkReplySchema = z.object({
  assignment: AssignmentSchema.nullable(),
  cancel: z.array(z.string()),
});

/** Request body of `confirmAssignment` (port 5561). */
export const ConfirmAssignmentRequestSchema = z
  .object({
    agentId: AgentIdSchema,
    runId: z.string().min(1),
    token: z.string().min(1),
    /**
     * Agent-clock time the run started (an agent that starts on the committed assignment
     * confirms afterwards); recorded as the run's `startedAt`. Without it the principal's commit
     * time is recorded.
     */
    time: IsoTimeSchema.optional(),
  })
  .strict();
/** Reply body of `confirmAssignment` (port 5561). */
export const ConfirmAssignmentReplySchema = z.object({ run: RunRecordSchema });

/** Request body of `runStatus` (port 5561). */
export const RunStatusUpdateRequestSchema = z
  .object({
    agentId: AgentIdSchema,
    runId: z.string().min(1),
    /** The run's assignment token (required when authentication is on). */
    token: z.string().min(1).max(256).optional(),
    status: z.enum(["RUNNING", "COMPLETED", "FAILED", "CANCELLED"]),
    /** Agent-clock time of the transition. */
    time: IsoTimeSchema,
    reason: ReasonSchema.optional(),
    message: z.string().max(8192).optional(),
  })
  .strict();
/** Reply body of `runStatus` (port 5561). */
export const RunStatusUpdateReplySchema = z.object({
  /** False when the update was only recorded in history (e.g. the run is already CRASHED). */
  applied: z.boolean(),
  status: RunStatusSchema,
});

/** Request body of `taskStatus` (port 5561). */
export const TaskStatusUpdateRequestSchema = z
  .object({
    agentId: AgentIdSchema,
    runId: z.string().min(1),
    /** The run's assignment token (required when authentication is on). */
    token: z.string().min(1).max(256).optional(),
    taskId: z.string().min(1),
    attempt: z.number().int().min(0),
    status: TaskStatusSchema,
    time: IsoTimeSchema,
    exitCode: z.number().int().optional(),
    signal: z.string().optional(),
    reason: ReasonSchema.optional(),
    message: z.string().max(8192).optional(),
  })
  .strict();
/** Reply body of `taskStatus` (port 5561). */
export const TaskStatusUpdateReplySchema = z.object({ applied: z.boolean() });

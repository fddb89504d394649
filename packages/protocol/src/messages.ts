/**
 * Every verb of the principal's API: request and reply schemas, and whether a client may retry
 * it blindly (the verb tables `API_VERBS` and `LOG_VERBS`). The schemas of the agents' verbs are
 * in `agent-messages.ts`. `docs/protocol.md` documents each with JSON examples.
 */
import { z } from "zod";
import { PrincipalEndpointsSchema, WireErrorSchema } from "./errors.js";
import {
  ConfirmAssignmentReplySchema,
  ConfirmAssignmentRequestSchema,
  FetchWorkReplySchema,
  FetchWorkRequestSchema,
  HeartbeatReplySchema,
  HeartbeatRequestSchema,
  RegisterAgentReplySchema,
  RegisterAgentRequestSchema,
  RunStatusUpdateReplySchema,
  RunStatusUpdateRequestSchema,
  TaskStatusUpdateReplySchema,
  TaskStatusUpdateRequestSchema,
} from "./agent-messages.js";
import {
  AgentRecordSchema,
  IsoTimeSchema,
  LogLevelSchema,
  LogLineSchema,
  ParamsSchema,
  RunRecordSchema,
  RunStatusSchema,
  TaskRunRecordSchema,
  UpstreamSchema,
  WorkflowDefinitionSchema,
  WorkflowIdSchema,
} from "./records.js";
import { KeyIdentitySchema, KeyNameSchema, KeyRecordSchema, KeyRoleSchema, Z85KeySchema } from "./security/identity.js";

/**
 * The person a `dashboard` key acts for: a dashboard token's name (letters, digits, `_`, `-`,
 * `.`, `@`; at most 64 characters).
 */
export const ActorSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.@-]*$/, "actors use letters, digits, '_', '-', '.' and '@'");

/** Largest page a listing returns. */
export const MAX_PAGE_SIZE = 1000;
const Limit = z.number().int().min(1).max(MAX_PAGE_SIZE);
const Cursor = z.string().min(1).max(512);

// --- general ----------------------------------------------------------------------------------

/** Request body of `ping` (port 5561). */
export const PingRequestSchema = z.object({}).strict();
/** Reply body of `ping` (port 5561). */
export const PingReplySchema = z.object({
  principalId: z.string(),
  version: z.string(),
  time: IsoTimeSchema,
  /**
   * `degraded` when the server answers but cannot do its job fully (see `problems`); absent from
   * servers older than this field (treat as `ok`).
   */
  health: z.enum(["ok", "degraded"]).optional(),
  /** What is wrong when `health` is `degraded`, e.g. `"disk full"`; empty when ok. */
  problems: z.array(z.string()).optional(),
  /**
   * With several principals on one database (PostgreSQL): whether this one leads. Only the leader
   * dispatches, accepts triggers and ingests logs; a standby answers reads and refuses writes with
   * `NOT_LEADER`. A lone principal (SQLite) is always `leader`. Absent from older servers (leader).
   */
  role: z.enum(["leader", "standby"]).optional(),
  /** The current leader's endpoints (this principal's own when it leads); null while none leads. */
  leader: PrincipalEndpointsSchema.nullable().optional(),
  /** The leader's fencing epoch (increases at every change of leader); absent for SQLite. */
  epoch: z.number().int().nonnegative().optional(),
  /**
   * Hash of the loaded workflow set (ids and definitions, order-independent): principals sharing a
   * database must load the same workflows, and report a mismatch loudly.
   */
  workflowHash: z.string().optional(),
});

/** The health a server reports in its `ping` reply. */
export interface ServerHealth {
  health: "ok" | "degraded";
  problems: string[];
}

/**
 * Request body of `hello` (ports 5561 and 5562), the proof that binds a connection to its key:
 * step 1 `{ publicKey }` returns a challenge; step 2 `{ publicKey, challenge, proof }` with
 * `proof = base64(HMAC-SHA256(X25519(client secret, principal public), "cdktr-hello/1\n" +
 * challenge + "\n" + publicKey + "\n" + principal public key))` returns the identity.
 */
export const HelloRequestSchema = z
  .object({
    publicKey: Z85KeySchema,
    challenge: z.string().min(1).max(128).optional(),
    proof: z.string().min(1).max(128).optional(),
  })
  .strict();
/** Reply body of `hello`: the challenge (step 1) or the key's identity (step 2); both null when authentication is off. */
export const HelloReplySchema = z.object({
  challenge: z.string().nullable(),
  identity: KeyIdentitySchema.nullable(),
});

// --- keys -------------------------------------------------------------------------------------

/** Request body of `enrollKey` (port 5561, operator): enrol a public key made by the client (the secret half never leaves it). */
export const EnrollKeyRequestSchema = z
  .object({
    name: KeyNameSchema,
    role: KeyRoleSchema,
    /** Idempotency scope. @default the name */
    scope: KeyNameSchema.optional(),
    /** Workflows a trigger or scheduler key may run; absent or null = any. */
    workflows: z.array(WorkflowIdSchema).nullable().optional(),
    publicKey: Z85KeySchema,
  })
  .strict();
/** Reply body of `enrollKey`. */
export const EnrollKeyReplySchema = z.object({ key: KeyRecordSchema });
/** Request body of `listKeys` (port 5561, operator). */
export const ListKeysRequestSchema = z.object({}).strict();
/** Reply body of `listKeys`: every enrolled key, revoked ones included, never a secret. */
export const ListKeysReplySchema = z.object({ keys: z.array(KeyRecordSchema) });
/** Request body of `revokeKey` (port 5561, operator). */
export const RevokeKeyRequestSchema = z.object({ name: KeyNameSchema }).strict();
/** Reply body of `revokeKey`: the key, and whether this call revoked it (false: it was already). */
export const RevokeKeyReplySchema = z.object({ key: KeyRecordSchema, revoked: z.boolean() });

// --- workflows --------------------------------------------------------------------------------

/** A workflow file that failed to load: `file` with `line`/`column` (1-based, null when unknown) and the field `path`. */
export const WorkflowLoadErrorSchema = z.object({
  file: z.string(),
  line: z.number().int().nullable(),
  column: z.number().int().nullable(),
  path: z.string().nullable(),
  message: z.string(),
});
/** Type of {@link WorkflowLoadErrorSchema}. */
export type WorkflowLoadError = z.infer<typeof WorkflowLoadErrorSchema>;

/** Request body of `listWorkflows` (port 5561). */
export const ListWorkflowsRequestSchema = z
  .object({
    /** Only workflows changed after this store version (and ids removed since). */
    sinceVersion: z.number().int().min(0).optional(),
  })
  .strict();
/** Reply body of `listWorkflows` (port 5561). */
export const ListWorkflowsReplySchema = z.object({
  /** The store's current version; pass it back as `sinceVersion` next time. */
  version: z.number().int().min(0),
  /** True when `workflows` is the whole store (no `sinceVersion`, or it was too old). */
  full: z.boolean(),
  workflows: z.array(WorkflowDefinitionSchema),
  /** Ids removed since `sinceVersion` (empty when `full`). */
  removed: z.array(z.string()),
  /** Files that currently fail to load (their last valid version, if any, stays active). */
  errors: z.array(WorkflowLoadErrorSchema),
});

/** Request body of `getWorkflow` (port 5561). */
export const GetWorkflowRequestSchema = z.object({ workflowId: WorkflowIdSchema }).strict();
/** Reply body of `getWorkflow` (port 5561). */
export const GetWorkflowReplySchema = z.object({ workflow: WorkflowDefinitionSchema });

// --- runs -------------------------------------------------------------------------------------

/** Request body of `runWorkflow` (port 5561). */
export const RunWorkflowRequestSchema = z
  .object({
    workflowId: WorkflowIdSchema,
    params: ParamsSchema.optional(),
    /** Same key -> same run. Kept at least 7 days. Generated by `PrincipalClient` when absent. */
    idempotencyKey: z.string().min(1).max(512).optional(),
    /** Free text naming the trigger: `scheduler`, `cli`, `webhook`, ... */
    source: z.string().min(1).max(128).optional(),
    /** The cron occurrence this trigger is for. */
    scheduledFor: IsoTimeSchema.optional(),
    /**
     * The finished run whose outcome this trigger follows (chaining). The principal refuses it
     * (`INVALID_ARGUMENT`) unless that run exists, belongs to `upstream.workflowId` and has ended in
     * `upstream.status`; the new run then carries it (`RunRecord.upstream`, the task variables
     * `CDKTR_UPSTREAM_*`).
     */
    upstream: UpstreamSchema.optional(),
    /**
     * The person a `dashboard` key acts for (a dashboard token's name): the run records
     * `triggeredBy: "<key name>:<actor>"`. Only keys of role `dashboard` may send it
     * (`PERMISSION_DENIED` otherwise).
     */
    actor: ActorSchema.optional(),
    /**
     * Re-run from the failed tasks of this finished run (FAILED, CRASHED or CANCELLED) of the same
     * workflow: the new run has the source run's params (so `params` must be absent), carries
     * `retryOf`, and takes as done (`TaskRunRecord.reusedFrom`) every task of the current
     * definition that COMPLETED there and all of whose ancestors are taken as done too; the other
     * tasks run. Refused with `RUN_NOT_FOUND` for a run the caller may not read, `BAD_REQUEST`
     * for a run of another workflow, a run not finished, a COMPLETED run, or `params` given.
     */
    retryFrom: z.string().min(1).max(128).optional(),
  })
  .strict();
/** Reply body of `runWorkflow` (port 5561). */
export const RunWorkflowReplySchema = z.object({
  runId: z.string(),
  /** The key was seen before: this is the first run's id, nothing new was created. */
  duplicate: z.boolean(),
  /** Refused by the `skip` overlap policy; recorded as a SKIPPED run. Not retryable. */
  skipped: z.boolean(),
  status: RunStatusSchema,
});

/** Most triggers one `runWorkflows` request may carry. */
export const MAX_BATCH_TRIGGERS = 1000;
/**
 * Request body of `runWorkflows` (port 5561): many triggers in one request, stored together (one
 * commit, or a few for a large batch). Each item is a `runWorkflow` request and is authorised,
 * validated, deduplicated and answered on its own.
 */
export const RunWorkflowsRequestSchema = z
  .object({ items: z.array(RunWorkflowRequestSchema).min(1).max(MAX_BATCH_TRIGGERS) })
  .strict();
/** The answer to one item of `runWorkflows`: its `runWorkflow` reply, or its error. */
export const RunWorkflowsItemSchema = z.discriminatedUnion("ok", [
  RunWorkflowReplySchema.extend({ ok: z.literal(true) }),
  z.object({ ok: z.literal(false), error: WireErrorSchema }),
]);
/** Type of {@link RunWorkflowsItemSchema}. */
export type RunWorkflowsItem = z.infer<typeof RunWorkflowsItemSchema>;
/** Reply body of `runWorkflows` (port 5561): one result per item, in the request's order. */
export const RunWorkflowsReplySchema = z.object({ results: z.array(RunWorkflowsItemSchema) });

/** Request body of `cancelRun` (port 5561). */
export const CancelRunRequestSchema = z
  .object({
    runId: z.string().min(1),
    /** The person a `dashboard` key acts for, as in `runWorkflow` (logged, and in the run's message). */
    actor: ActorSchema.optional(),
  })
  .strict();
/** Reply body of `cancelRun` (port 5561). */
export const CancelRunReplySchema = z.object({
  runId: z.string(),
  status: RunStatusSchema,
  /** False when the run had already finished. */
  cancelled: z.boolean(),
});

/** Request body of `getRun` (port 5561). */
export const GetRunRequestSchema = z.object({ runId: z.string().min(1) }).strict();
/** Reply body of `getRun` (port 5561). */
export const GetRunReplySchema = z.object({
  run: RunRecordSchema,
  tasks: z.array(TaskRunRecordSchema),
});

/** Request body of `listRuns` (port 5561). */
export const ListRunsRequestSchema = z
  .object({
    workflowId: z.string().optional(),
    status: z.array(RunStatusSchema).optional(),
    source: z.string().optional(),
    /** createdAt >= since */
    since: IsoTimeSchema.optional(),
    /** createdAt < until */
    until: IsoTimeSchema.optional(),
    /**
     * Only finished runs with finishedAt >= this instant, ordered by finishedAt (then run id):
     * how a follower of run outcomes catches up. Not combinable with `scheduledOnly`.
     */
    finishedSince: IsoTimeSchema.optional(),
    /** Only runs carrying `scheduledFor`, ordered by it (the latest recorded occurrence). */
    scheduledOnly: z.boolean().optional(),
    order: z.enum(["asc", "desc"]).optional(),
    limit: Limit.optional(),
    cursor: Cursor.optional(),
  })
  .strict()
  .refine((r) => r.finishedSince === undefined || r.scheduledOnly !== true, {
    error: "finishedSince orders by finishedAt and scheduledOnly by scheduledFor: give one of them",
    path: ["finishedSince"],
  });
/** Reply body of `listRuns` (port 5561). */
export const ListRunsReplySchema = z.object({
  runs: z.array(RunRecordSchema),
  nextCursor: z.string().nullable(),
});

// --- logs -------------------------------------------------------------------------------------

/** Request body of `queryLogs` (port 5561). */
export const QueryLogsRequestSchema = z
  .object({
    runId: z.string().optional(),
    workflowId: z.string().optional(),
    taskId: z.string().optional(),
    /** time >= since */
    since: IsoTimeSchema.optional(),
    /** time < until */
    until: IsoTimeSchema.optional(),
    /** Minimum level: `warn` returns warn and error lines. */
    level: LogLevelSchema.optional(),
    order: z.enum(["asc", "desc"]).optional(),
    limit: Limit.optional(),
    cursor: Cursor.optional(),
  })
  .strict();
/** Reply body of `queryLogs` (port 5561). */
export const QueryLogsReplySchema = z.object({
  lines: z.array(LogLineSchema),
  nextCursor: z.string().nullable(),
});

/** Sent by agents on the log-ingest channel (port 5562), never on the API channel. */
export const LogBatchRequestSchema = z
  .object({
    agentId: z.string().min(1),
    lines: z.array(LogLineSchema).min(1).max(10_000),
    /** The assignment token of each run the lines belong to (required when authentication is on). */
    tokens: z.record(z.string().min(1), z.string().min(1).max(256)).optional(),
  })
  .strict();
/** Reply body of `logBatch` (port 5562). */
export const LogBatchReplySchema = z.object({
  /** Lines newly stored. */
  stored: z.number().int().min(0),
  /** Lines already stored before (resends). */
  duplicates: z.number().int().min(0),
});

// --- agents (the schemas of their own verbs: agent-messages.ts) -------------------------------

/** Agents per `listAgents` page when the request names no `limit`. */
export const DEFAULT_AGENT_PAGE_SIZE = 100;
/**
 * Request body of `listAgents` (port 5561): one page of agents in id order, at most `limit`
 * (default {@link DEFAULT_AGENT_PAGE_SIZE}) and at most half the message size limit; pass the
 * reply's `nextCursor` as `cursor` for the next page. `{}` is the first page.
 */
export const ListAgentsRequestSchema = z
  .object({
    limit: Limit.optional(),
    cursor: Cursor.optional(),
  })
  .strict();
/** Reply body of `listAgents` (port 5561); `nextCursor` is null on the last page (and absent from principals before paging). */
export const ListAgentsReplySchema = z.object({
  agents: z.array(AgentRecordSchema),
  nextCursor: z.string().nullable().default(null),
});

// --- the verb table ---------------------------------------------------------------------------

interface VerbSpec<Req extends z.ZodType, Rep extends z.ZodType> {
  request: Req;
  reply: Rep;
  /** Safe to resend after a timeout or lost reply. */
  idempotent: boolean;
}
function verb<Req extends z.ZodType, Rep extends z.ZodType>(
  request: Req,
  reply: Rep,
  idempotent: boolean,
): VerbSpec<Req, Rep> {
  return { request, reply, idempotent };
}

/**
 * Verbs served on the API channel (port 5561). `runWorkflow` and `runWorkflows` are idempotent
 * because the client always sends an idempotency key (per item); `cancelRun` because cancelling
 * twice is harmless.
 */
export const API_VERBS = {
  ping: verb(PingRequestSchema, PingReplySchema, true),
  hello: verb(HelloRequestSchema, HelloReplySchema, true),
  listWorkflows: verb(ListWorkflowsRequestSchema, ListWorkflowsReplySchema, true),
  getWorkflow: verb(GetWorkflowRequestSchema, GetWorkflowReplySchema, true),
  runWorkflow: verb(RunWorkflowRequestSchema, RunWorkflowReplySchema, true),
  runWorkflows: verb(RunWorkflowsRequestSchema, RunWorkflowsReplySchema, true),
  cancelRun: verb(CancelRunRequestSchema, CancelRunReplySchema, true),
  getRun: verb(GetRunRequestSchema, GetRunReplySchema, true),
  listRuns: verb(ListRunsRequestSchema, ListRunsReplySchema, true),
  queryLogs: verb(QueryLogsRequestSchema, QueryLogsReplySchema, true),
  registerAgent: verb(RegisterAgentRequestSchema, RegisterAgentReplySchema, true),
  heartbeat: verb(HeartbeatRequestSchema, HeartbeatReplySchema, true),
  /** Not idempotent: a resent fetch could take a second run. Leases recover lost replies. */
  fetchWork: verb(FetchWorkRequestSchema, FetchWorkReplySchema, false),
  confirmAssignment: verb(ConfirmAssignmentRequestSchema, ConfirmAssignmentReplySchema, true),
  runStatus: verb(RunStatusUpdateRequestSchema, RunStatusUpdateReplySchema, true),
  taskStatus: verb(TaskStatusUpdateRequestSchema, TaskStatusUpdateReplySchema, true),
  listAgents: verb(ListAgentsRequestSchema, ListAgentsReplySchema, true),
  enrollKey: verb(EnrollKeyRequestSchema, EnrollKeyReplySchema, true),
  listKeys: verb(ListKeysRequestSchema, ListKeysReplySchema, true),
  revokeKey: verb(RevokeKeyRequestSchema, RevokeKeyReplySchema, true),
} as const;

/** Verbs served on the log-ingest channel (port 5562). */
export const LOG_VERBS = {
  ping: verb(PingRequestSchema, PingReplySchema, true),
  hello: verb(HelloRequestSchema, HelloReplySchema, true),
  logBatch: verb(LogBatchRequestSchema, LogBatchReplySchema, true),
} as const;

/** A table of verbs: name -> request/reply schemas and whether retrying is safe. */
export type VerbTable = Record<string, VerbSpec<z.ZodType, z.ZodType>>;
/** The verbs of the API channel (port 5561), see {@link API_VERBS}. */
export type ApiVerbs = typeof API_VERBS;
/** The verbs of the log-ingest channel (port 5562), see {@link LOG_VERBS}. */
export type LogVerbs = typeof LOG_VERBS;
/** Name of an API verb. */
export type ApiVerb = keyof ApiVerbs;
/** Request body type of verb V (what the caller passes). */
export type RequestOf<T extends VerbTable, V extends keyof T> = z.input<T[V]["request"]>;
/** Request body type of verb V after validation (what a handler receives). */
export type ParsedRequestOf<T extends VerbTable, V extends keyof T> = z.output<T[V]["request"]>;
/** Reply body type of verb V. */
export type ReplyOf<T extends VerbTable, V extends keyof T> = z.output<T[V]["reply"]>;

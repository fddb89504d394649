/**
 * The role matrix of the secure wire: which verbs each key role may call, which runs it may read,
 * which idempotency keys and workflows it may use, and which publish topics it may receive. This
 * file is the only place the rules live; docs/security.md shows the same table (a test compares
 * them). `identity` null means authentication is off: everything is allowed.
 */
import { API_VERBS, LOG_VERBS, type KeyIdentity, type KeyRole } from "@cdktr/protocol";

/** A verb of the API or log-ingest channel. */
export type Verb = keyof typeof API_VERBS | keyof typeof LOG_VERBS;

/** Every verb of both channels, in table order. */
export const ALL_VERBS: readonly Verb[] = [
  ...new Set<Verb>([...(Object.keys(API_VERBS) as Verb[]), ...(Object.keys(LOG_VERBS) as Verb[])]),
];

/** Verbs every role may call. */
export const EVERY_ROLE_VERBS: readonly Verb[] = ["ping", "hello"];

const READ_VERBS: readonly Verb[] = ["listWorkflows", "getWorkflow", "getRun", "listRuns", "queryLogs", "listAgents"];
const TRIGGER_VERBS: readonly Verb[] = [
  "runWorkflow",
  "runWorkflows",
  "listWorkflows",
  "getWorkflow",
  "getRun",
  "listRuns",
  "queryLogs",
];
const AGENT_VERBS: readonly Verb[] = [
  "registerAgent",
  "heartbeat",
  "fetchWork",
  "confirmAssignment",
  "runStatus",
  "taskStatus",
  "logBatch",
];

/** A dashboard process: read everything, trigger and cancel runs on behalf of its signed-in people. */
const DASHBOARD_VERBS: readonly Verb[] = [...READ_VERBS, "runWorkflow", "cancelRun"];

/**
 * The verbs of each role, besides {@link EVERY_ROLE_VERBS}. A trigger and a scheduler read only
 * the runs they triggered (see {@link seesAllRuns}); `operator` may call every verb.
 */
export const ROLE_VERBS: Readonly<Record<KeyRole, readonly Verb[]>> = {
  operator: ALL_VERBS,
  reader: READ_VERBS,
  scheduler: TRIGGER_VERBS,
  trigger: TRIGGER_VERBS,
  agent: AGENT_VERBS,
  dashboard: DASHBOARD_VERBS,
};

/** Whether `identity` may call `verb` (authentication off: always). */
export function permitsVerb(identity: KeyIdentity | null, verb: string): boolean {
  if (identity === null) return true;
  const v = verb as Verb;
  return EVERY_ROLE_VERBS.includes(v) || ROLE_VERBS[identity.role].includes(v);
}

/** The run reads whose scope depends on the role. */
export type RunRead = "getRun" | "listRuns" | "queryLogs";

/**
 * Whether `identity` may read every run with `verb`, or only the runs it triggered: a trigger key
 * reads its own runs only; a scheduler lists every run (catch-up) but reads one run or its logs
 * only when it triggered it; readers and operators read everything.
 */
export function seesAllRuns(identity: KeyIdentity | null, verb: RunRead): boolean {
  if (identity === null) return true;
  switch (identity.role) {
    case "operator":
    case "reader":
    case "dashboard":
      return true;
    case "scheduler":
      return verb === "listRuns";
    case "trigger":
    case "agent":
      return false;
  }
}

/** Whether `identity` may read a run that `triggeredBy` (a key name, null: unauthenticated) triggered. */
export function mayReadRun(identity: KeyIdentity | null, verb: RunRead, triggeredBy: string | null): boolean {
  return seesAllRuns(identity, verb) || (identity !== null && triggeredBy === identity.name);
}

/** Idempotency keys starting with this are reserved for cron occurrences. */
export const CRON_KEY_PREFIX = "cron:";

/**
 * Whether `identity` may name an `actor` (the person it acts for): only a `dashboard` key, whose
 * process signs its people in (authentication off: anyone, as with everything else).
 */
export function mayActFor(identity: KeyIdentity | null): boolean {
  return identity === null || identity.role === "dashboard";
}

/**
 * Who triggered a run: the key's name, `<key name>:<actor>` for a dashboard acting for a person
 * (authentication off: the actor alone, or null).
 */
export function triggeredByOf(identity: KeyIdentity | null, actor: string | undefined): string | null {
  if (actor === undefined) return identity?.name ?? null;
  return identity === null ? actor : `${identity.name}:${actor}`;
}

/** Whether `identity` may use the idempotency key `key`: `cron:` keys are the scheduler's (and an operator's). */
export function mayUseIdempotencyKey(identity: KeyIdentity | null, key: string): boolean {
  if (identity === null || !key.startsWith(CRON_KEY_PREFIX)) return true;
  return identity.role === "scheduler" || identity.role === "operator";
}

/** Whether `identity` may trigger `workflowId`: its `workflows` allow-list, when it has one. */
export function mayTriggerWorkflow(identity: KeyIdentity | null, workflowId: string): boolean {
  return identity === null || identity.workflows === null || identity.workflows.includes(workflowId);
}

/** `runs|` or `runs|<workflow>|`: run state changes of every run, or of one workflow's runs. */
function isRunsPrefix(topic: string): boolean {
  const parts = topic.split("|");
  return parts[0] === "runs" && parts.at(-1) === "" && (parts.length === 2 || (parts.length === 3 && parts[1] !== ""));
}

/** The run a publish topic is about: `runs|<wf>|<run>|`, `tasks|<wf>|<run>|` or `logs|<wf>|<run>|[<task>|]`. */
export function runOfTopic(topic: string): { workflowId: string; runId: string } | null {
  const parts = topic.split("|");
  if (parts.at(-1) !== "") return null;
  const ids = parts.slice(1, -1);
  if (ids.some((p) => p === "")) return null;
  const [kind] = parts;
  const [workflowId, runId] = ids;
  const exact =
    kind === "logs"
      ? ids.length === 2 || ids.length === 3
      : kind === "runs" || kind === "tasks"
        ? ids.length === 2
        : false;
  if (!exact || workflowId === undefined || runId === undefined) return null;
  return { workflowId, runId };
}

/**
 * Whether `identity` may receive the publish topics starting with `topic`: readers, operators and
 * dashboards any; triggers and schedulers `workflows|` and the topics of one run they triggered
 * (`runOf` answers who triggered a run of a workflow, undefined when there is no such run);
 * schedulers also every run's state changes (`runs|`, `runs|<workflow>|`: they follow run outcomes
 * for workflow chaining, and may list every run anyway); agents none. A broader prefix than one
 * run is refused otherwise.
 */
export async function permitsTopic(
  identity: KeyIdentity,
  topic: string,
  runOf: (workflowId: string, runId: string) => Promise<{ triggeredBy: string | null } | undefined>,
): Promise<boolean> {
  switch (identity.role) {
    case "operator":
    case "reader":
    case "dashboard":
      return true;
    case "agent":
      return false;
    case "trigger":
    case "scheduler": {
      if (topic === "workflows|") return true;
      if (identity.role === "scheduler" && isRunsPrefix(topic)) return true;
      const target = runOfTopic(topic);
      if (target === null) return false;
      const run = await runOf(target.workflowId, target.runId);
      return run !== undefined && run.triggeredBy === identity.name;
    }
  }
}

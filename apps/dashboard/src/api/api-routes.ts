/**
 * The dashboard's JSON API over the principal's (see docs/dashboard.md): sessions, runs, logs,
 * workflows, agents and the live streams. Every principal call goes through the dashboard's key;
 * triggers and cancels name the signed-in token as `actor`.
 */
import { z } from "zod";
import { nextOccurrences } from "@cdktr/events";
import {
  IsoTimeSchema,
  LogLevelSchema,
  ParamsSchema,
  RunStatusSchema,
  isCdktrError,
  type Logger,
  type PrincipalClient,
  type RunRecord,
  type WorkflowDefinition,
} from "@cdktr/protocol";
import type { AccessPolicy } from "../auth/access-policy.js";
import type { RateLimiter } from "../auth/rate-limiter.js";
import { readJson, readQuery } from "../http/request-body.js";
import { httpErrors, remoteAddress, sendNoContent } from "../http/respond.js";
import { Router, type Reply } from "../http/router.js";
import type { LiveHub } from "../live/live-hub.js";
import type { TokenRegistry } from "../tokens/token-registry.js";

/** The `source` of runs triggered from the dashboard. */
export const DASHBOARD_SOURCE = "dashboard";
/** How long `/api/workflows` reuses its last answer. */
const WORKFLOWS_CACHE_MS = 2000;
/** Principal calls made at once for the workflows' last runs. */
const LAST_RUNS_CONCURRENCY = 8;

/** What the routes need. */
export interface ApiDeps {
  principal: PrincipalClient;
  policy: AccessPolicy;
  tokens: TokenRegistry;
  signInLimiter: RateLimiter;
  hub: LiveHub;
  logger: Logger;
  /** @default Date.now */
  now?: () => number;
}

const Limit = (max: number, def: number) =>
  z.coerce
    .number({ error: "expected an integer" })
    .int({ error: "expected an integer" })
    .min(1, { error: "expected an integer >= 1" })
    .transform((n) => Math.min(n, max))
    .default(def);
const Cursor = z.string().min(1).max(512);
const IdText = z.string().min(1).max(256);

const RunsQuery = z
  .object({
    workflow: IdText.optional(),
    status: z
      .string()
      .transform((s) =>
        s
          .split(",")
          .map((x) => x.trim())
          .filter((x) => x !== ""),
      )
      .pipe(z.array(RunStatusSchema).max(16))
      .optional(),
    source: z.string().min(1).max(128).optional(),
    since: IsoTimeSchema.optional(),
    until: IsoTimeSchema.optional(),
    cursor: Cursor.optional(),
    limit: Limit(200, 50),
  })
  .strict();

const LogsQuery = z
  .object({
    cursor: Cursor.optional(),
    limit: Limit(1000, 1000),
    task: IdText.optional(),
    level: LogLevelSchema.optional(),
  })
  .strict();

const NoQuery = z.object({}).strict();
const SignInBody = z.object({ token: z.string().min(1).max(256) }).strict();
const CancelBody = z.object({}).strict();
const RerunBody = z.object({ fromFailed: z.boolean(), idempotencyKey: z.string().min(1).max(512).optional() }).strict();
const TriggerBody = z
  .object({ params: ParamsSchema.default({}), idempotencyKey: z.string().min(1).max(512).optional() })
  .strict();

/** A `runWorkflow` request (with `retryFrom` for a re-run from the failed tasks of a run). */
type RunWorkflowRequest = Parameters<PrincipalClient["runWorkflow"]>[0];

/** One workflow in `GET /api/workflows`. */
export interface WorkflowSummary {
  id: string;
  name: string;
  description: string | null;
  cron: string | null;
  timezone: string;
  paramCount: number;
  taskCount: number;
  nextOccurrences: string[];
  lastRuns: { runId: string; status: RunRecord["status"]; createdAt: string }[];
}

/** Build the API router. */
export function apiRoutes(deps: ApiDeps): Router {
  const { principal, policy, tokens, hub, logger } = deps;
  const now = deps.now ?? Date.now;
  let workflowsCache: { at: number; value: Promise<unknown> } | null = null;

  const occurrences = (wf: WorkflowDefinition, n: number): string[] => {
    if (wf.schedule === null) return [];
    try {
      return nextOccurrences(
        { schedule: wf.schedule, timezone: wf.timezone, startTime: wf.startTime },
        new Date(now()),
        n,
      ).map((d) => d.toISOString());
    } catch (e) {
      logger.debug("cannot compute the next occurrences", { workflowId: wf.id, error: String(e) });
      return [];
    }
  };

  const summaries = async (): Promise<unknown> => {
    const list = await principal.listWorkflows({});
    const workflows = [...list.workflows].sort((a, b) => a.id.localeCompare(b.id));
    const out: WorkflowSummary[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const i = next++;
        const wf = workflows[i];
        if (wf === undefined) return;
        const runs = await principal.listRuns({ workflowId: wf.id, limit: 10 });
        out[i] = {
          id: wf.id,
          name: wf.name,
          description: wf.description ?? null,
          cron: wf.cron,
          timezone: wf.timezone,
          paramCount: Object.keys(wf.params).length,
          taskCount: Object.keys(wf.tasks).length,
          nextOccurrences: occurrences(wf, 10),
          lastRuns: runs.runs.map((r) => ({ runId: r.runId, status: r.status, createdAt: r.createdAt })),
        };
      }
    };
    await Promise.all(Array.from({ length: Math.min(LAST_RUNS_CONCURRENCY, workflows.length) }, worker));
    return { workflows: out, errors: list.errors };
  };

  const trigger = async (req: RunWorkflowRequest): Promise<Reply> => {
    const r = await principal.runWorkflow(req);
    return { status: 200, body: { runId: r.runId, duplicate: r.duplicate, skipped: r.skipped, status: r.status } };
  };

  return (
    new Router(policy)
      // --- session --------------------------------------------------------------------------
      .open("GET", "/api/session", async ({ req, url }) => {
        readQuery(url, NoQuery);
        return { status: 200, body: policy.describe(req, policy.session(req)) };
      })
      .open("POST", "/api/session", async ({ req, res }) => {
        const wait = deps.signInLimiter.take(remoteAddress(req));
        if (wait > 0) throw httpErrors.tooManyRequests(wait);
        policy.checkWriteHeaders(req, true);
        const { token } = await readJson(req, SignInBody);
        const record = tokens.verify(token);
        if (record === null) {
          logger.warn("sign-in refused", { remote: remoteAddress(req) });
          throw httpErrors.unauthenticated("this token is not valid (wrong, or revoked)");
        }
        const s = policy.openSession(req, res, record.name, record.role, record.hash);
        logger.info("signed in", { name: s.name, role: s.role, remote: remoteAddress(req) });
        return { status: 200, body: policy.describe(req, s) };
      })
      .open("DELETE", "/api/session", async ({ req, res }) => {
        policy.checkWriteHeaders(req, false);
        policy.closeSession(req, res);
        sendNoContent(res);
        return null;
      })
      // --- runs -----------------------------------------------------------------------------
      .read("GET", "/api/runs", async ({ url }) => {
        const q = readQuery(url, RunsQuery);
        const page = await principal.listRuns({
          ...(q.workflow === undefined ? {} : { workflowId: q.workflow }),
          ...(q.status === undefined || q.status.length === 0 ? {} : { status: q.status }),
          ...(q.source === undefined ? {} : { source: q.source }),
          ...(q.since === undefined ? {} : { since: q.since }),
          ...(q.until === undefined ? {} : { until: q.until }),
          ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
          limit: q.limit,
          order: "desc",
        });
        return { status: 200, body: { runs: page.runs, nextCursor: page.nextCursor } };
      })
      .read("GET", "/api/runs/:runId", async ({ url, params }) => {
        readQuery(url, NoQuery);
        const { run, tasks } = await principal.getRun(runIdOf(params));
        let workflow: WorkflowDefinition | null = null;
        try {
          workflow = (await principal.getWorkflow(run.workflowId)).workflow;
        } catch (e) {
          if (!isCdktrError(e, "WORKFLOW_NOT_FOUND")) throw e;
        }
        return { status: 200, body: { run, tasks, workflow } };
      })
      .read("GET", "/api/runs/:runId/logs", async ({ url, params }) => {
        const q = readQuery(url, LogsQuery);
        const runId = runIdOf(params);
        const page = await principal.queryLogs({
          runId,
          ...(q.task === undefined ? {} : { taskId: q.task }),
          ...(q.level === undefined ? {} : { level: q.level }),
          ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
          limit: q.limit,
          order: "asc",
        });
        return { status: 200, body: { lines: page.lines, nextCursor: page.nextCursor } };
      })
      .read("GET", "/api/runs/:runId/events", async ({ req, res, url, params }) => {
        readQuery(url, NoQuery);
        const { run } = await principal.getRun(runIdOf(params));
        hub.open(req, res, { workflowId: run.workflowId, runId: run.runId });
        return null;
      })
      .write("POST", "/api/runs/:runId/cancel", async ({ req, params, session }) => {
        await readJson(req, CancelBody);
        const r = await principal.cancelRun(runIdOf(params), { actor: session.name });
        logger.info("run cancelled from the dashboard", { runId: r.runId, by: session.name, cancelled: r.cancelled });
        return { status: 200, body: { runId: r.runId, status: r.status, cancelled: r.cancelled } };
      })
      .write("POST", "/api/runs/:runId/rerun", async ({ req, params, session }) => {
        const body = await readJson(req, RerunBody);
        const { run } = await principal.getRun(runIdOf(params));
        const key = body.idempotencyKey === undefined ? {} : { idempotencyKey: body.idempotencyKey };
        const base = { workflowId: run.workflowId, source: DASHBOARD_SOURCE, actor: session.name, ...key };
        logger.info("re-run from the dashboard", { runId: run.runId, fromFailed: body.fromFailed, by: session.name });
        return trigger(body.fromFailed ? { ...base, retryFrom: run.runId } : { ...base, params: run.params });
      })
      // --- workflows ------------------------------------------------------------------------
      .read("GET", "/api/workflows", async ({ url }) => {
        readQuery(url, NoQuery);
        const t = now();
        if (workflowsCache === null || t - workflowsCache.at >= WORKFLOWS_CACHE_MS) {
          const value = summaries();
          workflowsCache = { at: t, value };
          // A failure is not cached.
          value.catch(() => {
            if (workflowsCache?.value === value) workflowsCache = null;
          });
        }
        return { status: 200, body: await workflowsCache.value };
      })
      .read("GET", "/api/workflows/:id", async ({ url, params }) => {
        readQuery(url, NoQuery);
        const id = params.id ?? "";
        const { workflow } = await principal.getWorkflow(id);
        const runs = await principal.listRuns({ workflowId: workflow.id, limit: 20 });
        return { status: 200, body: { workflow, nextOccurrences: occurrences(workflow, 10), lastRuns: runs.runs } };
      })
      .write("POST", "/api/workflows/:id/run", async ({ req, params, session }) => {
        const body = await readJson(req, TriggerBody);
        const workflowId = params.id ?? "";
        logger.info("run triggered from the dashboard", { workflowId, by: session.name });
        return trigger({
          workflowId,
          params: body.params,
          source: DASHBOARD_SOURCE,
          actor: session.name,
          ...(body.idempotencyKey === undefined ? {} : { idempotencyKey: body.idempotencyKey }),
        });
      })
      // --- agents and live ------------------------------------------------------------------
      .read("GET", "/api/agents", async ({ url }) => {
        readQuery(url, NoQuery);
        return { status: 200, body: { agents: await principal.allAgents() } };
      })
      .read("GET", "/api/events", async ({ req, res, url }) => {
        readQuery(url, NoQuery);
        hub.open(req, res, null);
        return null;
      })
  );
}

function runIdOf(params: Readonly<Record<string, string>>): string {
  const id = params.runId ?? "";
  if (id.length === 0 || id.length > 256) throw httpErrors.badRequest("invalid run id");
  return id;
}

import {
  CdktrError,
  isTerminalRunStatus,
  toCdktrError,
  type API_VERBS,
  type ApiVerbs,
  type KeyIdentity,
  type ParsedRequestOf,
  type ReplyOf,
  type RunWorkflowsItem,
} from "@cdktr/protocol";
import { resolveParams } from "@cdktr/workflow";
import {
  CRON_KEY_PREFIX,
  mayActFor,
  mayReadRun,
  mayTriggerWorkflow,
  mayUseIdempotencyKey,
  seesAllRuns,
  triggeredByOf,
} from "../auth/roles.js";
import { batchTriggersBusy, permissionDenied, runNotFound, workflowNotFound } from "../errors.js";
import type { HandlerRegistry } from "../leader/leader-gate.js";
import type { ApiContext } from "./api-context.js";
import { planRetry } from "./retry-source.js";

/** An `actor` from a key that is not a dashboard's. */
function actorNotAllowed(identity: KeyIdentity | null): CdktrError {
  return permissionDenied(
    `only a key of role dashboard may act for a person (\`actor\`); key \`${identity?.name}\` has role ${identity?.role}: leave \`actor\` out`,
    { key: identity?.name ?? null },
  );
}

/**
 * Register the run verbs of clients: `runWorkflow` (validate params, create the run durably,
 * publish it, queue it), `runWorkflows` (the same for each item of a batch, stored together,
 * answered item by item), `cancelRun`, `getRun` and `listRuns`. With authentication, a run records
 * the key that triggered it, its idempotency key lives in that key's scope, and the role rules of
 * `auth/roles.ts` decide which workflows, idempotency keys and runs a key may use or read.
 */
export function registerRunHandlers(server: HandlerRegistry<typeof API_VERBS>, ctx: ApiContext): void {
  // The dispatcher is the current term's: read at each request.
  const { store, workflows, events, logger } = ctx;
  const debugLogging = ctx.config.logLevel === "debug";
  /** {@link triggerOnce}, timed for the metrics when they are served. */
  const trigger = (
    req: ParsedRequestOf<ApiVerbs, "runWorkflow">,
    identity: KeyIdentity | null,
  ): Promise<ReplyOf<ApiVerbs, "runWorkflow">> => {
    const metrics = ctx.metrics;
    if (metrics === null || metrics === undefined) return triggerOnce(req, identity);
    const started = performance.now();
    return triggerOnce(req, identity).then(
      (reply) => {
        metrics.trigger(performance.now() - started, true);
        return reply;
      },
      (e: unknown) => {
        metrics.trigger(performance.now() - started, false);
        throw e;
      },
    );
  };
  /** One trigger, authorised, validated, stored (deduplicated), published and queued. */
  const triggerOnce = async (
    req: ParsedRequestOf<ApiVerbs, "runWorkflow">,
    identity: KeyIdentity | null,
  ): Promise<ReplyOf<ApiVerbs, "runWorkflow">> => {
    if (req.actor !== undefined && !mayActFor(identity)) throw actorNotAllowed(identity);
    if (identity !== null && !mayTriggerWorkflow(identity, req.workflowId)) {
      throw permissionDenied(
        `key \`${identity.name}\` may trigger only ${identity.workflows?.map((w) => `\`${w}\``).join(", ")}, not \`${req.workflowId}\``,
        { key: identity.name, workflowId: req.workflowId },
      );
    }
    if (identity !== null && req.idempotencyKey !== undefined && !mayUseIdempotencyKey(identity, req.idempotencyKey)) {
      throw permissionDenied(
        `idempotency keys starting with \`${CRON_KEY_PREFIX}\` are reserved for the cron occurrences of scheduler keys; key \`${identity.name}\` (role ${identity.role}) must use another key`,
        { key: identity.name, idempotencyKey: req.idempotencyKey },
      );
    }
    const wf = workflows.get(req.workflowId);
    if (wf === undefined) throw workflowNotFound(req.workflowId);
    // A retry runs with its source run's params (checked when it was triggered).
    const retry =
      req.retryFrom === undefined ? null : await planRetry(store, identity, { ...req, retryFrom: req.retryFrom }, wf);
    const requestParams = req.params ?? {};
    const resolved =
      retry === null ? resolveParams(wf.params, requestParams) : { ok: true as const, params: retry.params };
    if (!resolved.ok) {
      throw new CdktrError(
        "INVALID_PARAMS",
        `invalid params for workflow \`${wf.id}\`:\n${resolved.errors.map((e) => `  - ${e}`).join("\n")}`,
        { context: { workflowId: wf.id } },
      );
    }
    if (req.upstream !== undefined) {
      // Chaining: the upstream must be a run that really ended so (the downstream's tasks see it
      // as CDKTR_UPSTREAM_*). Its existence is no secret to a key that may not read it: run ids
      // are random, and the answer names nothing of the run.
      const up = req.upstream;
      const found = await store.getRun(up.runId);
      const problem =
        found === null
          ? `no run ${up.runId} exists`
          : found.run.workflowId !== up.workflowId
            ? `run ${up.runId} is not a run of \`${up.workflowId}\``
            : found.run.status !== up.status
              ? `run ${up.runId} has not ended ${up.status}`
              : null;
      if (problem !== null)
        throw new CdktrError("BAD_REQUEST", `upstream: ${problem}; send the upstream run as it ended`, {
          context: { workflowId: req.workflowId, upstreamRunId: up.runId },
        });
    }
    const { run, duplicate } = await store.createRun({
      runId: ctx.ids.next(),
      workflow: wf,
      params: resolved.params,
      requestParams,
      idempotencyKey: req.idempotencyKey ?? null,
      idempotencyScope: identity?.scope ?? "",
      source: req.source ?? "api",
      triggeredBy: triggeredByOf(identity, req.actor),
      scheduledFor: req.scheduledFor ?? null,
      upstream: req.upstream ?? null,
      retry: retry?.retry ?? null,
    });
    if (!duplicate) {
      // Per trigger, so debug (a JSON line on stdout costs about a quarter of a trigger's time
      // at full rate; the logger formats even filtered records, hence the level check); the
      // run's start and end are logged at info, a skip is logged at info.
      if (run.status === "SKIPPED" || debugLogging) {
        const created = { runId: run.runId, workflowId: run.workflowId, status: run.status, source: run.source };
        if (run.status === "SKIPPED") logger.info("run created", created);
        else logger.debug("run created", created);
      }
      events.run(run);
      if (run.status === "QUEUED")
        ctx.dispatcher.enqueue(
          run,
          wf,
          retry?.retry.reused.map((t) => t.taskId),
        );
    }
    return { runId: run.runId, duplicate, skipped: run.status === "SKIPPED", status: run.status };
  };

  /**
   * Triggers of `runWorkflows` batches in progress, per key (per connection without
   * authentication): each counts as a request against `CDKTR_MAX_REQUESTS_IN_FLIGHT_PER_KEY`, so
   * a batch buys a key no more queued work than single requests would.
   */
  const batchItems = new Map<string, number>();
  const batchLimit = ctx.config.maxRequestsInFlightPerKey;

  server
    .handle("runWorkflow", (req, rpc) => trigger(req, rpc.identity))
    // Every item's createRun is queued in this same turn, so the store commits them together;
    // each item settles on its own.
    .handle("runWorkflows", async ({ items }, rpc) => {
      const who = rpc.identity === null ? `connection ${rpc.peer}` : `key \`${rpc.identity.name}\``;
      const inFlight = batchItems.get(who) ?? 0;
      if (inFlight + items.length > batchLimit) throw batchTriggersBusy(who, inFlight, items.length, batchLimit);
      batchItems.set(who, inFlight + items.length);
      try {
        const results = await Promise.all(
          items.map((item) =>
            trigger(item, rpc.identity).then(
              (reply): RunWorkflowsItem => ({ ok: true, ...reply }),
              (e: unknown): RunWorkflowsItem => {
                const err = toCdktrError(e);
                // As a failed runWorkflow's reply would be: anything but a CdktrError is a bug.
                if (!(e instanceof CdktrError)) {
                  logger.error("runWorkflows: an item failed", { workflowId: item.workflowId, error: err.message });
                }
                return { ok: false, error: err.toWire() };
              },
            ),
          ),
        );
        return { results };
      } finally {
        const left = (batchItems.get(who) ?? 0) - items.length;
        if (left > 0) batchItems.set(who, left);
        else batchItems.delete(who);
      }
    })
    .handle("cancelRun", async ({ runId, actor }, rpc) => {
      if (actor !== undefined && !mayActFor(rpc.identity)) throw actorNotAllowed(rpc.identity);
      // Commit first, then memory: a failed commit leaves the run queued (and cancellable). A
      // fetch meanwhile may hand the run out, but its assignment is written after this cancel
      // (one ordered commit queue), is refused by the database and forgotten, as is its confirm.
      const res = await store.cancelRun(runId);
      if (res.agentMustStop) ctx.dispatcher.requestCancel(runId);
      else if (isTerminalRunStatus(res.run.status)) ctx.dispatcher.remove(runId);
      if (res.cancelled && !res.agentMustStop) events.run(res.run);
      if (res.cancelled)
        logger.info("run cancel", {
          runId,
          status: res.run.status,
          agentMustStop: res.agentMustStop,
          by: triggeredByOf(rpc.identity, actor),
        });
      return { runId, status: res.run.status, cancelled: res.cancelled };
    })
    .handle("getRun", async ({ runId }, rpc) => {
      const r = await store.getRun(runId);
      if (r === null) throw runNotFound(runId);
      if (!mayReadRun(rpc.identity, "getRun", r.run.triggeredBy)) throw runNotFound(runId, rpc.identity);
      return r;
    })
    .handle("listRuns", (req, rpc) => {
      const identity = rpc.identity;
      return identity === null || seesAllRuns(identity, "listRuns")
        ? store.listRuns(req)
        : store.listRuns(req, { triggeredBy: identity.name });
    });
}

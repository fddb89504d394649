import type { RunRecord, TaskRunRecord } from "@cdktr/protocol";
import type { CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { elapsed, formatInstant } from "../format/duration.js";
import { formatLogLine } from "../format/log-line.js";
import { terminalSafe } from "../format/terminal-text.js";
import { parseParamArgs } from "../params.js";
import { RunWatcher } from "../watch/run-watcher.js";

/** Options of `cdktr run`. */
export interface RunOptions {
  param?: string[];
  key?: string;
  wait?: boolean;
  follow?: boolean;
  json?: boolean;
  /** Re-run this finished run from its failed tasks (no workflow id, no params). */
  retryFrom?: string;
}

/** How a task taken as done by a retry is shown: `reused (run <id>)`. */
export function reusedLabel(t: Pick<TaskRunRecord, "reusedFrom">): string | null {
  return t.reusedFrom == null ? null : `reused (run ${t.reusedFrom})`;
}

function taskLine(ctx: CommandContext, raw: TaskRunRecord): string {
  const t = terminalSafe(raw);
  const s = ctx.style;
  const time = s.dim(formatInstant(t.finishedAt ?? t.startedAt ?? new Date().toISOString()));
  const reused = reusedLabel(t);
  if (reused !== null) return `${time}  task ${s.bold(t.taskId)} ${s.status(t.status)} ${s.dim(reused)}`;
  const detail: string[] = [];
  if (t.status === "RUNNING") detail.push(`attempt ${t.attempt}`);
  if (t.exitCode !== null) detail.push(`exit ${t.exitCode}`);
  if (t.signal !== null) detail.push(t.signal);
  if (t.reason !== null && t.reason !== "exit_code") detail.push(t.reason);
  if (t.finishedAt !== null && t.startedAt !== null) detail.push(elapsed(t.startedAt, t.finishedAt));
  if (t.message !== null && t.status !== "RUNNING" && t.status !== "COMPLETED") detail.push(t.message);
  return `${time}  task ${s.bold(t.taskId)} ${s.status(t.status)}${detail.length > 0 ? s.dim(` (${detail.join(", ")})`) : ""}`;
}

function runLine(ctx: CommandContext, raw: RunRecord): string {
  const r = terminalSafe(raw);
  const s = ctx.style;
  const time = s.dim(formatInstant(r.finishedAt ?? r.startedAt ?? r.createdAt));
  const detail: string[] = [];
  if (r.status === "ASSIGNED" || r.status === "RUNNING") {
    if (r.agentId !== null) detail.push(`agent ${r.agentId}`);
  }
  if (r.finishedAt !== null) detail.push(elapsed(r.startedAt ?? r.createdAt, r.finishedAt));
  if (r.reason !== null) detail.push(r.reason);
  if (r.message !== null) detail.push(r.message);
  return `${time}  run ${s.status(r.status)}${detail.length > 0 ? s.dim(` (${detail.join(", ")})`) : ""}`;
}

/**
 * `cdktr run <workflowId>`: trigger a run and print its id; `--wait` follows its tasks live and
 * exits 0 only when it COMPLETED; `--follow` also prints its log lines. `cdktr run --retry-from
 * <runId>`: re-run a finished run of any workflow from its failed tasks (its workflow and params).
 */
export async function runCommand(
  ctx: CommandContext,
  workflowArg: string | undefined,
  opts: RunOptions,
): Promise<number> {
  const retryFrom = opts.retryFrom;
  if (retryFrom !== undefined && workflowArg !== undefined) {
    throw new CliError(
      `--retry-from takes no workflow id: the retry runs the workflow of run ${terminalSafe(retryFrom)}; use \`cdktr run --retry-from ${terminalSafe(retryFrom)}\``,
      2,
    );
  }
  if (retryFrom !== undefined && (opts.param ?? []).length > 0) {
    throw new CliError(
      `--retry-from takes no --param: a retry runs with the params of run ${terminalSafe(retryFrom)} (to change them, trigger the workflow without --retry-from)`,
      2,
    );
  }
  if (retryFrom === undefined && workflowArg === undefined) {
    throw new CliError("missing workflow id: `cdktr run <workflowId>` (or `cdktr run --retry-from <runId>`)", 2);
  }
  const params = parseParamArgs(opts.param ?? []);
  const watching = opts.wait === true || opts.follow === true;
  const client = ctx.client();
  // A retry runs its source run's workflow: ask the principal which one.
  const workflowId =
    retryFrom === undefined ? (workflowArg as string) : (await client.getRun(retryFrom)).run.workflowId;
  const key = ctx.key();
  let subscribe: "workflow" | "run" = "workflow";
  if (watching && key !== null) {
    // The key's role says what it may receive: operator and reader keys every topic (subscribe to
    // the workflow before triggering), trigger and scheduler keys only the runs they triggered.
    await client.ping();
    const role = client.identity?.role;
    if (role !== "operator" && role !== "reader") subscribe = "run";
  }
  const watcher = watching
    ? new RunWatcher({
        client,
        publishEndpoint: await ctx.publishEndpoint(),
        leaderWatch: client.leaderWatch,
        workflowId,
        key,
        subscribe,
        follow: opts.follow === true,
        onRun: (r) => ctx.out(runLine(ctx, r)),
        onTask: (t) => {
          if (t.status !== "PENDING") ctx.out(taskLine(ctx, t));
        },
        onLog: (l) => ctx.out(formatLogLine(l, ctx.style)),
        onUnreachable: () =>
          ctx.err(
            ctx.style.yellow(
              "warning: the principal stopped answering; still waiting for the run (Ctrl-C stops watching)",
            ),
          ),
        onReachable: () => ctx.err(ctx.style.dim("the principal answers again")),
        onMissing: (n) =>
          ctx.err(ctx.style.yellow(`warning: ${n} log line(s) never arrived (see \`cdktr logs --run <id>\` later)`)),
      })
    : undefined;
  try {
    const reply = await client.runWorkflow({
      workflowId,
      ...(retryFrom === undefined ? {} : { retryFrom }),
      ...(Object.keys(params).length > 0 ? { params } : {}),
      ...(opts.key === undefined ? {} : { idempotencyKey: opts.key }),
      source: "cli",
    });
    if (opts.json === true && !watching) {
      ctx.out(JSON.stringify(reply));
      return 0;
    }
    ctx.out(terminalSafe(reply.runId));
    if (reply.duplicate)
      ctx.err(
        ctx.style.dim(
          `(key ${terminalSafe(opts.key ?? "")} was used before: this is that run, nothing new was started)`,
        ),
      );
    if (reply.skipped) {
      ctx.err(`run ${terminalSafe(reply.runId)} SKIPPED: the workflow allows no more active runs (overlap: skip)`);
      return watching ? 1 : 0;
    }
    if (watcher === undefined) return 0;
    const abort = new AbortController();
    void ctx.io.interrupted.then(() => abort.abort(new CliError("interrupted", 130)));
    let final: RunRecord;
    try {
      final = await watcher.watch(reply.runId, abort.signal);
    } catch (e) {
      if (abort.signal.aborted) {
        const id = terminalSafe(reply.runId);
        ctx.err(`stopped watching; run ${id} goes on (\`cdktr cancel ${id}\` stops it)`);
        return 130;
      }
      throw e;
    }
    const ok = final.status === "COMPLETED";
    ctx.out(
      `run ${terminalSafe(final.runId)} ${ctx.style.status(final.status)} in ${elapsed(final.startedAt ?? final.createdAt, final.finishedAt)}`,
    );
    return ok ? 0 : 1;
  } finally {
    await watcher?.close();
  }
}

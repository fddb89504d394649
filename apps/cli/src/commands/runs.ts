import { RUN_STATUSES, type RunRecord, type RunStatus } from "@cdktr/protocol";
import type { CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { elapsed, formatInstant } from "../format/duration.js";
import { renderTable } from "../format/table.js";
import { terminalSafe } from "../format/terminal-text.js";
import { reusedLabel } from "./run.js";

/** Parse `--status FAILED,CRASHED` (case-insensitive). */
export function parseStatuses(text: string): RunStatus[] {
  const out: RunStatus[] = [];
  for (const raw of text.split(",")) {
    const s = raw.trim().toUpperCase();
    if (s === "") continue;
    if (!(RUN_STATUSES as readonly string[]).includes(s)) {
      throw new CliError(`unknown status ${JSON.stringify(raw.trim())}: use one of ${RUN_STATUSES.join(", ")}`, 2);
    }
    out.push(s as RunStatus);
  }
  return out;
}

/** Parse a positive count option such as `--limit`. */
export function parseCount(text: string, what: string, max = 100_000): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > max)
    throw new CliError(`${what}: expected a whole number from 1 to ${max}, got ${JSON.stringify(text)}`, 2);
  return n;
}

/** One table row per run (text from the principal shown with its control characters escaped). */
export function runRows(ctx: CommandContext, runs: readonly RunRecord[]): string[][] {
  return terminalSafe(runs).map((r) => [
    r.runId,
    r.workflowId,
    ctx.style.status(r.status),
    r.source,
    r.triggeredBy ?? "-",
    formatInstant(r.createdAt),
    elapsed(r.startedAt, r.finishedAt),
    r.agentId ?? "-",
  ]);
}

/** `cdktr runs`: the latest runs, newest first. */
export async function listRunsCommand(
  ctx: CommandContext,
  opts: { workflow?: string; status?: string; source?: string; limit?: string; json?: boolean },
): Promise<number> {
  const limit = opts.limit === undefined ? 20 : parseCount(opts.limit, "--limit");
  const statuses = opts.status === undefined ? undefined : parseStatuses(opts.status);
  const runs: RunRecord[] = [];
  let cursor: string | undefined;
  while (runs.length < limit) {
    const page = await ctx.client().listRuns({
      order: "desc",
      limit: Math.min(1000, limit - runs.length),
      ...(opts.workflow === undefined ? {} : { workflowId: opts.workflow }),
      ...(statuses === undefined ? {} : { status: statuses }),
      ...(opts.source === undefined ? {} : { source: opts.source }),
      ...(cursor === undefined ? {} : { cursor }),
    });
    runs.push(...page.runs);
    if (page.nextCursor === null || page.runs.length === 0) break;
    cursor = page.nextCursor;
  }
  if (opts.json === true) {
    ctx.out(JSON.stringify(runs, null, 2));
    return 0;
  }
  ctx.io.stdout.write(
    renderTable(["RUN", "WORKFLOW", "STATUS", "SOURCE", "BY", "CREATED", "DURATION", "AGENT"], runRows(ctx, runs), {
      header: ctx.style.dim,
      empty: "no runs",
    }),
  );
  return 0;
}

/** `cdktr runs show <runId>`: the run and each task's state, attempts, duration, exit code and reason. */
export async function showRunCommand(ctx: CommandContext, runId: string, opts: { json?: boolean }): Promise<number> {
  const reply = await ctx.client().getRun(runId);
  if (opts.json === true) {
    ctx.out(JSON.stringify({ run: reply.run, tasks: reply.tasks }, null, 2));
    return 0;
  }
  // Reasons and messages come from tasks and agents: printed with their control characters escaped.
  const { run, tasks } = terminalSafe(reply);
  const s = ctx.style;
  ctx.out(
    `${s.bold(run.runId)}  ${run.workflowId}  ${s.status(run.status)}${run.retryOf == null ? "" : `  retry of ${run.retryOf}`}`,
  );
  ctx.out(`source:    ${run.source}${run.scheduledFor === null ? "" : ` (scheduled for ${run.scheduledFor})`}`);
  ctx.out(`by key:    ${run.triggeredBy ?? "- (triggered with authentication off)"}`);
  ctx.out(`created:   ${formatInstant(run.createdAt)}`);
  ctx.out(`started:   ${formatInstant(run.startedAt)}`);
  ctx.out(`finished:  ${formatInstant(run.finishedAt)}  (${elapsed(run.startedAt, run.finishedAt)})`);
  ctx.out(`agent:     ${run.agentId ?? "-"}`);
  const params = Object.entries(run.params);
  if (params.length > 0) ctx.out(`params:    ${params.map(([k, v]) => `${k}=${String(v)}`).join(" ")}`);
  if (run.reason !== null || run.message !== null)
    ctx.out(`reason:    ${[run.reason, run.message].filter((x) => x !== null).join(": ")}`);
  ctx.out();
  ctx.io.stdout.write(
    renderTable(
      ["TASK", "STATUS", "ATTEMPT", "STARTED", "DURATION", "EXIT", "REASON"],
      tasks.map((t) => [
        t.taskId,
        reusedLabel(t) === null ? s.status(t.status) : `${s.status(t.status)} ${s.dim(reusedLabel(t) ?? "")}`,
        String(t.attempt),
        formatInstant(t.startedAt),
        elapsed(t.startedAt, t.finishedAt),
        t.exitCode !== null ? String(t.exitCode) : (t.signal ?? "-"),
        [t.reason, t.message].filter((x) => x !== null).join(": ") || "-",
      ]),
      { header: s.dim, alignRight: [2], empty: "no tasks yet (the run has not started)" },
    ),
  );
  return 0;
}

/** `cdktr cancel <runId>`. */
export async function cancelCommand(ctx: CommandContext, runId: string): Promise<number> {
  const reply = terminalSafe(await ctx.client().cancelRun(runId));
  if (reply.cancelled) ctx.out(`run ${reply.runId}: cancel requested (${ctx.style.status(reply.status)})`);
  else ctx.out(`run ${reply.runId} already finished (${ctx.style.status(reply.status)}): nothing to cancel`);
  return 0;
}

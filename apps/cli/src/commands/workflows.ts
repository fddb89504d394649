import { nextOccurrences } from "@cdktr/events";
import type { WorkflowDefinition, WorkflowLoadError } from "@cdktr/protocol";
import { renderDagTree } from "@cdktr/workflow";
import type { CommandContext } from "../context.js";
import { formatDuration, formatInstant } from "../format/duration.js";
import { renderTable } from "../format/table.js";
import { escapeControl, terminalSafe } from "../format/terminal-text.js";

/** The next occurrence of a workflow's schedule after `now`, or null (no cron, or invalid). */
export function nextRun(wf: Pick<WorkflowDefinition, "schedule" | "timezone" | "startTime">, now: Date, n = 1): Date[] {
  if (wf.schedule === null) return [];
  try {
    return nextOccurrences({ schedule: wf.schedule, timezone: wf.timezone, startTime: wf.startTime }, now, n);
  } catch {
    return [];
  }
}

/**
 * `file:line:column: message` for a workflow load error (the form editors and CI understand),
 * control characters escaped (a message can quote the file).
 */
export function formatLoadError(e: WorkflowLoadError, fileOverride?: string): string {
  const file = fileOverride ?? e.file;
  const where = e.line === null ? file : e.column === null ? `${file}:${e.line}` : `${file}:${e.line}:${e.column}`;
  const path = e.path !== null && e.path !== "" && !e.message.includes(e.path) ? `${e.path}: ` : "";
  return escapeControl(`${where}: ${path}${e.message}`);
}

/** `cdktr workflows`: id, name, cron, timezone and next run of every workflow. */
export async function listWorkflowsCommand(ctx: CommandContext, opts: { json?: boolean }): Promise<number> {
  const reply = await ctx.client().listWorkflows();
  const workflows = [...reply.workflows].sort((a, b) => a.id.localeCompare(b.id));
  if (opts.json === true) {
    ctx.out(JSON.stringify(workflows, null, 2));
    return 0;
  }
  const now = new Date();
  const rows = workflows.map((raw) => {
    const wf = terminalSafe(raw);
    const next = nextRun(raw, now)[0];
    return [
      ctx.style.bold(wf.id),
      wf.name,
      wf.cron ?? "-",
      wf.cron === null ? "-" : wf.timezone,
      next === undefined ? "-" : formatInstant(next.toISOString(), { timeZone: raw.timezone, withZone: true }),
    ];
  });
  ctx.io.stdout.write(
    renderTable(["ID", "NAME", "CRON", "TIMEZONE", "NEXT RUN"], rows, {
      header: ctx.style.dim,
      empty: "no workflows: add YAML files to the principal's workflow directory (CDKTR_WORKFLOW_DIR)",
    }),
  );
  for (const e of reply.errors) ctx.err(`${ctx.style.yellow("warning")}: ${formatLoadError(e)}`);
  return 0;
}

function describeTask(t: WorkflowDefinition["tasks"][string]): string {
  if (t.config.type === "subprocess") return [t.config.cmd, ...t.config.args].map(quoteArg).join(" ");
  const withs = t.config.isUvProject ? [] : t.config.packages.flatMap((p) => ["--with", p]);
  return [t.config.uvPath, "run", ...withs, t.config.scriptPath].map(quoteArg).join(" ");
}

function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** `cdktr workflow show <id>`: tasks, the DAG as a tree, and the next 5 runs in the workflow's timezone. */
export async function showWorkflowCommand(
  ctx: CommandContext,
  workflowId: string,
  opts: { json?: boolean },
): Promise<number> {
  const { workflow } = await ctx.client().getWorkflow(workflowId);
  if (opts.json === true) {
    ctx.out(JSON.stringify(workflow, null, 2));
    return 0;
  }
  const wf = terminalSafe(workflow);
  const s = ctx.style;
  ctx.out(`${s.bold(wf.id)}  ${wf.name}`);
  if (wf.description !== null && wf.description !== "") ctx.out(s.dim(wf.description));
  ctx.out(`file:      ${wf.path}`);
  ctx.out(`cron:      ${wf.cron ?? "-"}${wf.cron !== null ? `  (${wf.timezone})` : ""}`);
  if (wf.startTime !== null) ctx.out(`starts:    ${wf.startTime}`);
  ctx.out(`overlap:   ${wf.overlap}${wf.maxActiveRuns === null ? "" : `, at most ${wf.maxActiveRuns} active`}`);
  if (wf.agentLabels.length > 0) ctx.out(`labels:    ${wf.agentLabels.join(", ")}`);
  const params = Object.entries(wf.params);
  if (params.length > 0) {
    ctx.out();
    ctx.out(s.bold("Parameters"));
    ctx.io.stdout.write(
      renderTable(
        ["NAME", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"],
        params.map(([name, p]) => [
          name,
          p.type === "enum" ? `enum(${(p.values ?? []).join("|")})` : p.type,
          p.required ? "yes" : "no",
          p.default === undefined ? "-" : String(p.default),
          p.description ?? "",
        ]),
        { header: s.dim },
      ),
    );
  }
  ctx.out();
  ctx.out(s.bold("Tasks"));
  ctx.io.stdout.write(
    renderTable(
      ["ID", "NAME", "COMMAND", "DEPENDS", "TIMEOUT", "RETRIES"],
      Object.values(wf.tasks).map((t) => [
        t.id,
        t.name,
        describeTask(t),
        t.depends.length === 0 ? "-" : t.depends.join(", "),
        t.timeoutMs === null ? "-" : formatDuration(t.timeoutMs),
        t.retries.count === 0 ? "-" : String(t.retries.count),
      ]),
      { header: s.dim },
    ),
  );
  ctx.out();
  ctx.out(s.bold("DAG"));
  const dagInput = Object.fromEntries(Object.values(wf.tasks).map((t) => [t.id, { depends: t.depends }]));
  ctx.out(renderDagTree(dagInput));
  ctx.out();
  ctx.out(s.bold(`Next runs (${wf.timezone})`));
  if (wf.schedule === null) {
    ctx.out("- (no cron: runs only when triggered)");
  } else {
    const next = nextRun(workflow, new Date(), 5);
    if (next.length === 0) ctx.out("- (no upcoming occurrence)");
    for (const d of next)
      ctx.out(
        `${formatInstant(d.toISOString(), { timeZone: workflow.timezone, withZone: true })}  ${s.dim(d.toISOString())}`,
      );
  }
  return 0;
}

/**
 * Task templates: `{{ params.date }}`, `{{ run.id }}`, ... in a task's `args`, `env` values and
 * `working_directory`. The loader checks them ({@link checkTaskTemplate}); the agent expands them
 * right before the spawn ({@link expandTaskTemplate}), each inside its own string, never through
 * a shell. One grammar for both, so what loads is what runs:
 *
 * - `{{ name }}`: a plain dotted name (whitespace inside the braces optional), one of
 *   {@link TASK_TEMPLATE_NAMES} or `params.<declared param>`;
 * - `{{ "{{" }}` (or `{{ '{{' }}`): a literal `{{` ({@link TEMPLATE_ESCAPE});
 * - a `}}` outside a template is literal text.
 */
import type { ParamDefinition, ParamValue, Params } from "@cdktr/protocol";
import { suggestKey } from "../loader/suggest.js";
import { withParamDefaults } from "../params/resolve-params.js";

/** How a literal `{{` is written in a task template (`{{ '{{' }}` works too). */
export const TEMPLATE_ESCAPE = '{{ "{{" }}';

/** The names every task template may use, besides `params.<name>` for each declared param. */
export const TASK_TEMPLATE_NAMES = [
  "run.id",
  "run.workflow_id",
  "run.scheduled_for",
  "run.source",
  "task.id",
  "upstream.run_id",
  "upstream.workflow_id",
  "upstream.status",
] as const;

/** One piece of a parsed template: literal text, or a name to substitute. */
export type TemplatePart = { kind: "text"; text: string } | { kind: "name"; name: string; index: number };

/** A problem of a template: `index` is the offset of its `{{` in the text. */
export interface TemplateProblem {
  index: number;
  message: string;
}

/** Result of {@link parseTaskTemplate}: the parts, and the syntax problems (none when valid). */
export interface ParsedTemplate {
  parts: TemplatePart[];
  problems: TemplateProblem[];
}

const DOTTED_NAME = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const ESCAPES: readonly string[] = ['"{{"', "'{{'"];
const ESCAPE_HINT = `for a literal \`{{\` (a Go or Jinja template in an argument), write \`${TEMPLATE_ESCAPE}\` (or \`{{ '{{' }}\` inside a double-quoted YAML string)`;

/**
 * Splits a template into text and names. Syntax problems: a `{{` without its `}}`, and an
 * expression that is not a plain dotted name nor the escape. Names are not checked here.
 */
export function parseTaskTemplate(text: string): ParsedTemplate {
  const parts: TemplatePart[] = [];
  const problems: TemplateProblem[] = [];
  let literal = "";
  let i = 0;
  for (;;) {
    const open = text.indexOf("{{", i);
    if (open === -1) {
      literal += text.slice(i);
      break;
    }
    literal += text.slice(i, open);
    const close = text.indexOf("}}", open + 2);
    if (close === -1) {
      problems.push({ index: open, message: `\`{{\` is not closed: end the name with \`}}\`; ${ESCAPE_HINT}` });
      literal += text.slice(open);
      break;
    }
    const inner = text.slice(open + 2, close).trim();
    i = close + 2;
    if (ESCAPES.includes(inner)) {
      literal += "{{";
      continue;
    }
    if (!DOTTED_NAME.test(inner)) {
      problems.push({
        index: open,
        message: `\`${text.slice(open, close + 2)}\` is not a template name: write one dotted name between the braces, such as \`{{ params.date }}\`; ${ESCAPE_HINT}: \`${TEMPLATE_ESCAPE}${text.slice(open + 2, close + 2)}\``,
      });
      continue;
    }
    if (literal !== "") parts.push({ kind: "text", text: literal });
    literal = "";
    parts.push({ kind: "name", name: inner, index: open });
  }
  if (literal !== "") parts.push({ kind: "text", text: literal });
  return { parts, problems };
}

/** Whether `text` may hold a template at all (no `{{`: taken as it is, at no cost). */
export function hasTemplate(text: string): boolean {
  return text.includes("{{");
}

/** The names a workflow's templates may use, `params.*` first, in declaration order. */
export function taskTemplateNames(paramNames: Iterable<string>): string[] {
  return [...[...paramNames].map((p) => `params.${p}`), ...TASK_TEMPLATE_NAMES];
}

/**
 * Every problem of one template for a workflow declaring `paramNames`: its syntax problems
 * (see {@link parseTaskTemplate}) and each unknown name, with the valid names and the escape.
 */
export function checkTaskTemplate(text: string, paramNames: readonly string[]): TemplateProblem[] {
  if (!hasTemplate(text)) return [];
  const { parts, problems } = parseTaskTemplate(text);
  const valid = taskTemplateNames(paramNames);
  for (const part of parts) {
    if (part.kind !== "name" || valid.includes(part.name)) continue;
    const param = part.name.startsWith("params.") ? part.name.slice("params.".length) : null;
    const why =
      param !== null && paramNames.length === 0
        ? `this workflow declares no params (add \`params: {${param}: string}\`)`
        : param !== null
          ? `this workflow declares no param \`${param}\``
          : "not a template name";
    const near = param !== null ? suggestKey(param, paramNames) : paramNames.includes(part.name) ? part.name : null;
    const hint = near !== null ? `params.${near}` : param === null ? suggestKey(part.name, TASK_TEMPLATE_NAMES) : null;
    problems.push({
      index: part.index,
      message: `unknown name \`${part.name}\` in \`{{ ${part.name} }}\`: ${why}${hint === null ? "" : ` (did you mean \`${hint}\`?)`}; valid names: ${valid.join(", ")}; ${ESCAPE_HINT}`,
    });
  }
  return problems.sort((a, b) => a.index - b.index);
}

/** The run that a task's templates are expanded for. */
export interface TaskTemplateContext {
  /** The run's params. */
  params: Params;
  /** The workflow's param definitions: a declared param the run lacks gets its default, else "". */
  paramDefs: Readonly<Record<string, ParamDefinition>>;
  runId: string;
  workflowId: string;
  /** The cron occurrence of a scheduled run (ISO-8601), null for other runs. */
  scheduledFor: string | null;
  /** Who triggered the run (`scheduler`, `cli`, ...). */
  source: string;
  taskId: string;
  /**
   * The run whose outcome started this one. Absent for every run today: `upstream.*` then expands
   * to the empty string.
   */
  upstream?: { runId: string; workflowId: string; status: string };
}

/** A param value as text: strings as they are, numbers and booleans as JSON (`3`, `true`). */
export function templateValueText(value: ParamValue): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The value of every name a task's templates may use (see {@link expandTaskTemplate}). */
export function taskTemplateValues(ctx: TaskTemplateContext): ReadonlyMap<string, string> {
  const values = new Map<string, string>();
  const params = withParamDefaults(ctx.paramDefs, ctx.params);
  for (const name of Object.keys(ctx.paramDefs)) values.set(`params.${name}`, "");
  for (const [name, value] of Object.entries(params)) values.set(`params.${name}`, templateValueText(value));
  values.set("run.id", ctx.runId);
  values.set("run.workflow_id", ctx.workflowId);
  values.set("run.scheduled_for", ctx.scheduledFor ?? "");
  values.set("run.source", ctx.source);
  values.set("task.id", ctx.taskId);
  values.set("upstream.run_id", ctx.upstream?.runId ?? "");
  values.set("upstream.workflow_id", ctx.upstream?.workflowId ?? "");
  values.set("upstream.status", ctx.upstream?.status ?? "");
  return values;
}

/**
 * Expands one template with `values` (from {@link taskTemplateValues}). A substituted value is
 * never expanded again: a param whose value is `{{ run.id }}` stays that text.
 * @returns the text, or the first problem (a template the loader would have refused, e.g. from a
 *   principal that does not check templates).
 */
export function expandTaskTemplate(
  text: string,
  values: ReadonlyMap<string, string>,
): { ok: true; value: string } | { ok: false; error: string } {
  if (!hasTemplate(text)) return { ok: true, value: text };
  const { parts, problems } = parseTaskTemplate(text);
  const first = problems[0];
  if (first !== undefined) return { ok: false, error: first.message };
  let out = "";
  for (const part of parts) {
    if (part.kind === "text") {
      out += part.text;
      continue;
    }
    const value = values.get(part.name);
    if (value === undefined) {
      return {
        ok: false,
        error: `unknown name \`${part.name}\` in \`{{ ${part.name} }}\`; valid names: ${[...values.keys()].join(", ")}`,
      };
    }
    out += value;
  }
  return { ok: true, value: out };
}

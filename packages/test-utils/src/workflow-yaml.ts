/**
 * The one builder of workflow YAML for tests and benchmarks: a named workflow, header lines
 * (params, cron, max_active_runs, ...) and tasks with a command, arguments, dependencies and
 * extra lines; `!Subprocess` by default, any other task type through raw `config` lines.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** One task of {@link workflowYaml}. */
export interface TaskSpec {
  /** Display name. @default the task id */
  name?: string;
  /** Executable of a `!Subprocess` task. @default "true" */
  cmd?: string;
  /** Its arguments. @default [] */
  args?: readonly string[];
  /** Ids of the tasks this one waits for. */
  depends?: readonly string[];
  /** Extra YAML lines of the task (`timeout: 1s`, `retries: {...}`, `env: {...}`), indented by the builder. */
  extra?: readonly string[];
  /**
   * Raw config instead of `!Subprocess` with `cmd`/`args`: the first line is the tag
   * (`!UvPython`), the others its fields (`script_path: job.py`), indented by the builder.
   */
  config?: readonly string[];
}

/** What {@link workflowYaml} builds. */
export interface WorkflowSpec {
  /** The workflow's `name:` (its id comes from the file name). @default "Test" */
  name?: string;
  /** `description:` line. */
  description?: string;
  /** `cron:` line. */
  cron?: string;
  /**
   * Top-level YAML placed before `tasks:` verbatim: lines, or one text with newlines
   * (`"max_active_runs: 1\noverlap: skip"`, `["params:", "  n: {type: number}"]`).
   */
  header?: string | readonly string[];
  /** Tasks by id, in order. @default one task `only` that runs `true` */
  tasks?: Readonly<Record<string, TaskSpec>>;
}

const ONLY: Readonly<Record<string, TaskSpec>> = { only: { name: "Only" } };

function headerLines(header: string | readonly string[] | undefined): string[] {
  if (header === undefined) return [];
  if (typeof header !== "string") return [...header];
  return header.split("\n").filter((l, i, all) => l !== "" || i < all.length - 1);
}

/**
 * YAML text of a workflow.
 * @example workflowYaml({ header: ["max_active_runs: 1"], tasks: { a: { cmd: "echo", args: ["hi"] }, b: { depends: ["a"] } } })
 */
export function workflowYaml(spec: WorkflowSpec = {}): string {
  const out = [`name: ${spec.name ?? "Test"}`];
  if (spec.description !== undefined) out.push(`description: ${JSON.stringify(spec.description)}`);
  if (spec.cron !== undefined) out.push(`cron: ${JSON.stringify(spec.cron)}`);
  out.push(...headerLines(spec.header), "tasks:");
  for (const [id, t] of Object.entries(spec.tasks ?? ONLY)) {
    out.push(`  ${id}:`, `    name: ${t.name ?? id}`);
    if (t.depends !== undefined && t.depends.length > 0) out.push(`    depends: ${JSON.stringify(t.depends)}`);
    for (const e of t.extra ?? []) out.push(`    ${e}`);
    if (t.config !== undefined) {
      const [tag = "!Subprocess", ...fields] = t.config;
      out.push(`    config: ${tag}`, ...fields.map((f) => `      ${f}`));
    } else {
      out.push(
        "    config: !Subprocess",
        `      cmd: ${JSON.stringify(t.cmd ?? "true")}`,
        `      args: ${JSON.stringify(t.args ?? [])}`,
      );
    }
  }
  return `${out.join("\n")}\n`;
}

/** The two-task `Hello` workflow of the examples: `hello` echoes hello, then `goodbye` echoes goodbye. */
export function helloWorkflowYaml(): string {
  return workflowYaml({
    name: "Hello",
    tasks: {
      hello: { name: "Say hello", cmd: "echo", args: ["hello"] },
      goodbye: { name: "Say goodbye", cmd: "echo", args: ["goodbye"], depends: ["hello"] },
    },
  });
}

/** Write `files` (file name, may contain `/`, -> YAML) into `dir`, creating sub-directories. */
export function writeWorkflows(dir: string, files: Readonly<Record<string, string>>): void {
  for (const [file, text] of Object.entries(files)) {
    const path = join(dir, file);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
}

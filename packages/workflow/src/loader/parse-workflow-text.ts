/**
 * Parses one workflow file's text (no file system access) into a normalised
 * `WorkflowDefinition`, or a list of errors that each name file, line, column and field path.
 */
import { createHash } from "node:crypto";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, YAMLMap } from "yaml";
import type { Document, Node as YamlNode, Pair, ParsedNode, Tags } from "yaml";
import type { z } from "zod";
import { WorkflowIdSchema } from "@cdktr/protocol";
import type {
  ParamDefinition,
  TaskConfig,
  TaskDefinition,
  WorkflowDefinition,
  WorkflowLoadError,
} from "@cdktr/protocol";
import { normaliseCron } from "../cron/normalise-cron.js";
import { findCycle } from "../dag/graph.js";
import { coerceParam } from "../params/resolve-params.js";
import { suggestKey } from "./suggest.js";
import { KNOWN_KEYS, SubprocessYamlSchema, UvPythonYamlSchema, WorkflowYamlSchema } from "./yaml-schema.js";
import type { ParamYaml, TaskYaml, WorkflowYaml } from "./yaml-schema.js";

/** Options of {@link parseWorkflowText}. */
export interface ParseWorkflowOptions {
  /** Name of the file in error messages (e.g. its path). */
  file: string;
  /** The workflow id (see {@link workflowIdFromPath}). */
  id: string;
  /** Path relative to the workflow directory, `/` separated, stored in the definition. @default file */
  path?: string;
}

/** Result of {@link parseWorkflowText}: a definition when there are no errors. */
export interface ParseWorkflowResult {
  workflow: WorkflowDefinition | null;
  errors: WorkflowLoadError[];
  warnings: WorkflowLoadError[];
}

/** Default retry policy: no retries. */
const NO_RETRIES = { count: 0, backoffMs: 0, factor: 1 } as const;
/** Backoff and factor used when `retries` gives only a count. */
const DEFAULT_BACKOFF_MS = 1000;
const DEFAULT_BACKOFF_FACTOR = 2;
/** Default upper bound of catch-up runs for policy `all`. */
export const DEFAULT_CATCH_UP_MAX = 10;

const TASK_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const TAGS = ["!Subprocess", "!UvPython"] as const;
type ConfigTag = (typeof TAGS)[number];

/** `!Subprocess` / `!UvPython` parse as maps that keep their tag. */
const CUSTOM_TAGS: Tags = TAGS.map((tag) => ({
  tag,
  collection: "map" as const,
  nodeClass: YAMLMap,
  identify: () => false,
  resolve: (map: unknown) => map,
}));

/** A tagged map in the plain value tree. */
class Tagged {
  constructor(
    readonly tag: string,
    readonly value: unknown,
  ) {}
}

type PathSeg = string | number;

/** Thrown inside the plain conversion for a node we cannot represent. */
class NodeError extends Error {
  constructor(
    readonly node: YamlNode | null,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Maps a path relative to the workflow directory to a workflow id: extension dropped, `/`
 * replaced by `.` (`etl/daily.yml` -> `etl.daily`).
 */
export function workflowIdFromPath(relPath: string): string {
  return relPath
    .replace(/\\/g, "/")
    .replace(/\.ya?ml$/i, "")
    .split("/")
    .join(".");
}

/** Formats a path like `tasks.extract.depends[0]`. */
export function formatFieldPath(path: readonly PathSeg[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/**
 * Parses and validates one workflow file.
 *
 * Never throws for bad input: every problem becomes a {@link WorkflowLoadError} with the
 * file's line and column (1-based) and the field path. Warnings (e.g. an ambiguous day of week)
 * do not prevent loading.
 */
export function parseWorkflowText(text: string, options: ParseWorkflowOptions): ParseWorkflowResult {
  return new WorkflowFileParser(text, options).parse();
}

class WorkflowFileParser {
  readonly #errors: WorkflowLoadError[] = [];
  readonly #warnings: WorkflowLoadError[] = [];
  readonly #lines = new LineCounter();
  #doc: Document.Parsed | null = null;

  constructor(
    private readonly text: string,
    private readonly options: ParseWorkflowOptions,
  ) {}

  parse(): ParseWorkflowResult {
    const workflow = this.#parse();
    const byPos = (a: WorkflowLoadError, b: WorkflowLoadError) =>
      (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0);
    this.#errors.sort(byPos);
    this.#warnings.sort(byPos);
    return { workflow: this.#errors.length === 0 ? workflow : null, errors: this.#errors, warnings: this.#warnings };
  }

  #parse(): WorkflowDefinition | null {
    const { id, file } = this.options;
    if (!WorkflowIdSchema.safeParse(id).success) {
      this.#errors.push({
        file,
        line: null,
        column: null,
        path: null,
        message: `workflow id \`${id}\` (from the file name) is invalid: ids use letters, digits, '_', '-' and '.', and start with a letter, digit or '_'; rename the file`,
      });
    }
    const doc = parseDocument(this.text, {
      customTags: CUSTOM_TAGS,
      lineCounter: this.#lines,
      prettyErrors: false,
      uniqueKeys: true,
    });
    this.#doc = doc;
    for (const e of doc.errors) this.#errorAtOffset(e.pos[0], `YAML syntax error: ${firstLine(e.message)}`);
    for (const w of doc.warnings) this.#warnAtOffset(w.pos[0], `YAML: ${firstLine(w.message)}`);
    if (doc.errors.length > 0) return null;
    if (doc.contents === null) {
      this.#errors.push({
        file,
        line: 1,
        column: 1,
        path: null,
        message: "the file is empty: a workflow needs at least `name` and `tasks`",
      });
      return null;
    }

    let plain: unknown;
    try {
      plain = toPlain(doc.contents, doc);
    } catch (e: unknown) {
      if (e instanceof NodeError) this.#errorAtNode(e.node, null, e.message);
      else throw e;
      return null;
    }

    // Task configs are tagged maps: check them even when other fields are wrong.
    const rawTasks = isPlainObject(plain) && isPlainObject(plain.tasks) ? plain.tasks : {};
    const configs = new Map<string, TaskConfig>();
    for (const [taskId, task] of Object.entries(rawTasks)) {
      if (!isPlainObject(task)) continue;
      if (!("config" in task) || task.config === null) {
        this.#error(
          ["tasks", taskId],
          `task \`${taskId}\` has no config: add \`config: !Subprocess {cmd: ..., args: [...]}\` or \`config: !UvPython {script_path: ...}\``,
          true,
        );
        continue;
      }
      const config = this.#config(task.config, ["tasks", taskId, "config"]);
      if (config !== null) configs.set(taskId, config);
    }

    let parsed = WorkflowYamlSchema.safeParse(plain);
    if (!parsed.success) {
      this.#zodIssues(parsed.error.issues, [], plain);
      // When unknown keys are the only problem, drop them and go on, so that one run of
      // `validate` also reports unknown dependencies, cycles and cron errors.
      if (!parsed.error.issues.every((i) => i.code === "unrecognized_keys")) return null;
      for (const issue of parsed.error.issues) {
        const target = valueAt(
          plain,
          issue.path.filter((s): s is PathSeg => typeof s !== "symbol"),
        );
        if (isPlainObject(target) && issue.code === "unrecognized_keys") for (const k of issue.keys) delete target[k];
      }
      parsed = WorkflowYamlSchema.safeParse(plain);
      if (!parsed.success) return null;
    }
    return this.#build(parsed.data, configs);
  }

  #build(y: WorkflowYaml, configs: ReadonlyMap<string, TaskConfig>): WorkflowDefinition | null {
    const timezone = y.timezone ?? "UTC";
    if (!isValidTimezone(timezone)) {
      this.#error(
        ["timezone"],
        `unknown timezone \`${timezone}\`: use an IANA name such as UTC, Europe/London or America/New_York`,
      );
    }

    let schedule: string | null = null;
    if (y.cron !== undefined && y.cron !== null) {
      const r = normaliseCron(y.cron, {
        dialect: y.cron_dialect ?? "standard",
        timezone: isValidTimezone(timezone) ? timezone : "UTC",
      });
      if (r.ok) {
        schedule = r.schedule;
        for (const w of r.warnings) this.#warn(["cron"], w);
      } else this.#error(["cron"], r.error);
    } else if (y.cron_dialect !== undefined) {
      this.#warn(["cron_dialect"], "cron_dialect has no effect without cron");
    }

    const params: Record<string, ParamDefinition> = {};
    for (const [name, p] of Object.entries(y.params ?? {})) {
      const def = this.#param(name, p);
      if (def !== null) params[name] = def;
    }

    if (y.catch_up_max !== undefined && y.catch_up !== undefined && y.catch_up.max !== undefined) {
      this.#error(["catch_up_max"], "give the maximum either as catch_up.max or as catch_up_max, not both");
    }
    const catchUp = {
      policy: y.catch_up?.policy ?? "skip",
      max: y.catch_up?.max ?? y.catch_up_max ?? DEFAULT_CATCH_UP_MAX,
    } as const;

    const taskIds = Object.keys(y.tasks);
    if (taskIds.length === 0) {
      this.#error(["tasks"], "the task map is empty: a workflow needs at least one task");
    }
    const tasks: Record<string, TaskDefinition> = {};
    for (const taskId of taskIds) {
      const t = y.tasks[taskId] as TaskYaml;
      if (!TASK_ID.test(taskId)) {
        this.#error(
          ["tasks", taskId],
          `task id \`${taskId}\` is invalid: use letters, digits, '_', '-' and '.', starting with a letter, digit or '_'`,
          true,
        );
      }
      const depends = t.depends ?? [];
      const seen = new Set<string>();
      depends.forEach((dep, i) => {
        if (!Object.hasOwn(y.tasks, dep)) {
          const hint = suggestKey(dep, taskIds);
          this.#error(
            ["tasks", taskId, "depends", i],
            `task \`${taskId}\` depends on unknown task \`${dep}\`${hint === null ? "" : ` (did you mean \`${hint}\`?)`}; known tasks: ${taskIds.join(", ")}`,
          );
        } else if (dep === taskId) {
          this.#error(["tasks", taskId, "depends", i], `task \`${taskId}\` depends on itself`);
        } else if (seen.has(dep)) {
          this.#warn(["tasks", taskId, "depends", i], `dependency \`${dep}\` is listed twice`);
        }
        seen.add(dep);
      });
      const config = configs.get(taskId);
      if (config === undefined) continue;
      const retries =
        t.retries === undefined || t.retries === null
          ? { ...NO_RETRIES }
          : {
              count: t.retries.count,
              backoffMs: t.retries.backoff ?? DEFAULT_BACKOFF_MS,
              factor: t.retries.factor ?? DEFAULT_BACKOFF_FACTOR,
            };
      if (t.timeout === 0)
        this.#error(["tasks", taskId, "timeout"], "timeout must be more than 0 (leave it out for no timeout)");
      tasks[taskId] = {
        id: taskId,
        name: t.name,
        description: t.description ?? null,
        depends: [...seen].filter((d) => Object.hasOwn(y.tasks, d) && d !== taskId),
        config,
        env: t.env ?? {},
        workingDirectory: t.working_directory ?? null,
        timeoutMs: t.timeout === undefined || t.timeout === null || t.timeout === 0 ? null : t.timeout,
        retries,
      };
    }

    if (this.#errors.length === 0) {
      const cycle = findCycle(tasks);
      if (cycle !== null) {
        const last = cycle[cycle.length - 1] as string;
        const before = cycle[cycle.length - 2] as string;
        const idx = (y.tasks[last]?.depends ?? []).indexOf(before);
        this.#error(["tasks", last, "depends", Math.max(idx, 0)], `dependency cycle: ${cycle.join(" -> ")}`);
      }
    }

    if (this.#errors.length > 0) return null;
    return {
      id: this.options.id,
      name: y.name,
      description: y.description ?? null,
      path: this.options.path ?? this.options.file,
      cron: y.cron ?? null,
      schedule,
      timezone,
      startTime: y.start_time ?? null,
      params,
      maxActiveRuns: y.max_active_runs ?? null,
      overlap: y.overlap ?? "queue",
      onAgentLost: y.on_agent_lost ?? "fail",
      catchUp,
      jitterMs: y.jitter ?? 0,
      agentLabels: y.agent_labels ?? [],
      tasks,
      hash: createHash("sha256").update(this.text).digest("hex"),
    };
  }

  #param(name: string, p: ParamYaml): ParamDefinition | null {
    const path = ["params", name];
    let ok = true;
    if (!PARAM_NAME.test(name)) {
      this.#error(
        path,
        `param name \`${name}\` is invalid: use letters, digits and '_', starting with a letter or '_'`,
        true,
      );
      ok = false;
    }
    if (p.type === "enum" && p.values === undefined) {
      this.#error(path, `enum param \`${name}\` needs \`values\`: a non-empty list of the accepted values`);
      ok = false;
    }
    if (p.type !== "enum" && p.values !== undefined) {
      this.#error([...path, "values"], `\`values\` is only for type enum (param \`${name}\` is ${p.type})`);
      ok = false;
    }
    if (p.required === true && p.default !== undefined) {
      this.#error([...path, "required"], `param \`${name}\` is required and has a default: drop one of them`);
      ok = false;
    }
    const base: ParamDefinition = {
      type: p.type,
      required: p.required ?? p.default === undefined,
      description: p.description ?? null,
    };
    if (p.values !== undefined) base.values = p.values;
    if (p.default !== undefined && ok) {
      const r = coerceParam(base, p.default);
      if (r.ok) base.default = r.value;
      else {
        this.#error([...path, "default"], `default of param \`${name}\`: ${r.error}`);
        ok = false;
      }
    }
    return ok ? base : null;
  }

  #config(value: unknown, path: PathSeg[]): TaskConfig | null {
    if (!(value instanceof Tagged) || !(TAGS as readonly string[]).includes(value.tag)) {
      const got = value instanceof Tagged ? `tag \`${value.tag}\`` : "an untagged value";
      this.#error(
        path,
        `config must be tagged \`!Subprocess\` (cmd, args) or \`!UvPython\` (script_path, ...); got ${got}`,
      );
      return null;
    }
    const tag = value.tag as ConfigTag;
    if (tag === "!Subprocess") {
      const r = SubprocessYamlSchema.safeParse(value.value);
      if (!r.success) {
        this.#zodIssues(r.error.issues, path, value.value, KNOWN_KEYS.subprocess);
        return null;
      }
      return { type: "subprocess", cmd: r.data.cmd, args: r.data.args ?? [] };
    }
    const r = UvPythonYamlSchema.safeParse(value.value);
    if (!r.success) {
      this.#zodIssues(r.error.issues, path, value.value, KNOWN_KEYS.uvPython);
      return null;
    }
    return {
      type: "uvPython",
      scriptPath: r.data.script_path,
      packages: r.data.packages ?? [],
      isUvProject: r.data.is_uv_project ?? false,
      workingDirectory: r.data.working_directory ?? null,
      uvPath: r.data.uv_path ?? "uv",
    };
  }

  #zodIssues(
    issues: readonly z.core.$ZodIssue[],
    base: PathSeg[],
    root: unknown,
    knownOverride?: readonly string[],
  ): void {
    for (const issue of issues) {
      const path = [...base, ...issue.path.filter((s): s is PathSeg => typeof s !== "symbol")];
      const rel = issue.path.filter((s): s is PathSeg => typeof s !== "symbol");
      if (issue.code === "unrecognized_keys") {
        const known = knownOverride ?? knownKeysAt(path);
        for (const key of issue.keys) {
          const hint = suggestKey(key, known);
          this.#error(
            [...path, key],
            `unknown key \`${key}\`${hint === null ? "" : ` (did you mean \`${hint}\`?)`}; allowed here: ${known.join(", ")}`,
            true,
          );
        }
        continue;
      }
      // A field that is absent: point at the map that lacks it.
      const parent = valueAt(root, rel.slice(0, -1));
      const last = rel[rel.length - 1];
      if (issue.code === "invalid_type" && last !== undefined && isPlainObject(parent) && !(String(last) in parent)) {
        this.#error(path, `missing required field \`${String(last)}\``);
        continue;
      }
      this.#error(path, issue.message);
    }
  }

  #error(path: PathSeg[], message: string, atKey = false): void {
    this.#errors.push(this.#locate(path, message, atKey));
  }

  #warn(path: PathSeg[], message: string): void {
    this.#warnings.push(this.#locate(path, message, false));
  }

  #locate(path: PathSeg[], message: string, atKey: boolean): WorkflowLoadError {
    const node = nodeAtPath(this.#doc, path, atKey);
    const pos = node?.range ? this.#lines.linePos(node.range[0]) : null;
    const fieldPath = path.length === 0 ? null : formatFieldPath(path);
    return {
      file: this.options.file,
      line: pos?.line ?? null,
      column: pos?.col ?? null,
      path: fieldPath,
      message,
    };
  }

  #errorAtNode(node: YamlNode | null, path: string | null, message: string): void {
    const pos = node?.range ? this.#lines.linePos(node.range[0]) : null;
    this.#errors.push({ file: this.options.file, line: pos?.line ?? null, column: pos?.col ?? null, path, message });
  }

  #errorAtOffset(offset: number, message: string): void {
    const pos = this.#lines.linePos(offset);
    this.#errors.push({ file: this.options.file, line: pos.line, column: pos.col, path: null, message });
  }

  #warnAtOffset(offset: number, message: string): void {
    const pos = this.#lines.linePos(offset);
    this.#warnings.push({ file: this.options.file, line: pos.line, column: pos.col, path: null, message });
  }
}

/** The known keys of the map at `path` (for suggestions). */
function knownKeysAt(path: readonly PathSeg[]): readonly string[] {
  if (path.length === 0) return KNOWN_KEYS.workflow;
  if (path[0] === "tasks" && path.length === 2) return KNOWN_KEYS.task;
  if (path[0] === "tasks" && path.length === 3 && path[2] === "retries") return KNOWN_KEYS.retries;
  if (path[0] === "params" && path.length === 2) return KNOWN_KEYS.param;
  if (path[0] === "catch_up" && path.length === 1) return KNOWN_KEYS.catchUp;
  return [];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Tagged);
}

function valueAt(root: unknown, path: readonly PathSeg[]): unknown {
  let cur = root;
  for (const seg of path) {
    if (cur instanceof Tagged) cur = cur.value;
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur instanceof Tagged ? cur.value : cur;
}

/**
 * The node at a path (or at the key of its last segment). Falls back to the deepest node that
 * exists, so an error about a missing field points at the map that lacks it.
 */
function nodeAtPath(doc: Document.Parsed | null, path: readonly PathSeg[], atKey: boolean): YamlNode | null {
  let cur: unknown = doc?.contents ?? null;
  let lastGood: YamlNode | null = (cur as YamlNode | null) ?? null;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i] as PathSeg;
    if (isAlias(cur) && doc !== null) cur = cur.resolve(doc);
    let next: unknown;
    let keyNode: unknown;
    if (isMap(cur)) {
      const pair = cur.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      next = pair?.value;
      keyNode = pair?.key;
    } else if (isSeq(cur) && typeof seg === "number") {
      next = cur.items[seg];
    }
    if (i === path.length - 1 && atKey && keyNode !== undefined) return keyNode as YamlNode;
    // Absent, or an empty value (`tasks:` with nothing after it): point at the key.
    if (next === undefined || next === null || (isScalar(next) && next.value === null && next.source === "")) {
      return (keyNode as YamlNode | undefined) ?? lastGood;
    }
    cur = next;
    lastGood = cur as YamlNode;
  }
  return lastGood;
}

/** Converts the YAML AST to plain values, tagged maps to {@link Tagged}. */
function toPlain(node: unknown, doc: Document.Parsed, depth = 0): unknown {
  if (depth > 100) throw new NodeError(node as YamlNode, "the document is nested too deeply");
  if (node === null || node === undefined) return null;
  if (isAlias(node)) return toPlain(node.resolve(doc), doc, depth + 1);
  const tag = (node as { tag?: string }).tag;
  const isConfigTag = tag !== undefined && (TAGS as readonly string[]).includes(tag);
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items as Pair<ParsedNode, ParsedNode | null>[]) {
      if (!isScalar(pair.key)) throw new NodeError(pair.key, "map keys must be plain strings");
      const k = String(pair.key.value);
      if (k === "__proto__") throw new NodeError(pair.key, "the key `__proto__` is not allowed");
      out[k] = toPlain(pair.value, doc, depth + 1);
    }
    return isConfigTag || (tag?.startsWith("!") && !tag.startsWith("!!")) ? new Tagged(tag, out) : out;
  }
  if (isSeq(node)) return node.items.map((n) => toPlain(n, doc, depth + 1));
  if (isScalar(node)) {
    if (isConfigTag)
      throw new NodeError(
        node,
        `\`${tag}\` must tag a map, e.g. \`${tag} {${tag === "!Subprocess" ? "cmd: echo, args: [hi]" : "script_path: job.py"}}\``,
      );
    const v = node.value;
    if (typeof v === "bigint") return Number(v);
    if (v instanceof Date) return v.toISOString();
    // Other unknown tags on scalars: yaml already warned about them; keep the plain value.
    return v;
  }
  throw new NodeError(node as YamlNode, "unsupported YAML node");
}

function isValidTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}

/**
 * The YAML side of the workflow loader: parse a file with positions (custom `!Subprocess` and
 * `!UvPython` tags kept), turn its AST into plain values, and find the node of a field path so
 * that every problem can name its line and column.
 */
import { isAlias, isMap, isScalar, isSeq, parseDocument, YAMLMap } from "yaml";
import type { Document, LineCounter, Node as YamlNode, Pair, ParsedNode, Tags } from "yaml";
import { NodeError } from "../errors.js";

/** The tags of task configs. */
export const CONFIG_TAGS = ["!Subprocess", "!UvPython"] as const;
/** One of {@link CONFIG_TAGS}. */
export type ConfigTag = (typeof CONFIG_TAGS)[number];

/** A segment of a field path: a map key or a list index. */
export type PathSeg = string | number;

/** `!Subprocess` / `!UvPython` parse as maps that keep their tag. */
const CUSTOM_TAGS: Tags = CONFIG_TAGS.map((tag) => ({
  tag,
  collection: "map" as const,
  nodeClass: YAMLMap,
  identify: () => false,
  resolve: (map: unknown) => map,
}));

/** A tagged map in the plain value tree. */
export class Tagged {
  constructor(
    readonly tag: string,
    readonly value: unknown,
  ) {}
}

/** Parse workflow YAML with positions counted in `lines`; duplicate keys are errors. */
export function parseWorkflowYaml(text: string, lines: LineCounter): Document.Parsed {
  return parseDocument(text, {
    customTags: CUSTOM_TAGS,
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
  });
}

/**
 * Converts the YAML AST to plain values, tagged maps to {@link Tagged}.
 * @throws NodeError at a node that has no plain form (a non-string key, a config tag on a scalar...)
 */
export function toPlain(node: unknown, doc: Document.Parsed, depth = 0): unknown {
  if (depth > 100) throw new NodeError(node as YamlNode, "the document is nested too deeply");
  if (node === null || node === undefined) return null;
  if (isAlias(node)) return toPlain(node.resolve(doc), doc, depth + 1);
  const tag = (node as { tag?: string }).tag;
  const isConfigTag = tag !== undefined && (CONFIG_TAGS as readonly string[]).includes(tag);
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

/**
 * The node at a path (or at the key of its last segment). Falls back to the deepest node that
 * exists, so an error about a missing field points at the map that lacks it.
 */
export function nodeAtPath(doc: Document.Parsed | null, path: readonly PathSeg[], atKey: boolean): YamlNode | null {
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

/** Whether `v` is a plain map of the value tree (not a list, not a {@link Tagged} map). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Tagged);
}

/** The plain value at `path` (through tagged maps), or undefined. */
export function valueAt(root: unknown, path: readonly PathSeg[]): unknown {
  let cur = root;
  for (const seg of path) {
    if (cur instanceof Tagged) cur = cur.value;
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur instanceof Tagged ? cur.value : cur;
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

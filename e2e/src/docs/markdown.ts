/**
 * The fenced code blocks of the repository's documentation, with the marker comment written
 * before each: what the doc tests compile, run or syntax-check.
 *
 * A marker is an HTML comment on the last non-blank line(s) before the fence (invisible once
 * rendered):
 *
 * - `<!-- fragment -->`: the block is not a program on its own; it is still compiled or
 *   syntax-checked alone.
 * - `<!-- fragment` + template lines + `-->`: the block is checked inside the template, in place of
 *   its `{{block}}` line (indented like that line), e.g. a task `config:` inside a whole workflow,
 *   or a TypeScript snippet after the declarations it uses.
 * - `<!-- example: <label> -->`: a JSON example of docs/protocol.md, checked against its schema by
 *   `@cdktr/protocol`'s docs test (and parsed here).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is e2e/{src,dist}/docs/markdown.*). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** Languages a fence may declare, and what checks each. */
export const FENCE_LANGUAGES = {
  ts: "compiled with the workspace's tsc against the real @cdktr packages; complete programs run",
  js: "run with node (complete programs) or syntax-checked (fragments)",
  python: "run with /usr/bin/python3 (complete programs) or compiled (fragments)",
  sh: "bash -n",
  yaml: "workflow files through @cdktr/workflow, listener files through @cdktr/listeners, compose files through docker-compose config",
  json: "JSON.parse (protocol examples are also checked against their schemas)",
  sql: "executed by PostgreSQL inside a rolled-back transaction",
  text: "nothing: output, diagrams and usage synopses",
} as const;

/** The marker comment before a block. */
export type BlockMarker =
  | { kind: "fragment"; template: string | undefined }
  | { kind: "example"; label: string }
  | { kind: "unknown"; text: string };

/** One fenced code block of a markdown file. */
export interface CodeBlock {
  /** Path relative to the repository root, `/` separators. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The info string's first word, as written (may be empty or unknown). */
  lang: string;
  /** The block's text (fence indentation removed), ending with a newline. */
  code: string;
  marker: BlockMarker | undefined;
}

const SKIP_DIRS = new Set(["node_modules", "dist", ".git", ".turbo", "results", "tmp", "__pycache__"]);

/**
 * Every documentation file: `docs/*.md`, every `README.md` of the repository (root, workspaces,
 * clients, examples) and `CHANGELOG.md`, sorted, relative to the root.
 */
export function docFiles(root: string = REPO_ROOT): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!SKIP_DIRS.has(entry.name) && !entry.name.startsWith(".")) walk(join(dir, entry.name));
      } else if (entry.name === "README.md" || entry.name === "CHANGELOG.md") {
        found.push(relative(root, join(dir, entry.name)));
      }
    }
  };
  walk(root);
  const docs = join(root, "docs");
  for (const name of readdirSync(docs)) {
    if (name.endsWith(".md") && statSync(join(docs, name)).isFile()) found.push(`docs/${name}`);
  }
  return [...new Set(found.map((f) => f.split("\\").join("/")))].sort();
}

function parseMarker(text: string): BlockMarker {
  const body = text
    .replace(/^\s*<!--/, "")
    .replace(/-->\s*$/, "")
    .replace(/^[ \t]+|\s+$/g, "");
  if (body === "fragment") return { kind: "fragment", template: undefined };
  if (body.startsWith("fragment\n")) return { kind: "fragment", template: `${body.slice("fragment\n".length)}\n` };
  const example = /^example: (.+)$/.exec(body);
  if (example?.[1] !== undefined) return { kind: "example", label: example[1] };
  return { kind: "unknown", text: body };
}

/** The fenced blocks of one markdown text. */
export function parseBlocks(file: string, text: string): CodeBlock[] {
  const lines = text.split("\n");
  const blocks: CodeBlock[] = [];
  let pending: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const open = /^( *)(`{3,}|~{3,})(.*)$/.exec(line);
    if (open !== null) {
      const indent = open[1]?.length ?? 0;
      const fence = open[2] ?? "```";
      const lang = (open[3] ?? "").trim().split(/\s+/)[0] ?? "";
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const l = lines[j] ?? "";
        const close = /^\s*(`{3,}|~{3,})\s*$/.exec(l)?.[1];
        if (close !== undefined && close[0] === fence[0] && close.length >= fence.length) break;
        body.push(l.slice(Math.min(indent, l.length - l.trimStart().length)));
      }
      blocks.push({
        file,
        line: i + 1,
        lang,
        code: `${body.join("\n")}\n`,
        marker: pending === undefined ? undefined : parseMarker(pending),
      });
      pending = undefined;
      i = j;
      continue;
    }
    if (line.trimStart().startsWith("<!--")) {
      const start = i;
      while (i < lines.length && !(lines[i] ?? "").includes("-->")) i++;
      pending = lines.slice(start, i + 1).join("\n");
      continue;
    }
    if (line.trim() !== "") pending = undefined;
  }
  return blocks;
}

/** Every fenced block of every documentation file. */
export function allBlocks(root: string = REPO_ROOT): CodeBlock[] {
  return docFiles(root).flatMap((f) => parseBlocks(f, readFileSync(join(root, f), "utf8")));
}

/** `file:line` of a block, for messages. */
export function where(block: CodeBlock): string {
  return `${block.file}:${block.line}`;
}

/**
 * The text to check for a block: the block itself, or its fragment template with the block in
 * place of `{{block}}` (indented like that line). Also returns how many lines precede the block,
 * so that a checker's line numbers can be mapped back to the markdown file.
 */
export function assemble(block: CodeBlock): { text: string; offset: number } {
  if (block.marker?.kind !== "fragment" || block.marker.template === undefined) return { text: block.code, offset: 0 };
  const tpl = block.marker.template.split("\n");
  const at = tpl.findIndex((l) => l.trim() === "{{block}}");
  if (at === -1) throw new Error(`${where(block)}: a fragment template must contain a {{block}} line`);
  const indent = /^\s*/.exec(tpl[at] ?? "")?.[0] ?? "";
  const code = block.code
    .replace(/\n$/, "")
    .split("\n")
    .map((l) => (l === "" ? l : indent + l));
  return { text: [...tpl.slice(0, at), ...code, ...tpl.slice(at + 1)].join("\n"), offset: at };
}

/** Whether a block is meant to run on its own (no fragment marker). */
export function isProgram(block: CodeBlock): boolean {
  return block.marker?.kind !== "fragment";
}

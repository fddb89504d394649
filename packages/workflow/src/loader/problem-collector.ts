/**
 * The errors and warnings of one workflow file, each located at a line and column of the file
 * and a field path (`tasks.load.depends[0]`).
 */
import { isScalar } from "yaml";
import type { Document, LineCounter, Node as YamlNode } from "yaml";
import type { z } from "zod";
import type { WorkflowLoadError } from "@cdktr/protocol";
import { suggestKey } from "./suggest.js";
import { knownKeysAt } from "./yaml-schema.js";
import { formatFieldPath, isPlainObject, nodeAtPath, valueAt, type PathSeg } from "./yaml-reader.js";

/** Collects located problems of one file; {@link sorted} returns them in file order. */
export class ProblemCollector {
  readonly #errors: WorkflowLoadError[] = [];
  readonly #warnings: WorkflowLoadError[] = [];
  /** The parsed document that field paths are looked up in (null until parsed). */
  doc: Document.Parsed | null = null;

  /**
   * @param text the file's text, to place {@link errorInValue} problems at their character inside
   *   a one-line string; without it they are placed at the start of the value. @default ""
   */
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
    private readonly text = "",
  ) {}

  /** Whether any error was reported. */
  get hasErrors(): boolean {
    return this.#errors.length > 0;
  }

  /** Errors and warnings sorted by line, then column. */
  sorted(): { errors: WorkflowLoadError[]; warnings: WorkflowLoadError[] } {
    const byPos = (a: WorkflowLoadError, b: WorkflowLoadError) =>
      (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0);
    this.#errors.sort(byPos);
    this.#warnings.sort(byPos);
    return { errors: this.#errors, warnings: this.#warnings };
  }

  /** An error without a position (e.g. about the file name). */
  errorInFile(message: string): void {
    this.#errors.push({ file: this.file, line: null, column: null, path: null, message });
  }

  /** An error at a line and column (1-based), outside any field. */
  errorAt(line: number, column: number, message: string): void {
    this.#errors.push({ file: this.file, line, column, path: null, message });
  }

  /** An error at the value of `path` (at its key when `atKey`). */
  error(path: PathSeg[], message: string, atKey = false): void {
    this.#errors.push(this.#locate(path, message, atKey));
  }

  /**
   * An error at character `index` of the string value of `path` (of its key when `atKey`): the
   * exact line and column when the value is written on one line without escapes, else the start
   * of the value.
   */
  errorInValue(path: PathSeg[], index: number, message: string, atKey = false): void {
    const located = this.#locate(path, message, atKey);
    const node = nodeAtPath(this.doc, path, atKey);
    if (isScalar(node) && typeof node.value === "string" && node.range) {
      const quote =
        node.type === "PLAIN" ? "" : node.type === "QUOTE_SINGLE" ? "'" : node.type === "QUOTE_DOUBLE" ? '"' : null;
      const source = this.text.slice(node.range[0], node.range[1]);
      if (quote !== null && source === `${quote}${node.value}${quote}`) {
        const pos = this.lines.linePos(node.range[0] + quote.length + index);
        located.line = pos.line;
        located.column = pos.col;
      }
    }
    this.#errors.push(located);
  }

  /** A warning at the value of `path`. */
  warn(path: PathSeg[], message: string): void {
    this.#warnings.push(this.#locate(path, message, false));
  }

  /** An error at a YAML node. */
  errorAtNode(node: YamlNode | null, path: string | null, message: string): void {
    const pos = node?.range ? this.lines.linePos(node.range[0]) : null;
    this.#errors.push({ file: this.file, line: pos?.line ?? null, column: pos?.col ?? null, path, message });
  }

  /** An error at a character offset of the file. */
  errorAtOffset(offset: number, message: string): void {
    const pos = this.lines.linePos(offset);
    this.#errors.push({ file: this.file, line: pos.line, column: pos.col, path: null, message });
  }

  /** A warning at a character offset of the file. */
  warnAtOffset(offset: number, message: string): void {
    const pos = this.lines.linePos(offset);
    this.#warnings.push({ file: this.file, line: pos.line, column: pos.col, path: null, message });
  }

  /**
   * Report zod issues of the value at `base` (`root` is that value): unknown keys with a "did you
   * mean" from `knownOverride` or the keys allowed at their path, a missing field at the map that
   * lacks it, anything else with zod's message.
   */
  zodIssues(
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
          this.error(
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
        this.error(path, `missing required field \`${String(last)}\``);
        continue;
      }
      this.error(path, issue.message);
    }
  }

  #locate(path: PathSeg[], message: string, atKey: boolean): WorkflowLoadError {
    const node = nodeAtPath(this.doc, path, atKey);
    const pos = node?.range ? this.lines.linePos(node.range[0]) : null;
    const fieldPath = path.length === 0 ? null : formatFieldPath(path);
    return {
      file: this.file,
      line: pos?.line ?? null,
      column: pos?.col ?? null,
      path: fieldPath,
      message,
    };
  }
}

import { visibleLength } from "./style.js";

/** Options of {@link renderTable}. */
export interface TableOptions {
  /** Applied to the header cells (e.g. bold). */
  header?: (s: string) => string;
  /** Columns right-aligned (indexes). */
  alignRight?: readonly number[];
  /** Text printed when there are no rows. @default "(none)" */
  empty?: string;
}

/**
 * A plain text table: a header row, then one row per record, columns padded to the widest
 * cell, two spaces apart, no trailing spaces. Cells may contain ANSI colour.
 */
export function renderTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  options: TableOptions = {},
): string {
  if (rows.length === 0) return `${options.empty ?? "(none)"}\n`;
  const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ""))));
  const right = new Set(options.alignRight ?? []);
  const line = (cells: readonly string[], decorate?: (s: string) => string): string => {
    const parts = widths.map((w, i) => {
      const raw = cells[i] ?? "";
      const pad = " ".repeat(Math.max(0, w - visibleLength(raw)));
      const cell = decorate ? decorate(raw) : raw;
      return right.has(i) ? pad + cell : cell + pad;
    });
    return parts.join("  ").trimEnd();
  };
  const out = [line(headers, options.header), ...rows.map((r) => line(r))];
  return `${out.join("\n")}\n`;
}

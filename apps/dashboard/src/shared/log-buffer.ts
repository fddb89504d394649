/**
 * The dashboard's log tail buffer: lines arrive from two sources at once (the live event stream,
 * opened first, and the paged history), so they are merged, deduplicated by (taskId, seq) and kept
 * ordered by time then seq, with a cap on how many are kept so a flood cannot exhaust the tab.
 *
 * Pure: no DOM, no Node imports (shared by the dashboard UI bundle and the server's unit tests).
 */

/** The fields of a log line that the buffer orders and deduplicates by. */
export interface LogKeyFields {
  time: string;
  taskId: string;
  seq: number;
}

interface Entry<T> {
  line: T;
  t: number;
  key: string;
}

function keyOf(line: LogKeyFields): string {
  return `${line.taskId}\u0000${line.seq}`;
}

function compare<T extends LogKeyFields>(a: Entry<T>, b: Entry<T>): number {
  if (a.t !== b.t) return a.t - b.t;
  if (a.line.seq !== b.line.seq) return a.line.seq - b.line.seq;
  return a.line.taskId < b.line.taskId ? -1 : a.line.taskId > b.line.taskId ? 1 : 0;
}

function timeOf(time: string): number {
  const t = Date.parse(time);
  return Number.isNaN(t) ? 0 : t;
}

/**
 * An ordered, deduplicated, capped set of log lines. When full, the oldest lines are dropped, and a
 * line older than everything kept is refused (it would be dropped at once).
 */
export class LogBuffer<T extends LogKeyFields> {
  readonly #cap: number;
  readonly #slack: number;
  #entries: Entry<T>[] = [];
  readonly #keys = new Set<string>();
  #added = 0;
  #snapshot: readonly T[] | undefined;

  /** @param cap most lines kept (default 20,000; at least 1) */
  constructor(cap = 20_000) {
    this.#cap = Number.isFinite(cap) ? Math.max(1, Math.floor(cap)) : 20_000;
    this.#slack = Math.max(1, Math.floor(this.#cap / 8));
  }

  /** Lines kept now. */
  get size(): number {
    return Math.min(this.#entries.length, this.#cap);
  }

  /** How many new lines were ever accepted (grows monotonically; counts lines later dropped). */
  get added(): number {
    return this.#added;
  }

  /** Adds lines (any order, duplicates ignored); returns how many were new. */
  add(lines: Iterable<T>): number {
    const fresh: Entry<T>[] = [];
    for (const line of lines) {
      const key = keyOf(line);
      if (this.#keys.has(key)) continue;
      const entry = { line, t: timeOf(line.time), key };
      const first = this.#entries[Math.max(0, this.#entries.length - this.#cap)];
      if (this.#entries.length >= this.#cap && first !== undefined && compare(entry, first) < 0) continue;
      this.#keys.add(key);
      fresh.push(entry);
    }
    if (fresh.length === 0) return 0;
    this.#added += fresh.length;
    this.#snapshot = undefined;
    fresh.sort(compare);
    const last = this.#entries[this.#entries.length - 1];
    const head = fresh[0];
    if (last === undefined || (head !== undefined && compare(last, head) <= 0)) this.#entries.push(...fresh);
    else this.#entries = mergeSorted(this.#entries, fresh);
    // Trimmed in batches (up to an eighth over the cap) so a flood of single lines at the cap
    // does not copy the whole buffer once per line; lines() never shows more than the cap.
    const excess = this.#entries.length - this.#cap;
    if (excess >= this.#slack) {
      for (const e of this.#entries.slice(0, excess)) this.#keys.delete(e.key);
      this.#entries = this.#entries.slice(excess);
    }
    return fresh.length;
  }

  /** The kept lines, oldest first (the same array until the next change). */
  lines(): readonly T[] {
    this.#snapshot ??= this.#entries.slice(Math.max(0, this.#entries.length - this.#cap)).map((e) => e.line);
    return this.#snapshot;
  }

  /** Forgets every line. */
  clear(): void {
    this.#entries = [];
    this.#keys.clear();
    this.#snapshot = undefined;
  }
}

function mergeSorted<T extends LogKeyFields>(a: Entry<T>[], b: Entry<T>[]): Entry<T>[] {
  const out: Entry<T>[] = new Array<Entry<T>>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as Entry<T>;
    const y = b[j] as Entry<T>;
    if (compare(x, y) <= 0) {
      out[k++] = x;
      i++;
    } else {
      out[k++] = y;
      j++;
    }
  }
  while (i < a.length) out[k++] = a[i++] as Entry<T>;
  while (j < b.length) out[k++] = b[j++] as Entry<T>;
  return out;
}

/** Log levels from least to most severe. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The filters of the log tail; empty strings mean "no filter". */
export interface LogFilter {
  /** Minimum level ("" for all). */
  minLevel: LogLevel | "";
  /** Only this task ("" for all). */
  taskId: string;
  /** Case-insensitive substring of the visible text ("" for all). */
  search: string;
}

/**
 * The lines to render: those passing the filter, at most `limit` of them (the newest).
 * `textOf` gives the visible text a search matches (the line with escape sequences removed).
 */
export function filterLogLines<T extends LogKeyFields & { level: string }>(
  lines: readonly T[],
  filter: LogFilter,
  textOf: (line: T) => string,
  limit: number,
): { shown: T[]; matched: number } {
  const min = filter.minLevel === "" ? 0 : LOG_LEVELS.indexOf(filter.minLevel);
  const needle = filter.search.toLowerCase();
  const passes = (l: T): boolean => {
    if (filter.taskId !== "" && l.taskId !== filter.taskId) return false;
    if (min > 0) {
      const lv = LOG_LEVELS.indexOf(l.level as LogLevel);
      if (lv !== -1 && lv < min) return false;
    }
    return needle === "" || textOf(l).toLowerCase().includes(needle);
  };
  const shown: T[] = [];
  let matched = 0;
  // Walk from the newest so the common case (no filter) touches only `limit` lines.
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i] as T;
    if (!passes(l)) continue;
    matched++;
    if (shown.length < limit) shown.push(l);
    else if (needle === "" && filter.taskId === "" && min === 0) {
      matched = lines.length;
      break;
    }
  }
  shown.reverse();
  return { shown, matched };
}

/**
 * Splits text around case-insensitive occurrences of `needle` (for highlighting search matches).
 * Concatenating the parts gives back `text`.
 */
export function splitMatches(text: string, needle: string): { text: string; match: boolean }[] {
  const hay = text.toLowerCase();
  const n = needle.toLowerCase();
  // Lower-casing can change the length of some characters (İ): then offsets would not line up.
  if (n === "" || hay.length !== text.length) return [{ text, match: false }];
  const out: { text: string; match: boolean }[] = [];
  let from = 0;
  for (;;) {
    const at = hay.indexOf(n, from);
    if (at === -1) break;
    if (at > from) out.push({ text: text.slice(from, at), match: false });
    out.push({ text: text.slice(at, at + n.length), match: true });
    from = at + n.length;
  }
  if (from < text.length) out.push({ text: text.slice(from), match: false });
  return out;
}

/**
 * Durations and instants as users type them (`30s`, `5m`, `1h30m`, `2d`, ISO-8601) and as the
 * CLI prints them.
 */
import { parseDurationText } from "@cdktr/protocol";
import { CliError } from "../errors.js";

/**
 * Milliseconds in a duration such as `500ms`, `30s`, `5m`, `1h`, `2d`, `1w` or a compound
 * `1h30m` (the project's one grammar, `parseDurationText` of `@cdktr/protocol`). Returns
 * undefined when `text` is not a duration.
 */
export const tryParseDuration: (text: string) => number | undefined = parseDurationText;

/**
 * Like {@link tryParseDuration} but throws a usage error naming `what`.
 * @throws CliError (exit code 2) when `text` is not a duration.
 */
export function parseDuration(text: string, what = "duration"): number {
  const ms = tryParseDuration(text);
  if (ms === undefined) {
    throw new CliError(`invalid ${what} ${JSON.stringify(text)}: use a duration like 30s, 5m, 1h, 2d or 1h30m`, 2);
  }
  return ms;
}

/**
 * An instant typed on the command line: a duration meaning "that long ago" (`1h`), `now`, or an
 * ISO-8601 date/time (`2026-11-28`, `2026-11-28T13:00:00Z`; without an offset it is local time).
 * Returns the instant as an ISO-8601 UTC string.
 * @throws CliError (exit code 2) when `text` is neither.
 */
export function parseInstant(text: string, what: string, now: number = Date.now()): string {
  const t = text.trim();
  if (t.toLowerCase() === "now") return new Date(now).toISOString();
  const ago = tryParseDuration(t);
  if (ago !== undefined) return new Date(now - ago).toISOString();
  if (/^\d{4}-\d{2}-\d{2}/.test(t)) {
    const ms = Date.parse(t);
    if (Number.isFinite(ms)) return new Date(ms).toISOString();
  }
  throw new CliError(
    `invalid ${what} ${JSON.stringify(text)}: use a duration ago (30m, 1h, 2d), \`now\`, or an ISO-8601 time (2026-11-28T13:00:00Z)`,
    2,
  );
}

/** `850ms`, `12.3s`, `4m05s`, `2h03m`, `3d04h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const totalS = Math.floor(ms / 1000);
  const pad = (n: number): string => String(n).padStart(2, "0");
  if (totalS < 3600) return `${Math.floor(totalS / 60)}m${pad(totalS % 60)}s`;
  const totalM = Math.floor(totalS / 60);
  if (totalM < 1440) return `${Math.floor(totalM / 60)}h${pad(totalM % 60)}m`;
  const totalH = Math.floor(totalM / 60);
  return `${Math.floor(totalH / 24)}d${pad(totalH % 24)}h`;
}

/** Duration between two ISO instants (`end` defaults to now), or `-` when `start` is null. */
export function elapsed(start: string | null, end: string | null, now: number = Date.now()): string {
  if (start === null) return "-";
  const a = Date.parse(start);
  const b = end === null ? now : Date.parse(end);
  return formatDuration(b - a);
}

/**
 * An instant for people: `2026-11-28 13:00:05` in `timeZone` (default: the process's local
 * zone), with the zone's short name when `withZone`.
 */
export function formatInstant(iso: string | null, options: { timeZone?: string; withZone?: boolean } = {}): string {
  if (iso === null) return "-";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const fmt = new Intl.DateTimeFormat("en-CA", {
    ...(options.timeZone === undefined ? {} : { timeZone: options.timeZone }),
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    ...(options.withZone === true ? { timeZoneName: "short" } : {}),
  });
  const parts = Object.fromEntries(fmt.formatToParts(d).map((p) => [p.type, p.value]));
  const base = `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
  return options.withZone === true && parts.timeZoneName !== undefined ? `${base} ${parts.timeZoneName}` : base;
}

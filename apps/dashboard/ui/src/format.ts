import { formatDuration } from "../../src/shared/timeline";

/** Local date and time of an ISO instant ("" for null). */
export function localTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === "") return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Local time of day with milliseconds (log lines). */
export function clockTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A run's duration: finished - started, or now - started while it runs ("" before it starts). */
export function runDuration(startedAt: string | null, finishedAt: string | null, now: number): string {
  if (startedAt === null) return "";
  const start = Date.parse(startedAt);
  if (Number.isNaN(start)) return "";
  const end = finishedAt === null ? now : Date.parse(finishedAt);
  return formatDuration(end - start);
}

/** The first characters of an id, for tables. */
export function shortId(id: string): string {
  return id.length > 12 ? id.slice(0, 8) : id;
}

/** `datetime-local` value (local wall time) to an ISO instant, or undefined when empty/invalid. */
export function localInputToIso(value: string): string | undefined {
  if (value === "") return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/**
 * How often a page showing runs that have not ended reads them again, besides the live events: a
 * safety net for an event lost while a stream (re)connects.
 */
export const LIVE_SAFETY_NET_MS = 5000;

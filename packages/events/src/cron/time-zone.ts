/**
 * Time-zone arithmetic on top of `Intl`: the UTC offset of a zone at an instant, and where it
 * changes (DST transitions). Local wall-clock times are handled as "naive" epoch milliseconds:
 * the local fields read as if they were UTC, so local = instant + offset.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

function isUtc(timeZone: string): boolean {
  return timeZone === "UTC" || timeZone === "Etc/UTC" || timeZone === "Etc/GMT" || timeZone === "GMT";
}

/** Whether `timeZone` is an IANA zone name this runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
  if (timeZone.length === 0) return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Offset of `timeZone` from UTC at instant `t` (epoch ms), in ms: local = t + offset. */
export function offsetMs(timeZone: string, t: number): number {
  if (isUtc(timeZone)) return 0;
  const whole = Math.floor(t / 1000) * 1000;
  let y = 0;
  let mo = 0;
  let d = 0;
  let h = 0;
  let mi = 0;
  let s = 0;
  for (const p of formatter(timeZone).formatToParts(new Date(whole))) {
    switch (p.type) {
      case "year":
        y = Number(p.value);
        break;
      case "month":
        mo = Number(p.value);
        break;
      case "day":
        d = Number(p.value);
        break;
      case "hour":
        h = Number(p.value);
        break;
      case "minute":
        mi = Number(p.value);
        break;
      case "second":
        s = Number(p.value);
        break;
      default:
        break;
    }
  }
  const naive = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC maps years 0-99 to 1900-1999; irrelevant for schedules.
  return naive - whole;
}

/**
 * The first instant in (a, b] where the offset of `timeZone` differs from `offset` (a DST
 * transition), or null when it stays the same. Scans in one-day steps (zones never change twice
 * within a day), then bisects to the second.
 */
export function firstTransition(timeZone: string, a: number, b: number, offset: number): number | null {
  if (isUtc(timeZone)) return null;
  let lo = a;
  while (lo < b) {
    const hi = Math.min(lo + DAY, b);
    if (offsetMs(timeZone, hi) !== offset) {
      // bisect on whole seconds: offset(l) === offset, offset(h) !== offset
      let l = Math.floor(lo / 1000);
      let h = Math.ceil(hi / 1000);
      if (offsetMs(timeZone, l * 1000) !== offset) return lo + 1;
      while (h - l > 1) {
        const mid = Math.floor((l + h) / 2);
        if (offsetMs(timeZone, mid * 1000) === offset) l = mid;
        else h = mid;
      }
      return h * 1000;
    }
    lo = hi;
  }
  return null;
}

/** One hour in ms. */
export const HOUR_MS = HOUR;

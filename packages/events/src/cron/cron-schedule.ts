import { Cron } from "croner";
import { errorMessage } from "@cdktr/protocol";
import { InvalidScheduleError } from "../errors.js";
import { HOUR_MS, firstTransition, isValidTimeZone, offsetMs } from "./time-zone.js";

/** What a schedule is computed from: the cron-related fields of a workflow definition. */
export interface ScheduleSpec {
  /** 6-field croner expression, seconds first, day of week 0-6 with Sunday 0. */
  schedule: string;
  /** IANA timezone the expression is evaluated in. @default "UTC" */
  timezone?: string | null | undefined;
  /** No occurrence before this instant (ISO-8601 string, Date or epoch ms). */
  startTime?: string | Date | number | null | undefined;
}

const SEARCH_GUARD = 10_000;

/**
 * A compiled croner pattern matched on naive times (`utcOffset: 0`: plain UTC arithmetic; the
 * `"Etc/UTC"` timezone gives the same answers through `Intl`, about six times slower), shared by
 * every schedule with the same expression, with a one-entry memo: the scheduler asks for the
 * same instant once per workflow when many share an expression (`* * * * * *`, `0 0 * * * *`).
 */
interface NaiveMatcher {
  readonly cron: Cron;
  memoFrom: number;
  memoNext: number | null;
}

/** Shared matchers by expression; cleared when it grows past {@link MAX_MATCHERS}. */
const matchers = new Map<string, NaiveMatcher>();
const MAX_MATCHERS = 4096;

/**
 * The shared matcher of `expression`, or null when it can never match (e.g. 30 February).
 * @throws Error from croner when the pattern is invalid
 */
function matcherOf(expression: string): NaiveMatcher | null {
  let m = matchers.get(expression);
  if (m === undefined) {
    const cron = new Cron(expression, { utcOffset: 0, paused: true });
    // An expression that can never match has no next run at all.
    if (cron.nextRun(new Date(Date.UTC(2000, 0, 1))) === null) return null;
    if (matchers.size >= MAX_MATCHERS) matchers.clear();
    m = { cron, memoFrom: Number.NaN, memoNext: null };
    matchers.set(expression, m);
  }
  return m;
}

/**
 * A compiled cron schedule in a timezone, with cdktr's DST rules:
 *
 * - **fixed-hour** schedules (the hour field has no `*` and no `/`, e.g. `0 30 2 * * *` or
 *   `0 0 9-17 * * *`) fire once on a fall-back day, at the FIRST of the two ambiguous instants;
 *   wall-clock times that fall inside a spring-forward gap fire once, at the end of the gap;
 * - **wildcard or step hours** (`*`, `*\/2`, `1-23/3`) fire at every real instant whose local
 *   time matches: both passes of a repeated hour, and nothing for wall-clock times that do not
 *   exist.
 *
 * croner does the field matching on the local wall clock (evaluated as naive UTC); this class
 * maps local times to instants itself, because croner's own DST handling differs from these
 * rules (it drops gap times of step schedules and repeats step minutes in a fixed hour).
 */
export class CronSchedule {
  /** The expression as given. */
  readonly expression: string;
  /** IANA timezone. */
  readonly timezone: string;
  /** Epoch ms of the start time, or null. */
  readonly startTime: number | null;
  /** True when the hour field is fixed (no `*`, no step): see the class comment for the rules. */
  readonly fixedHour: boolean;
  readonly #matcher: NaiveMatcher;

  private constructor(
    expression: string,
    timezone: string,
    startTime: number | null,
    matcher: NaiveMatcher,
    fixedHour: boolean,
  ) {
    this.expression = expression;
    this.timezone = timezone;
    this.startTime = startTime;
    this.#matcher = matcher;
    this.fixedHour = fixedHour;
  }

  /**
   * Compile a schedule.
   * @throws InvalidScheduleError naming the bad expression, timezone or start time.
   */
  static parse(spec: ScheduleSpec, workflowId?: string): CronSchedule {
    const where = workflowId === undefined ? "" : `workflow ${workflowId}: `;
    const opts = workflowId === undefined ? {} : { workflowId };
    const expression = spec.schedule.trim();
    const timezone = spec.timezone ?? "UTC";
    if (!isValidTimeZone(timezone)) {
      throw new InvalidScheduleError(
        `${where}unknown timezone ${JSON.stringify(timezone)}: use an IANA name such as "Europe/London"`,
        opts,
      );
    }
    let startTime: number | null = null;
    if (spec.startTime !== undefined && spec.startTime !== null) {
      startTime =
        spec.startTime instanceof Date
          ? spec.startTime.getTime()
          : typeof spec.startTime === "number"
            ? spec.startTime
            : Date.parse(spec.startTime);
      if (!Number.isFinite(startTime)) {
        throw new InvalidScheduleError(
          `${where}start time ${JSON.stringify(spec.startTime)} is not an ISO-8601 instant`,
          opts,
        );
      }
    }
    const fields = expression.split(/\s+/);
    if (fields.length !== 6 && fields.length !== 5) {
      throw new InvalidScheduleError(
        `${where}cron ${JSON.stringify(expression)} has ${fields.length} fields; expected 6 (sec min hour dom month dow) or 5`,
        opts,
      );
    }
    let matcher: NaiveMatcher | null;
    try {
      matcher = matcherOf(expression);
    } catch (e) {
      throw new InvalidScheduleError(`${where}invalid cron ${JSON.stringify(expression)}: ${errorMessage(e)}`, {
        ...opts,
        cause: e,
      });
    }
    if (matcher === null)
      throw new InvalidScheduleError(
        `${where}invalid cron ${JSON.stringify(expression)}: the expression never matches`,
        opts,
      );
    const hour = fields.length === 6 ? fields[2] : fields[1];
    const fixedHour = hour !== undefined && !/[*?/]/.test(hour);
    return new CronSchedule(expression, timezone, startTime, matcher, fixedHour);
  }

  /** Naive local times matching the expression, strictly after naive `n`. */
  #naiveAfter(n: number): number | null {
    const m = this.#matcher;
    if (m.memoFrom === n) return m.memoNext;
    const d = m.cron.nextRun(new Date(n));
    const next = d === null ? null : d.getTime();
    m.memoFrom = n;
    m.memoNext = next;
    return next;
  }

  /**
   * The first occurrence strictly after instant `from` (epoch ms), or null if none remains.
   *
   * Walks the real timeline one constant-offset segment at a time: inside a segment, local
   * times map to instants monotonically (t = local - offset); at a transition the DST rules
   * decide (gap: fixed-hour schedules fire once at its end; overlap: fixed-hour schedules skip
   * the repeated local times of the second pass).
   */
  nextAfter(from: number): number | null {
    const tz = this.timezone;
    let cur = from;
    if (this.startTime !== null && cur < this.startTime - 1) cur = this.startTime - 1;
    for (let guard = 0; guard < SEARCH_GUARD; guard++) {
      const o = offsetMs(tz, cur + 1);
      const naive = this.#naiveAfter(cur + o);
      if (naive === null) return null;
      const t = naive - o;
      const changed = offsetMs(tz, t) !== o || t - cur > HOUR_MS;
      const T = changed ? firstTransition(tz, cur, t, o) : null;
      if (T === null) {
        if (this.fixedHour) {
          // Second pass of a fall-back overlap: local times that already happened are skipped.
          const before = offsetMs(tz, t - 3 * HOUR_MS);
          if (before > o) {
            const fallBack = firstTransition(tz, t - 3 * HOUR_MS, t, before);
            if (fallBack !== null && naive < fallBack + before) {
              cur = fallBack + (before - o) - 1;
              continue;
            }
          }
        }
        return t;
      }
      const o2 = offsetMs(tz, T);
      if (o2 > o) {
        // spring forward: local times [T + o, T + o2) do not exist
        if (this.fixedHour) {
          const inGap = this.#naiveAfter(T + o - 1);
          if (inGap !== null && inGap < T + o2) return T;
        }
        cur = T - 1;
      } else {
        // fall back: local times [T + o2, T + o) happen again after T
        cur = this.fixedHour ? T + (o - o2) - 1 : T - 1;
      }
    }
    return null;
  }

  /** Occurrences in (after, until], ascending, at most `limit` (the earliest ones). */
  between(after: number, until: number, limit = 10_000): number[] {
    const out: number[] = [];
    let t = this.nextAfter(after);
    while (t !== null && t <= until && out.length < limit) {
      out.push(t);
      t = this.nextAfter(t);
    }
    return out;
  }

  /**
   * The latest `count` occurrences in (after, until], ascending. Searches backwards in growing
   * windows, so it stays cheap after a long downtime of a frequent schedule.
   */
  latest(after: number, until: number, count: number): number[] {
    if (count <= 0 || until <= after) return [];
    let window = 60_000;
    for (;;) {
      const start = Math.max(after, until - window);
      const found: number[] = [];
      let t = this.nextAfter(start);
      while (t !== null && t <= until) {
        found.push(t);
        if (found.length > count) found.shift();
        t = this.nextAfter(t);
      }
      if (found.length >= count || start <= after) return found;
      window *= 8;
    }
  }

  /** The next `n` occurrences strictly after `from`. */
  next(from: number, n: number): number[] {
    const out: number[] = [];
    let t: number | null = from;
    while (out.length < n) {
      t = this.nextAfter(t);
      if (t === null) break;
      out.push(t);
    }
    return out;
  }
}

/**
 * The next `n` occurrences of a schedule strictly after `from` (for `cdktr workflow show`).
 * An occurrence exactly at `startTime` counts; none is before it.
 * @throws InvalidScheduleError when the expression, timezone or start time is invalid.
 */
export function nextOccurrences(spec: ScheduleSpec, from: Date, n: number): Date[] {
  return CronSchedule.parse(spec)
    .next(from.getTime(), n)
    .map((t) => new Date(t));
}

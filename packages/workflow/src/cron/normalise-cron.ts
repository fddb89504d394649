/**
 * Cron expressions of workflow files, validated with croner and normalised to the 6-field
 * form (seconds first, day of week 0-6 with Sunday 0) that the scheduler evaluates.
 */
import { Cron } from "croner";
import { errorMessage } from "@cdktr/protocol";

/**
 * How the numbers of the day-of-week field are read:
 * - `standard`: 0-6 with Sunday 0 (7 is also Sunday), as in Vixie cron and croner.
 * - `cdktr`: 1-7 with Sunday 1, as the original cdktr (Rust `cron` crate, Quartz style) read
 *   them, so `0 0 9 * * 2-6` means Monday to Friday.
 */
export type CronDialect = "standard" | "cdktr";

/** Options passed to croner when the scheduler evaluates a normalised `schedule`. */
export const CRON_OPTIONS = {
  /** Normalised schedules always have 6 fields. */
  mode: "6-part",
  /** Day-of-month and day-of-week are OR-ed when both are restricted (Vixie cron; croner default). */
  domAndDow: false,
} as const;

/** Result of {@link normaliseCron}. */
export type NormaliseCronResult = { ok: true; schedule: string; warnings: string[] } | { ok: false; error: string };

const DAY_NAMES = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"] as const;

/**
 * Validates a cron expression and returns it as a 6-field croner pattern.
 *
 * - 5 fields (`min hour dom month dow`) get `0` seconds prepended.
 * - 6 fields (`sec min hour dom month dow`) are kept, as in the original.
 * - 7 fields (with a trailing year, which the original allowed): only `*` or `?` is accepted as
 *   the year and dropped; any other year is an error (bound a workflow in time with
 *   `start_time` or by removing it instead).
 * - With dialect `cdktr`, day-of-week numbers 1-7 are translated to 0-6. With `standard`, a
 *   numeric day of week in a 6/7-field expression (the original's format) gives a warning that
 *   shows both readings.
 *
 * @param timezone IANA zone the expression is checked in (an unknown zone is an error).
 */
export function normaliseCron(
  expression: string,
  opts: { dialect?: CronDialect; timezone?: string } = {},
): NormaliseCronResult {
  const dialect = opts.dialect ?? "standard";
  const fields = expression
    .trim()
    .split(/\s+/)
    .filter((f) => f !== "");
  const warnings: string[] = [];
  if (fields.length < 5 || fields.length > 7) {
    return {
      ok: false,
      error: `cron \`${expression}\` has ${fields.length} fields; use 5 (min hour dom month dow), 6 (sec min hour dom month dow) or 7 (6 + year)`,
    };
  }
  const original = fields.length;
  if (fields.length === 5) fields.unshift("0");
  if (fields.length === 7) {
    const year = fields.pop() as string;
    if (year !== "*" && year !== "?") {
      return {
        ok: false,
        error: `cron \`${expression}\`: a year field other than \`*\` is not supported (got \`${year}\`); drop the 7th field and bound the schedule with start_time instead`,
      };
    }
  }
  const dow = fields[5] as string;
  const numeric = /\d/.test(dow.replace(/[#/]\d+/g, ""));
  if (dialect === "cdktr" && numeric) {
    const translated = translateQuartzDow(dow);
    if (!translated.ok) return { ok: false, error: `cron \`${expression}\`: ${translated.error}` };
    fields[5] = translated.field;
  } else if (dialect === "standard" && numeric && original >= 6) {
    const asStandard = describeDow(dow, 0);
    const translated = translateQuartzDow(dow);
    const asCdktr = translated.ok ? describeDow(translated.field, 0) : null;
    warnings.push(
      `day of week \`${dow}\` is read as ${asStandard ?? "0-6 numbers"} (0-6, Sunday = 0)` +
        (asCdktr === null ? "" : `; the original cdktr read it as ${asCdktr} (1-7, Sunday = 1)`) +
        ". Set `cron_dialect: cdktr` for the original reading, or write day names (MON-FRI) to silence this warning",
    );
  }
  const dom = fields[3] as string;
  if (!isWildcard(dom) && !isWildcard(fields[5] as string)) {
    warnings.push(
      `cron \`${expression}\` restricts both day of month (\`${dom}\`) and day of week (\`${fields[5] as string}\`): it fires on days matching EITHER (Vixie cron rule); put \`*\` or \`?\` in one of them if that is not what you want`,
    );
  }
  const schedule = fields.join(" ");
  let next: Date | null;
  try {
    const cron = new Cron(schedule, { ...CRON_OPTIONS, timezone: opts.timezone ?? "UTC" });
    next = cron.nextRun();
  } catch (e: unknown) {
    const msg = errorMessage(e).replace(/^CronPattern:\s*/, "");
    return { ok: false, error: `invalid cron \`${expression}\`: ${msg}` };
  }
  if (next === null) warnings.push(`cron \`${expression}\` never fires (e.g. a day that does not exist in that month)`);
  return { ok: true, schedule, warnings };
}

function isWildcard(field: string): boolean {
  return field === "*" || field === "?";
}

/** Translates the numbers of a Quartz day-of-week field (1-7, Sunday 1) to 0-6 (Sunday 0). */
function translateQuartzDow(field: string): { ok: true; field: string } | { ok: false; error: string } {
  const out: string[] = [];
  for (const part of field.split(",")) {
    // Keep what follows `/` (a step) or `#` (nth weekday of the month) as is.
    const m = /^([^/#]*)([/#].*)?$/.exec(part);
    const base = m?.[1] ?? part;
    const suffix = m?.[2] ?? "";
    let error: string | null = null;
    const translated = base.replace(/\d+/g, (d) => {
      const n = Number(d);
      if (n < 1 || n > 7) error = `day of week ${n} is out of range for cron_dialect cdktr (1-7, Sunday = 1)`;
      return String(n - 1);
    });
    if (error !== null) return { ok: false, error };
    out.push(translated + suffix);
  }
  return { ok: true, field: out.join(",") };
}

/** Names the days of a simple 0-6 field (`1-5`, `0,6`, `*\/2`), or null for `L`/`#`/names. */
function describeDow(field: string, _base: 0): string | null {
  const days = new Set<number>();
  for (const part of field.split(",")) {
    const m = /^(\*|\d+)(?:-(\d+))?(?:\/(\d+))?$/.exec(part);
    if (m === null) return null;
    const from = m[1] === "*" ? 0 : Number(m[1]);
    const to = m[2] !== undefined ? Number(m[2]) : m[1] === "*" || m[3] !== undefined ? 6 : from;
    const step = m[3] !== undefined ? Number(m[3]) : 1;
    if (step < 1 || from > 7 || to > 7) return null;
    for (let d = from; d <= to; d += step) days.add(d % 7);
  }
  const sorted = [...days].sort((a, b) => a - b);
  // Print runs of consecutive days as ranges: Mon-Fri, Sun,Sat.
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    const a = DAY_NAMES[sorted[i] as number] as string;
    const b = DAY_NAMES[sorted[j] as number] as string;
    parts.push(j - i >= 2 ? `${a}-${b}` : j === i ? a : `${a},${b}`);
    i = j + 1;
  }
  return parts.join(",");
}

/**
 * The one duration grammar of cdktr, shared by workflow files (`timeout`, `retries.backoff`,
 * `jitter`), the CLI (`--since 1h`, `--timeout 30s`) and settings: a number followed by a unit,
 * `ms`, `s`, `m`, `h`, `d` or `w`, repeated for compounds (`1h30m`); case and surrounding blanks
 * do not matter.
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** What {@link parseDurationText} accepts, for error messages. */
export const DURATION_HINT = 'a duration such as "500ms", "30s", "5m", "2h", "1d", "1w" or "1h30m"';

/**
 * Milliseconds (rounded) of a duration with units such as `500ms`, `30s`, `1h30m`; `undefined`
 * when `text` is not one (a bare number is not: its unit depends on the field, see
 * {@link parseDurationWithUnit}).
 */
export function parseDurationText(text: string): number | undefined {
  const s = text.trim().toLowerCase();
  if (s === "") return undefined;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
  let total = 0;
  let consumed = 0;
  for (let m = part.exec(s); m !== null; m = part.exec(s)) {
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ""] ?? Number.NaN);
    consumed = part.lastIndex;
  }
  if (consumed !== s.length || !Number.isFinite(total)) return undefined;
  return Math.round(total);
}

/**
 * A duration that may also be a bare number (or numeric string) in `numberUnit`, as workflow
 * fields allow (`timeout: 30` is seconds, `jitter: 500` milliseconds). Returns the milliseconds
 * or an error message saying what is accepted.
 */
export function parseDurationWithUnit(
  value: unknown,
  numberUnit: "s" | "ms",
): { ok: true; ms: number } | { ok: false; error: string } {
  const factor = numberUnit === "s" ? 1000 : 1;
  const hint = `use a number of ${numberUnit === "s" ? "seconds" : "milliseconds"} or a string such as "500ms", "30s", "5m", "1h30m"`;
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0)
      return { ok: false, error: `duration must be a non-negative number; ${hint}` };
    return { ok: true, ms: Math.round(value * factor) };
  }
  if (typeof value !== "string") return { ok: false, error: `expected a duration; ${hint}` };
  const s = value.trim();
  if (s === "") return { ok: false, error: `empty duration; ${hint}` };
  if (/^\d+(\.\d+)?$/.test(s)) return { ok: true, ms: Math.round(Number(s) * factor) };
  const ms = parseDurationText(s);
  if (ms === undefined) return { ok: false, error: `invalid duration ${JSON.stringify(value)}; ${hint}` };
  return { ok: true, ms };
}

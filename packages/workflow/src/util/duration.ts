/**
 * Durations in workflow files: `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`, compounds such as
 * `"1h30m"`, or a bare number in a unit chosen by the field (seconds for `timeout`, milliseconds
 * for `jitter`).
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/**
 * Parses a duration to whole milliseconds.
 * @param numberUnit the unit of a bare number (or numeric string).
 * @returns the milliseconds, or an error message saying what is accepted.
 */
export function parseDuration(
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
  if (/^\d+(\.\d+)?$/.test(s)) return { ok: true, ms: Math.round(Number(s) * factor) };
  if (s === "") return { ok: false, error: `empty duration; ${hint}` };
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < s.length) {
    const start = PART.lastIndex;
    const m = PART.exec(s);
    if (m === null || m.index !== start)
      return { ok: false, error: `invalid duration ${JSON.stringify(value)}; ${hint}` };
    total += Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
  }
  return { ok: true, ms: Math.round(total) };
}

/** "Did you mean" suggestions for unknown keys. */

/** Common names from other tools (and the original's own examples) for our keys. */
const ALIASES: Readonly<Record<string, string>> = {
  dependencies: "depends",
  depends_on: "depends",
  dependson: "depends",
  deps: "depends",
  needs: "depends",
  command: "cmd",
  arguments: "args",
  argv: "args",
  schedule: "cron",
  tz: "timezone",
  time_zone: "timezone",
  cwd: "working_directory",
  workdir: "working_directory",
  environment: "env",
  retry: "retries",
  labels: "agent_labels",
  startTime: "start_time",
  scriptPath: "script_path",
};

/** Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] as number;
      prev[j] = Math.min(up + 1, (prev[j - 1] as number) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] as number;
}

/** The known key closest to `key`, or null when none is close. */
export function suggestKey(key: string, known: readonly string[]): string | null {
  const alias = ALIASES[key] ?? ALIASES[key.toLowerCase()];
  if (alias !== undefined && known.includes(alias)) return alias;
  const lower = key.toLowerCase().replace(/-/g, "_");
  let best: string | null = null;
  let bestScore = Infinity;
  for (const k of known) {
    if (k === lower) return k;
    const d = editDistance(lower, k);
    const prefix = commonPrefix(lower, k);
    const close =
      d <= Math.max(2, Math.floor(k.length / 3)) || (prefix >= 4 && prefix >= Math.min(lower.length, k.length) - 1);
    const score = d - prefix / 10;
    if (close && score < bestScore) {
      best = k;
      bestScore = score;
    }
  }
  return best;
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

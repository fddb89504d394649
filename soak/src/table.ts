/** The soak's result as a plain-text table (stdout, and the test's failure message). */
import type { SoakReport } from "./soak.js";

/** One row per field of `latest.json`, with what it must be. */
export function renderTable(r: SoakReport): string {
  const ms = (v: number | null): string => (v === null ? "-" : `${v} ms`);
  const rows: [string, string, string][] = [
    ["seed", String(r.seed), ""],
    ["acked (triggers acknowledged)", String(r.acked), ""],
    ["terminal (of those)", String(r.terminal), `= acked (${r.terminal === r.acked ? "ok" : "BROKEN"})`],
    ["executedTwice", String(r.executedTwice), `0 (${r.executedTwice === 0 ? "ok" : "BROKEN"})`],
    ["requeuedAfterCrash", String(r.requeuedAfterCrash), "counted apart"],
    ["logLinesLost", String(r.logLinesLost), `0 (${r.logLinesLost === 0 ? "ok" : "BROKEN"})`],
    ["logLinesDuplicated", String(r.logLinesDuplicated), `0 (${r.logLinesDuplicated === 0 ? "ok" : "BROKEN"})`],
    [
      "occurrencesDuplicated",
      String(r.occurrencesDuplicated),
      `0 (${r.occurrencesDuplicated === 0 ? "ok" : "BROKEN"})`,
    ],
    ["occurrencesMissed", String(r.occurrencesMissed), `0 (${r.occurrencesMissed === 0 ? "ok" : "BROKEN"})`],
    ["principalRestarts", String(r.principalRestarts), ""],
    ["recoveryMsP50", ms(r.recoveryMsP50), "restart -> first answered ping"],
    ["recoveryMsMax", ms(r.recoveryMsMax), ""],
    [
      "faults",
      Object.entries(r.faultsByKind)
        .map(([k, n]) => `${k} ${n}`)
        .join(", "),
      "",
    ],
    ["invariantsHeld", String(r.invariantsHeld), ""],
  ];
  const failovers = r.details.failoversMs as number[] | undefined;
  if (failovers !== undefined) {
    const ttl = Number(r.details.leaderTtlMs);
    rows.splice(rows.length - 2, 0, [
      "failovers (leader killed -> next leads)",
      failovers.length === 0 ? "-" : `max ${Math.max(...failovers)} ms of ${failovers.length}`,
      `<= TTL ${ttl} + 2000 ms`,
    ]);
  }
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  const lines = rows.map(([a, b, c]) => `| ${a.padEnd(w0)} | ${b.padEnd(w1)} | ${c}`.trimEnd());
  const extra = r.violations.map((v) => `  BROKEN: ${v}`);
  return [...lines, ...extra].join("\n");
}

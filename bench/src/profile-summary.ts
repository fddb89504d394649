/**
 * Summarise a V8 `.cpuprofile` (from `node --cpu-prof`, e.g. `npm run bench -- --profile
 * trigger`): self time by function and by module (package or app source file).
 *
 *   node bench/dist/profile-summary.js <file.cpuprofile> [top=25]
 */
import { readFileSync } from "node:fs";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Group key of a source URL: a package name, an app/package source path, or node internals. */
export function moduleOf(url: string): string {
  if (url === "") return "(native / V8)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm?.[1] !== undefined) return nm[1];
  const ws = /\/(apps|packages)\/([^/]+)\/dist\/(.*)$/.exec(url);
  if (ws !== null) return `${ws[1]}/${ws[2]}/${ws[3]}`;
  if (url.startsWith("node:")) return "node internals";
  return url;
}

/** Self time (ms) per function and per module. */
export function summariseProfile(p: Profile): {
  totalMs: number;
  byFunction: [string, number][];
  byModule: [string, number][];
} {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (n === undefined) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const name = `${functionName || "(anonymous)"} ${moduleOf(url)}:${lineNumber + 1}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    const m =
      functionName === "(idle)"
        ? "(idle)"
        : functionName === "(garbage collector)"
          ? "(garbage collector)"
          : functionName === "(program)"
            ? "(program)"
            : moduleOf(url);
    mod.set(m, (mod.get(m) ?? 0) + us);
    total += us;
  }
  const sort = (m: Map<string, number>): [string, number][] =>
    [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 1000]);
  return { totalMs: total / 1000, byFunction: sort(fn), byModule: sort(mod) };
}

function main(): void {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write("usage: profile-summary.js <file.cpuprofile> [top]\n");
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? "25");
  const s = summariseProfile(JSON.parse(readFileSync(file, "utf8")) as Profile);
  const busy = s.totalMs - (s.byModule.find(([k]) => k === "(idle)")?.[1] ?? 0);
  const pct = (v: number): string => `${((100 * v) / busy).toFixed(1)}%`.padStart(6);
  process.stdout.write(
    `${file}: ${s.totalMs.toFixed(0)} ms sampled, ${busy.toFixed(0)} ms busy (percentages of busy)\n\nby module:\n`,
  );
  for (const [k, v] of s.byModule.filter(([k]) => k !== "(idle)").slice(0, top))
    process.stdout.write(`${pct(v)} ${v.toFixed(0).padStart(7)} ms  ${k}\n`);
  process.stdout.write("\nby function:\n");
  for (const [k, v] of s.byFunction.filter(([k]) => !k.startsWith("(idle)")).slice(0, top))
    process.stdout.write(`${pct(v)} ${v.toFixed(0).padStart(7)} ms  ${k}\n`);
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) main();

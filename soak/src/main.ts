/**
 * `npm run soak [-- --minutes N] [--seed N]`: runs the fault-injection soak (see soak.ts),
 * prints the table, writes `soak/results/latest.json`, and exits 1 when an invariant broke.
 * `--seconds N` runs a shorter soak. The default seed is random (printed, replay it with
 * `--seed`). `--store postgres` keeps the state in a fresh schema of the PostgreSQL at
 * `CDKTR_SOAK_DATABASE_URL` (default the local `test` database); `--principals N` runs N
 * principals on it (one leads; principal faults kill the leader); `--leader-ttl-ms N`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { errorMessage } from "@cdktr/protocol";
import { runSoak } from "./soak.js";
import { renderTable } from "./table.js";

const RESULTS_DIR = fileURLToPath(new URL("../results/", import.meta.url));

function argValue(args: readonly string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const a = args[i] ?? "";
  return a.includes("=") ? a.slice(a.indexOf("=") + 1) : args[i + 1];
}

function numberArg(args: readonly string[], name: string): number | undefined {
  const v = argValue(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`${name} expects a positive number, got ${JSON.stringify(v)} (e.g. ${name} 10)\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const known = new Set(["--minutes", "--seconds", "--seed", "--store", "--principals", "--leader-ttl-ms"]);
  const unknown = args.filter((a) => a.startsWith("--") && !known.has(a.split("=")[0] ?? ""));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown option ${unknown.join(", ")}: use --minutes N, --seconds N, --seed N, --store sqlite|postgres, --principals N, --leader-ttl-ms N\n`,
    );
    return 2;
  }
  const store = argValue(args, "--store") ?? "sqlite";
  if (store !== "sqlite" && store !== "postgres") {
    process.stderr.write(`--store expects sqlite or postgres, got ${JSON.stringify(store)}\n`);
    return 2;
  }
  const principals = Math.floor(numberArg(args, "--principals") ?? 1);
  if (principals > 1 && store !== "postgres") {
    process.stderr.write("--principals above 1 needs --store postgres (the principals share one database)\n");
    return 2;
  }
  const leaderTtlMs = numberArg(args, "--leader-ttl-ms");
  const minutes = numberArg(args, "--minutes");
  const seconds = numberArg(args, "--seconds");
  const durationMs = seconds !== undefined ? seconds * 1000 : (minutes ?? 5) * 60_000;
  const seed = Math.floor(numberArg(args, "--seed") ?? Math.floor(Math.random() * 2 ** 31)) >>> 0;
  process.stderr.write(
    `soak: ${durationMs / 1000} s, seed ${seed} (replay with --seed ${seed}), ${store}, ${principals} principal(s)\n`,
  );
  const report = await runSoak({
    durationMs,
    seed,
    store,
    principals,
    ...(leaderTtlMs === undefined ? {} : { leaderTtlMs }),
  });
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, "latest.json"), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${renderTable(report)}\n`);
  process.stdout.write(`(soak/results/latest.json)\n`);
  return report.invariantsHeld ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`soak failed to run: ${errorMessage(e)}\n`);
    process.exit(1);
  },
);

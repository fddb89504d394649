/**
 * The fault-injection soak: a principal, two agents, the scheduler (a workflow every second) and
 * a webhook listener under steady mixed load, while a seeded chaos loop kills -9 the principal,
 * an agent or the scheduler and restarts it, SIGSTOPs an agent past the heartbeat timeout, and
 * fills then frees the first agent's spool disk. Then the load stops, the system is left to
 * quiesce (bounded), and {@link checkSoak} checks what the principal stored.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "@cdktr/protocol";
import {
  cleanup,
  killAllServicesSync,
  startAgent,
  startListeners,
  startScheduler,
  type PrincipalFixture,
  type ServiceTuning,
} from "@cdktr/test-utils";
import { checkSoak, type SoakResult } from "./checks.js";
import { SoakError } from "./errors.js";
import { PrincipalSet } from "./principals.js";
import { FAULT_KINDS, planChaos, type FaultKind, type PlannedFault } from "./prng.js";
import { SpoolDisk } from "./spool-disk.js";
import { readStored } from "./stored.js";
import { Supervised, sleep } from "./supervised.js";
import { TriggerLoad } from "./trigger-load.js";
import { LINE_COUNTS, soakWorkflows } from "./workflows.js";

/** Options of {@link runSoak}. */
export interface SoakOptions {
  /** How long load and chaos run (ms); quiescence and checks come on top. */
  durationMs: number;
  /** Seed of the chaos plan and of the load's choices. */
  seed: number;
  /** Progress lines (stderr by default). */
  log?: (line: string) => void;
  /** The principal's agent heartbeat timeout (ms). @default 3000 */
  heartbeatTimeoutMs?: number;
  /** Shortest and longest pause between two faults (ms). @default [2000, 6000] */
  gapMs?: readonly [number, number];
  /** How long the stack runs calmly after the chaos before the scheduler stops (ms). @default 15000 */
  settleMs?: number;
  /** Bound on waiting for every run to be terminal (ms). @default 120000 */
  quiesceMs?: number;
  /** Where the principals keep their state. @default "sqlite" */
  store?: "sqlite" | "postgres";
  /**
   * How many principals share the database (more than one needs `postgres`): a principal fault
   * then kills the leader, and the soak checks that another one leads within the lease TTL + 2 s.
   * @default 1
   */
  principals?: number;
  /** The leaders' lease TTL (`CDKTR_LEADER_TTL_MS`) with several principals. @default 5000 */
  leaderTtlMs?: number;
  /** Only these fault kinds (e.g. only `kill-principal`). @default every kind */
  faults?: readonly FaultKind[];
  /** At most this many faults. @default as many as fit in the duration */
  maxFaults?: number;
}

/** A fault as it was executed. */
export interface ExecutedFault extends PlannedFault {
  /** When it started: ms after the soak's start, and the wall-clock time. */
  atMs: number;
  at: string;
  /** What happened (restart time, bytes filled, skip reason). */
  note: string;
}

/** {@link SoakResult} plus the faults executed. */
export interface SoakReport extends SoakResult {
  faults: ExecutedFault[];
  faultsByKind: Record<FaultKind, number>;
  durationMs: number;
}

/** Run the soak and check it; the caller prints and stores the report. */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const t0 = Date.now();
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const say = (line: string): void => log(`[soak +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
  const hbTimeoutMs = options.heartbeatTimeoutMs ?? 3000;
  const gapMs = options.gapMs ?? [2000, 6000];
  const settleMs = options.settleMs ?? 15_000;
  const quiesceMs = options.quiesceMs ?? 120_000;
  if (!(options.durationMs > 0)) throw new SoakError("BAD_OPTION", "the soak's duration must be positive");

  const unexpectedExits: string[] = [];
  // Error and warning lines of every process, by process: counts and the first distinct messages.
  const problems = new Map<string, { errors: number; warnings: number; messages: Set<string> }>();
  const tuning = (name: string): ServiceTuning => ({
    keepLines: 200,
    onLine: (_line, json) => {
      const level = json?.level;
      if (level !== "error" && level !== "warn") return;
      let p = problems.get(name);
      if (p === undefined) {
        p = { errors: 0, warnings: 0, messages: new Set() };
        problems.set(name, p);
      }
      if (level === "error") p.errors++;
      else p.warnings++;
      if (p.messages.size < 12) p.messages.add(`${level}: ${String(json?.message)}`);
    },
  });
  const supervised: Supervised[] = [];
  const disk = SpoolDisk.mount(2 * 1024 * 1024);
  if (disk.unavailable !== null) say(`spool disk fault will be skipped: ${disk.unavailable}`);
  else say(`agent-1's data directory is a 2 MiB tmpfs at ${disk.dir}`);
  // Interrupted (Ctrl-C): kill every process group started and unmount the disk before exiting.
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const s of supervised) s.down = true;
    killAllServicesSync();
    disk.dispose();
    process.stderr.write(`soak interrupted by ${signal}: processes killed, spool disk unmounted\n`);
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const principalCount = options.principals ?? 1;
  const leaderTtlMs = options.leaderTtlMs ?? 5000;
  let set: PrincipalSet | null = null;
  try {
    set = await PrincipalSet.prepare({
      store: options.store ?? "sqlite",
      count: principalCount,
      env: {
        CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: String(hbTimeoutMs),
        CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: "500",
        CDKTR_ASSIGNMENT_LEASE_MS: "4000",
        CDKTR_SHUTDOWN_GRACE_MS: "3000",
        ...(principalCount > 1 ? { CDKTR_LEADER_TTL_MS: String(leaderTtlMs) } : {}),
      },
      tuning,
    });
    const principals = set;
    const p: PrincipalFixture = principals.first;
    const effects = join(p.home, "effects.log");
    writeFileSync(effects, "");
    p.writeWorkflows(soakWorkflows(effects));

    const onExit = (what: string): void => {
      unexpectedExits.push(what);
    };
    const principalProcs = principals.fixtures.map(
      (f, i) =>
        new Supervised(
          i === 0 ? "principal" : `principal-${i + 1}`,
          async () => {
            await f.start();
            if (f.service === null) throw new SoakError("START_FAILED", "principal: no process");
            return f.service;
          },
          onExit,
          say,
        ),
    );
    await Promise.all(principalProcs.map((s) => s.start()));
    supervised.push(...principalProcs);
    const clientEnv = principals.clientEnv;

    const agentDirs = [disk.dir, join(p.home, "agent-2-data")];
    mkdirSync(agentDirs[1] as string, { recursive: true });
    const agents = agentDirs.map(
      (dataDir, i) =>
        new Supervised(
          `agent-${i + 1}`,
          () =>
            startAgent(p, {
              name: `agent-${i + 1}`,
              dataDir,
              env: {
                ...clientEnv,
                CDKTR_AGENT_ID: `soak-agent-${i + 1}`,
                CDKTR_AGENT_MAX_CONCURRENCY: "4",
                CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: "500",
                CDKTR_AGENT_FETCH_WAIT_MS: "2000",
                CDKTR_TASK_KILL_GRACE_MS: "1000",
                CDKTR_AGENT_SHUTDOWN_GRACE_MS: "2000",
              },
              service: tuning(`agent-${i + 1}`),
            }),
          onExit,
          say,
        ),
    );
    const scheduler = new Supervised(
      "scheduler",
      () => startScheduler(p, { env: clientEnv, service: tuning("scheduler") }),
      onExit,
      say,
    );
    const secret = `soak-${options.seed}-secret`;
    writeFileSync(
      join(p.home, "soak-listeners.yml"),
      "listeners:\n  - type: webhook\n    name: hooks\n    port: 0\n    secret_env: SOAK_HOOK_SECRET\n",
    );
    const listeners = new Supervised(
      "listeners",
      () =>
        startListeners(p, "soak-listeners.yml", {
          env: { ...clientEnv, SOAK_HOOK_SECRET: secret },
          service: tuning("listeners"),
        }),
      onExit,
      say,
    );
    supervised.push(...agents, scheduler, listeners);
    await Promise.all([...agents.map((a) => a.start()), scheduler.start(), listeners.start()]);
    const hookUrl = () => String((listeners.handle?.ready.listeners as { url?: string }[] | undefined)?.[0]?.url);
    say(`stack up: principal on ${p.ports.api}, webhook at ${hookUrl()}`);

    // Keys are enrolled by the leader (the fixture's own client talks to its principal only).
    const leading = principals.fixtures[(await principals.awaitLeader(60_000)) ?? 0] ?? p;
    const loadKey = await leading.createKey("soak-load", "trigger");
    const loadClient = principals.connect({ timeoutMs: 3000, key: loadKey.key });
    const probe = principals.connect({ timeoutMs: 500 });

    // ---- load ----
    const load = new TriggerLoad({ seed: options.seed, client: loadClient, hookUrl, secret });
    load.start();

    // ---- chaos ----
    const endAt = t0 + options.durationMs;
    const plan = planChaos(options.seed, options.maxFaults ?? Math.ceil(options.durationMs / gapMs[0]) + 5, {
      gapMs,
      heartbeatTimeoutMs: hbTimeoutMs,
      ...(options.faults === undefined ? {} : { kinds: options.faults }),
    });
    const failoversMs: number[] = [];
    const leaders: number[] = [];
    /**
     * Kill the principal that leads (the only one on SQLite); with several, wait until another
     * one leads (recorded as a failover, which must take at most the TTL + 2 s).
     */
    const killLeader = async (): Promise<Supervised> => {
      const i = (await principals.leader()) ?? 0;
      const target = principalProcs[i] as Supervised;
      leaders.push(i);
      const killedAt = Date.now();
      await target.kill();
      if (principalProcs.length > 1) {
        const next = await principals.awaitLeader(leaderTtlMs + 30_000, i);
        const ms = Date.now() - killedAt;
        if (next === null)
          chaosProblems.push(`no principal led within ${leaderTtlMs + 30_000} ms of killing the leader`);
        else {
          failoversMs.push(ms);
          if (ms > leaderTtlMs + 2000)
            chaosProblems.push(`a standby led ${ms} ms after the leader was killed (more than the TTL + 2 s)`);
        }
      }
      return target;
    };
    const faults: ExecutedFault[] = [];
    const recoveriesMs: number[] = [];
    const chaosProblems: string[] = [];
    /** Ping until the principal answers (at most 60 s, then the soak records it and goes on). */
    const firstPing = async (): Promise<void> => {
      const giveUpAt = Date.now() + 60_000;
      for (;;) {
        try {
          await probe.ping({ retry: false });
          return;
        } catch (e) {
          if (Date.now() > giveUpAt) {
            chaosProblems.push(`the restarted principal did not answer a ping within 60 s: ${errorMessage(e)}`);
            return;
          }
          await sleep(20);
        }
      }
    };
    for (const f of plan) {
      await sleep(f.gapMs);
      if (Date.now() >= endAt) break;
      const atMs = Date.now() - t0;
      let note = "";
      say(
        `fault ${f.n} at ${new Date().toISOString()}: ${f.kind}${f.kind.includes("agent") ? ` agent-${f.agent + 1}` : ""} for ${f.downMs} ms`,
      );
      switch (f.kind) {
        case "kill-principal": {
          const principal = await killLeader();
          await sleep(f.downMs);
          const restartAt = Date.now();
          const h = await principal.start();
          await firstPing();
          const ms = Date.now() - restartAt;
          recoveriesMs.push(ms);
          note = `ready after ${Math.round(h.readyAt - h.spawnedAt)} ms, first ping answered ${ms} ms after the restart`;
          break;
        }
        case "kill-agent":
        case "kill-scheduler": {
          const target = f.kind === "kill-scheduler" ? scheduler : (agents[f.agent] as Supervised);
          await target.kill();
          await sleep(f.downMs);
          await target.start();
          note = "restarted";
          break;
        }
        case "stop-agent": {
          const target = agents[f.agent] as Supervised;
          target.signal("SIGSTOP");
          await sleep(f.downMs);
          target.signal("SIGCONT");
          note = "resumed";
          break;
        }
        case "fill-spool": {
          if (disk.unavailable !== null) {
            note = `skipped: ${disk.unavailable}`;
            break;
          }
          // The spool is written while the principal is away: with the disk full, the principal
          // is killed for half of the time, so agent 1's tasks write output it cannot spool.
          const bytes = disk.fill();
          const awayMs = Math.round(f.downMs / 2);
          await sleep(300);
          const principal = await killLeader();
          await sleep(awayMs);
          const restartAt = Date.now();
          await principal.start();
          await firstPing();
          const ms = Date.now() - restartAt;
          recoveriesMs.push(ms);
          await sleep(Math.max(0, f.downMs - awayMs - 300));
          disk.free();
          note = `filled ${bytes} bytes; principal away ${awayMs} ms meanwhile (first ping ${ms} ms after its restart); disk freed after ${f.downMs} ms`;
          break;
        }
      }
      if (note !== "") say(`fault ${f.n}: ${note}`);
      faults.push({ ...f, atMs, at: new Date(t0 + atMs).toISOString(), note });
    }
    const chaosEnd = Date.now();
    say(`chaos over after ${faults.length} faults; stopping the load`);
    await load.stop();
    say(`load stopped: ${load.acked.size} triggers acknowledged`);

    // ---- quiescence ----
    const settleLeft = chaosEnd + settleMs - Date.now();
    if (settleLeft > 0) await sleep(settleLeft);
    const schedulerStopAt = Date.now();
    await scheduler.stop();
    const occurrencesUntilMs = Math.floor(schedulerStopAt / 1000) * 1000 - 3000;
    say("scheduler stopped; waiting for every run to be terminal");
    const client = principals.connect({ timeoutMs: 10_000 });
    const quiesceEnd = Date.now() + quiesceMs;
    let open = -1;
    while (Date.now() < quiesceEnd) {
      const page = await client.listRuns({ status: ["QUEUED", "ASSIGNED", "RUNNING"], limit: 1000 });
      open = page.runs.length;
      if (open === 0) break;
      await sleep(1000);
    }
    say(open === 0 ? "quiescent" : `still ${open} open run(s) after ${quiesceMs} ms: checking anyway`);

    // ---- checks ----
    const { runs, tasks, logs } = await readStored(client);
    const effectLines = readFileSync(effects, "utf8").split("\n");
    const result = checkSoak({
      seed: options.seed,
      acked: load.acked,
      runs,
      tasks,
      logs,
      effects: effectLines,
      lineCounts: LINE_COUNTS,
      cronWorkflow: "tick",
      occurrencesUntilMs,
      recoveriesMs,
      unexpectedExits,
    });
    const { refused, neverAcked } = load;
    if (refused.length > 0)
      result.violations.push(`${refused.length} trigger(s) refused: ${refused.slice(0, 5).join("; ")}`);
    if (neverAcked.length > 0)
      result.violations.push(
        `${neverAcked.length} trigger(s) never acknowledged in 120 s: ${neverAcked.slice(0, 5).join("; ")}`,
      );
    result.violations.push(...chaosProblems);
    result.invariantsHeld = result.violations.length === 0;
    for (const s of supervised) s.down = true;
    const faultsByKind = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
    for (const f of faults) if (!f.note.startsWith("skipped")) faultsByKind[f.kind]++;
    result.details = {
      ...result.details,
      triggersSent: load.sent,
      triggersRefused: refused.length,
      triggersNeverAcked: neverAcked.length,
      startFailures: Object.fromEntries(
        [...principalProcs, ...agents, scheduler, listeners].map((s) => [s.name, s.startFailures]),
      ),
      spoolDisk: disk.unavailable ?? "2 MiB tmpfs",
      store: options.store ?? "sqlite",
      principals: principalCount,
      ...(principalCount > 1 ? { leaderTtlMs, failoversMs, killedLeaders: leaders } : {}),
      processProblems: Object.fromEntries(
        [...problems].map(([name, p]) => [name, { errors: p.errors, warnings: p.warnings, messages: [...p.messages] }]),
      ),
    };
    return { ...result, faults, faultsByKind, durationMs: Date.now() - t0 };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    for (const s of supervised) s.down = true;
    await cleanup();
    disk.dispose();
    await set?.dispose();
  }
}

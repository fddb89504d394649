/**
 * 2. Dispatch latency: an idle agent; trigger -> first task process started, where the task
 * records its own start (`sh -c 'date +%s%N >> F'`), one run at a time. Baseline: node spawning
 * the same command directly (detached, piped stdio, like the agent does). The cost of security:
 * the same with CURVE and keys (the default) and with `CDKTR_AUTH=off`, and the store's share: the
 * same on PostgreSQL (`CDKTR_DATABASE_URL`), runs rotating among the three stacks. The targets
 * (issue 15) are on the overhead: ours minus the spawn, minus one same-run fsynced SQLite commit
 * (the floor of "an acknowledged trigger is committed"), measured here too.
 */
import { spawn } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { startAgent, startPrincipal, type PrincipalHandle } from "../harness/cdktr.js";
import { makeTempDir, writeWorkflow } from "../harness/fs.js";
import { createBenchSchema, type BenchSchema } from "../harness/postgres.js";
import { row } from "../harness/result.js";
import { fmt, percent } from "../harness/table.js";
import { nowMs, sleep, summarize } from "../harness/stats.js";
import { profileFlags, type BenchContext, type Scenario } from "../scenario.js";

/** The last line of `file` once it has more than `size` bytes, as epoch ms. */
async function waitStamp(file: string, size: number, timeoutMs: number): Promise<{ ms: number; size: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = statSync(file);
    if (st.size > size) {
      const text = readFileSync(file, "utf8");
      if (text.endsWith("\n")) {
        const lines = text.trimEnd().split("\n");
        const last = lines[lines.length - 1] ?? "";
        return { ms: Number(BigInt(last) / 1000n) / 1000, size: st.size };
      }
    }
    if (Date.now() > deadline) throw new Error(`no start stamp in ${file} after ${timeoutMs} ms`);
    await sleep(1);
  }
}

function spawnOnce(file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", `date +%s%N >> ${file}`], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.resume();
    child.stderr.resume();
    child.on("error", reject);
    child.on("close", () => resolve());
  });
}

/** CURVE on (as users run it), CDKTR_AUTH=off, and CURVE on with the PostgreSQL store. */
const MODES = ["on", "off", "pg"] as const;
type Mode = (typeof MODES)[number];

/** A principal and one idle agent whose task stamps its start into `file`, and what was measured on it. */
interface Stack {
  principal: PrincipalHandle;
  file: string;
  size: number;
  samples: number[];
  ackMs: number[];
  phases: { commit: number[]; start: number[]; agentStart: number[]; fork: number[]; taskReported: number[] };
  stop(): Promise<void>;
}

async function startStack(ctx: BenchContext, dir: string, mode: Mode, databaseUrl: string): Promise<Stack> {
  const auth = mode === "off" ? "off" : "on";
  const wfDir = makeTempDir(`wf-dispatch-${mode}`);
  const file = join(dir, `ours-${mode}.txt`);
  writeFileSync(file, "");
  writeWorkflow(wfDir, "latency", { cmd: "sh", args: ["-c", `date +%s%N >> ${file}`] });
  // Only the measured configuration (CURVE on) is profiled.
  const profiled = (proc: string) => (mode === "on" ? profileFlags(ctx, "dispatch", proc) : {});
  const principal = await startPrincipal({
    workflowDir: wfDir,
    auth,
    ...(mode === "pg" ? { env: { CDKTR_DATABASE_URL: databaseUrl } } : {}),
    ...profiled("principal"),
  });
  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent(principal, { concurrency: 4, id: `bench-agent-${mode}`, ...profiled("agent") });
  } catch (e) {
    await principal.stop();
    throw e;
  }
  return {
    principal,
    file,
    size: 0,
    samples: [],
    ackMs: [],
    phases: { commit: [], start: [], agentStart: [], fork: [], taskReported: [] },
    async stop() {
      await agent.stop();
      await principal.stop();
    },
  };
}

/** One run on an idle stack: trigger -> the task's own start stamp; then wait until it finished. */
async function oneRun(stack: Stack, record: boolean): Promise<void> {
  const client = stack.principal.client;
  const t0 = nowMs();
  const reply = await client.runWorkflow({ workflowId: "latency", source: "bench" });
  const t1 = nowMs();
  const stamp = await waitStamp(stack.file, stack.size, 15_000);
  stack.size = stamp.size;
  if (record) {
    stack.samples.push(stamp.ms - t0);
    stack.ackMs.push(t1 - t0);
  }
  // idle again: wait for the run to finish before the next trigger
  const end = Date.now() + 15_000;
  for (;;) {
    const { run, tasks } = await client.getRun(reply.runId);
    if (run.status === "COMPLETED" || run.status === "FAILED" || run.status === "CRASHED") {
      // Where the time goes (ms-resolution record times): trigger -> commit -> the agent's start
      // (the assignment's commit, the fetchWork reply; the run's startedAt is the agent's clock,
      // sent with its confirmation after the start) -> the task's stamp (spawn and exec).
      if (record && run.startedAt !== null) {
        const created = Date.parse(run.createdAt);
        const started = Date.parse(run.startedAt);
        stack.phases.commit.push(created - t0);
        stack.phases.start.push(stamp.ms - created);
        stack.phases.agentStart.push(started - created);
        stack.phases.fork.push(stamp.ms - started);
        const taskStarted = tasks[0]?.startedAt;
        if (taskStarted !== null && taskStarted !== undefined)
          stack.phases.taskReported.push(Date.parse(taskStarted) - stamp.ms);
      }
      break;
    }
    if (Date.now() > end) throw new Error(`run ${reply.runId} still ${run.status} after 15 s`);
    await sleep(2);
  }
  await sleep(5);
}

/**
 * Commit times of `n` one-row transactions in a fresh SQLite file (WAL, synchronous=FULL, as the
 * principal commits a trigger): the disk's fsync, the floor under any "committed before ack".
 */
function fsyncedCommits(dir: string, n: number): number[] {
  const db = new Database(join(dir, "floor.db"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    const insert = db.prepare("INSERT INTO t (body) VALUES (?)");
    const one = db.transaction((body: string) => insert.run(body));
    const out: number[] = [];
    for (let i = 0; i < n + 10; i++) {
      const t0 = nowMs();
      one(`run ${i}`);
      if (i >= 10) out.push(nowMs() - t0);
    }
    return out;
  } finally {
    db.close();
  }
}

export const dispatchLatency: Scenario = {
  id: "dispatch",
  title: "2. Dispatch latency (trigger -> task process started)",
  needs: ["principal", "agent"],
  async run(ctx) {
    const n = ctx.quick ? 100 : 1000;
    const S = "2 dispatch";
    const dir = makeTempDir("dispatch");

    ctx.log(`floor: ${n} fsynced one-row SQLite commits`);
    const floor = summarize(fsyncedCommits(dir, n));
    ctx.log(`baseline: ${n} direct spawns`);
    const baseFile = join(dir, "baseline.txt");
    writeFileSync(baseFile, "");
    const base: number[] = [];
    let size = 0;
    for (let i = 0; i < n + 10; i++) {
      const t0 = nowMs();
      await spawnOnce(baseFile);
      const stamp = await waitStamp(baseFile, size, 5000);
      size = stamp.size;
      if (i >= 10) base.push(stamp.ms - t0);
    }

    // Ours as users run it (CURVE and keys on) and with CDKTR_AUTH=off, for the cost of
    // security: two stacks (principal + idle agent) up at once, runs alternating between them,
    // one at a time, so that a drifting machine load weighs on both alike.
    ctx.log(`ours: ${n} runs one at a time, CURVE on, off, and on PostgreSQL, rotating`);
    const schema: BenchSchema = await createBenchSchema("cdktr_bench_dispatch");
    const stacks: Record<Mode, Stack> = {
      on: await startStack(ctx, dir, "on", schema.url),
      off: await startStack(ctx, dir, "off", schema.url),
      pg: await startStack(ctx, dir, "pg", schema.url),
    };
    try {
      for (let i = 0; i < n + 10; i++) {
        const order = [...MODES.slice(i % MODES.length), ...MODES.slice(0, i % MODES.length)];
        for (const mode of order) await oneRun(stacks[mode], i >= 10);
      }
    } finally {
      await Promise.all(MODES.map((m) => stacks[m].stop()));
      await schema.drop();
    }
    const ours = stacks.on.samples;
    const phases = stacks.on.phases;
    const ackMs = stacks.on.ackMs;
    const b = summarize(base);
    const o = summarize(ours);
    const plain = summarize(stacks.off.samples);
    const onPg = summarize(stacks.pg.samples);
    ctx.shared.set("dispatch.p50", o.p50);
    ctx.shared.set("dispatch.p99", o.p99);
    return {
      rows: [
        row({
          scenario: S,
          metric: "trigger -> task start p50",
          unit: "ms",
          ours: o.p50,
          baseline: b.p50,
          baselineName: "node spawn of the same command",
          better: "lower",
          target: "overhead <= 1 ms",
          pass: o.p50 - b.p50 - floor.p50 <= 1,
          note: `overhead ${(o.p50 - b.p50 - floor.p50).toFixed(2)} ms (minus the spawn and a ${fmt(floor.p50)} ms fsynced commit); p50 of phases: commit ${fmt(summarize(phases.commit).p50)}, then task ${fmt(summarize(phases.start).p50)} ms (to the agent's start ${fmt(summarize(phases.agentStart).p50)}, its start to the task's stamp ${fmt(summarize(phases.fork).p50)})`,
        }),
        row({
          scenario: S,
          metric: "trigger -> task start p99",
          unit: "ms",
          ours: o.p99,
          baseline: b.p99,
          baselineName: "node spawn of the same command",
          better: "lower",
          target: "overhead <= 5 ms",
          pass: o.p99 - b.p99 - floor.p99 <= 5,
          note: `overhead ${(o.p99 - b.p99 - floor.p99).toFixed(2)} ms (minus the spawn and a ${fmt(floor.p99)} ms fsynced commit)`,
        }),
        row({
          scenario: S,
          metric: "cost of security: trigger -> task start p50 on vs off",
          unit: "ms",
          ours: o.p50,
          baseline: plain.p50,
          baselineName: "the same stack with CDKTR_AUTH=off",
          better: "lower",
          target: "cost < 15 %",
          pass: o.p50 / plain.p50 - 1 < 0.15,
          note: `cost ${percent(o.p50 / plain.p50 - 1)}; ${o.n} runs each, alternating`,
        }),
        row({
          scenario: S,
          metric: "cost of security: trigger -> task start p99 on vs off",
          unit: "ms",
          ours: o.p99,
          baseline: plain.p99,
          baselineName: "the same stack with CDKTR_AUTH=off",
          better: "lower",
          note: `cost ${percent(o.p99 / plain.p99 - 1)}`,
        }),
        row({
          scenario: S,
          metric: "trigger -> task start p50 on PostgreSQL vs SQLite",
          unit: "ms",
          ours: onPg.p50,
          baseline: o.p50,
          baselineName: "the same stack on SQLite (CURVE on)",
          better: "lower",
          note: `p99 ${fmt(onPg.p99)} vs ${fmt(o.p99)} ms; PostgreSQL on 127.0.0.1:5432, ${onPg.n} runs`,
        }),
      ],
      details: {
        n,
        baseline: b,
        ours: o,
        authOff: plain,
        postgres: onPg,
        authOffTriggerAck: summarize(stacks.off.ackMs),
        costOfSecurityP50: o.p50 / plain.p50 - 1,
        triggerAck: summarize(ackMs),
        phases: {
          "trigger sent -> createdAt (commit)": summarize(phases.commit),
          "createdAt -> task's own stamp (assignment committed, fetchWork reply, agent start)": summarize(phases.start),
          "createdAt -> run startedAt (assignment committed, fetchWork reply, the agent's clock)": summarize(
            phases.agentStart,
          ),
          "run startedAt -> task's own stamp (the agent's start to the process running)": summarize(phases.fork),
          "task's own stamp -> task startedAt (agent's report)": summarize(phases.taskReported),
        },
      },
    };
  },
};

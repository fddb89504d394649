/**
 * 8. Abuse of the wire: a peer with an enrolled key sends one message of 1,000,000 empty frames,
 * then one request of 80 MiB in two frames, to the principal's API port, each from its own
 * process. Measured for each: the principal's peak RSS growth (VmHWM reset through
 * `/proc/<pid>/clear_refs` just before) and the p99 of `ping` sent every 10 ms from the bench
 * while the message is sent and handled (and 1 s after), and the longest of those pings (the
 * stall while the million frames become Buffers). Baselines: the RSS growth of a bare
 * zeromq.js ROUTER with the socket options the principal had before issue 13 receiving the same
 * message, and the ping p99 of the same principal when idle.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startPrincipal, type PrincipalHandle } from "../harness/cdktr.js";
import { makeTempDir } from "../harness/fs.js";
import { startProcess, type Proc } from "../harness/proc.js";
import { row } from "../harness/result.js";
import { nowMs, sleep, summarize, type Summary } from "../harness/stats.js";
import { profileFlags, type Scenario } from "../scenario.js";

const ABUSER = fileURLToPath(new URL("../baselines/frame-abuser.js", import.meta.url));
const SINK = fileURLToPath(new URL("../baselines/frame-sink.js", import.meta.url));
const MB = 1024 * 1024;

/** Reset the peak RSS (VmHWM) of `proc` to its current RSS; false when not allowed. */
function resetPeak(proc: Proc): boolean {
  try {
    writeFileSync(`/proc/${proc.pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

interface Attack {
  /** Peak RSS growth of the target, bytes. */
  growth: number;
  /** What the abuser got back. */
  reply: string;
  sendMs: number;
  /** From starting the abuser to its `done` line. */
  totalMs: number;
}

/** Run one abuser against `endpoint` and measure `target`'s peak RSS growth meanwhile. */
async function attack(
  target: Proc,
  endpoint: string,
  mode: "frames" | "big",
  size: number,
  key: string,
): Promise<Attack> {
  await sleep(500);
  const before = target.rss();
  const reset = resetPeak(target);
  const t0 = nowMs();
  const abuser = await startProcess({
    name: `abuser-${mode}`,
    args: [ABUSER, endpoint, mode, String(size)],
    env: { ABUSER_KEY: key },
  });
  const doneLine = await abuser.waitForLine((_l, json) => json?.message === "done", 180_000);
  const totalMs = nowMs() - t0;
  await abuser.exited;
  const done = JSON.parse(doneLine) as { reply: string; sendMs: number };
  // Without the reset, the older peak can only make the figure larger.
  const growth = Math.max(0, target.peakRss() - before);
  return { growth, reply: `${done.reply}${reset ? "" : " (peak not reset)"}`, sendMs: done.sendMs, totalMs };
}

/** Ping `principal` every 10 ms until `stop` resolves (and `tailMs` after); latencies in ms. */
async function pingWhile(principal: PrincipalHandle, stop: Promise<unknown>, tailMs: number): Promise<Summary> {
  const samples: number[] = [];
  let stopping = false;
  const stopped = stop.then(
    () => sleep(tailMs),
    () => sleep(0),
  );
  void stopped.then(() => {
    stopping = true;
  });
  while (!stopping) {
    const t0 = nowMs();
    await principal.client.ping();
    samples.push(nowMs() - t0);
    await sleep(10);
  }
  return summarize(samples);
}

export const abuseFrames: Scenario = {
  id: "abuse-frames",
  title: "10. Abuse of the wire (1,000,000 empty frames; 80 MiB in two frames)",
  needs: ["principal"],
  async run(ctx) {
    const S = "10 abuse-frames";
    const FRAMES = 1_000_000;
    const BIG_MIB = 80;
    const principal = await startPrincipal({
      workflowDir: makeTempDir("wf-abuse"),
      ...profileFlags(ctx, "abuse-frames", "principal"),
    });
    const key = principal.key === null ? "" : JSON.stringify(principal.key);
    const endpoint = `tcp://127.0.0.1:${principal.apiPort}`;
    let idle: Summary;
    let frames: Attack;
    let big: Attack;
    let framesPing: Summary;
    let bigPing: Summary;
    try {
      ctx.log("ours: ping p99 idle (3 s)");
      idle = await pingWhile(principal, sleep(3000), 0);
      ctx.log(`ours: ${FRAMES} empty frames in one message`);
      const f = attack(principal.proc, endpoint, "frames", FRAMES, key);
      framesPing = await pingWhile(principal, f, 1000);
      frames = await f;
      ctx.log(`ours: ${BIG_MIB} MiB in two frames`);
      const b = attack(principal.proc, endpoint, "big", BIG_MIB, key);
      bigPing = await pingWhile(principal, b, 1000);
      big = await b;
    } finally {
      await principal.stop();
    }

    ctx.log("baseline: a bare zeromq.js ROUTER receiving the same messages");
    const sinkFor = async (mode: "frames" | "big", size: number): Promise<Attack> => {
      const sink = await startProcess({ name: "frame-sink", args: [SINK] });
      try {
        return await attack(sink, String(sink.ready.endpoint), mode, size, "");
      } finally {
        await sink.stop();
      }
    };
    const baseFrames = await sinkFor("frames", FRAMES);
    const baseBig = await sinkFor("big", BIG_MIB);

    return {
      rows: [
        row({
          scenario: S,
          metric: `principal RSS growth, ${FRAMES} empty frames`,
          unit: "MB",
          ours: frames.growth / MB,
          baseline: baseFrames.growth / MB,
          baselineName: "bare zeromq.js ROUTER, same message",
          better: "lower",
          target: "< 50 MB",
          pass: frames.growth / MB < 50,
          note: `reply: ${frames.reply.slice(0, 60)}; handled in ${frames.totalMs.toFixed(0)} ms`,
        }),
        row({
          scenario: S,
          metric: `ping p99 during ${FRAMES} empty frames`,
          unit: "ms",
          ours: framesPing.p99,
          baseline: idle.p99,
          baselineName: "ping p99, idle principal",
          better: "lower",
          note: `over ${framesPing.n} pings, most of them while the abuser was still sending`,
        }),
        row({
          scenario: S,
          metric: `longest ping during ${FRAMES} empty frames (the stall)`,
          unit: "ms",
          ours: framesPing.max,
          baseline: idle.max,
          baselineName: "longest ping, idle principal",
          better: "lower",
          note: "zeromq.js turns every frame into a Buffer in one synchronous call",
        }),
        row({
          scenario: S,
          metric: `principal RSS growth, ${BIG_MIB} MiB in two frames`,
          unit: "MB",
          ours: big.growth / MB,
          baseline: baseBig.growth / MB,
          baselineName: "bare zeromq.js ROUTER, same message",
          better: "lower",
          target: "< 8 MB (never buffered)",
          pass: big.growth / MB < 8,
          note: `reply: ${big.reply.slice(0, 60)}`,
        }),
        row({
          scenario: S,
          metric: `ping p99 during ${BIG_MIB} MiB in two frames`,
          unit: "ms",
          ours: bigPing.p99,
          baseline: idle.p99,
          baselineName: "ping p99, idle principal",
          better: "lower",
          note: `max ${bigPing.max.toFixed(0)} ms over ${bigPing.n} pings`,
        }),
      ],
      details: { frames, big, framesPing, bigPing, idle, baseFrames, baseBig },
    };
  },
};

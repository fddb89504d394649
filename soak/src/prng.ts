/**
 * The soak's randomness: a small seeded PRNG (mulberry32) and the chaos plan derived from a seed
 * alone, so that `--seed N` replays the same faults in the same order with the same gaps and
 * durations (process timings still vary from run to run).
 */

/** A seeded pseudo-random generator: `next()` in [0, 1). */
export class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** The next number in [0, 1) (mulberry32). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new RangeError("pick from an empty list");
    return item;
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const a = out[i] as T;
      out[i] = out[j] as T;
      out[j] = a;
    }
    return out;
  }
}

/** The kinds of fault the chaos loop injects. */
export const FAULT_KINDS = ["kill-principal", "kill-agent", "kill-scheduler", "stop-agent", "fill-spool"] as const;
/** One kind of fault. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One planned fault. */
export interface PlannedFault {
  /** Position in the plan (1, 2, ...). */
  n: number;
  kind: FaultKind;
  /** Pause before this fault, after the previous one ended (ms). */
  gapMs: number;
  /** How long the target stays down, stopped or starved (ms). */
  downMs: number;
  /** Which agent (0 or 1) for agent faults; the spool disk is always agent 0's. */
  agent: number;
}

/** Timing of the plan. */
export interface ChaosTiming {
  /** Shortest and longest pause between two faults (ms). */
  gapMs: readonly [number, number];
  /** The principal's heartbeat timeout: a stopped agent stays stopped past it. */
  heartbeatTimeoutMs: number;
  /** Draw only these kinds. @default {@link FAULT_KINDS} */
  kinds?: readonly FaultKind[];
}

/**
 * The first `count` faults of the chaos plan of `seed`. Kinds are drawn as shuffled bags of all
 * five (every window of five faults starting at a multiple of five holds each kind once), so
 * any run with five faults or more exercises every kind, and the order still varies by seed.
 */
export function planChaos(seed: number, count: number, timing: ChaosTiming): PlannedFault[] {
  const rng = new Prng(seed);
  const out: PlannedFault[] = [];
  let bag: FaultKind[] = [];
  for (let n = 1; n <= count; n++) {
    if (bag.length === 0) bag = rng.shuffle(timing.kinds ?? FAULT_KINDS);
    const kind = bag.shift() as FaultKind;
    const gapMs = rng.int(timing.gapMs[0], timing.gapMs[1]);
    const agent = rng.int(0, 1);
    let downMs: number;
    switch (kind) {
      case "kill-principal":
        downMs = rng.int(200, 3000);
        break;
      case "kill-agent":
        downMs = rng.int(300, 5000);
        break;
      case "kill-scheduler":
        downMs = rng.int(300, 6000);
        break;
      case "stop-agent":
        downMs = timing.heartbeatTimeoutMs + rng.int(1000, 3000);
        break;
      case "fill-spool":
        downMs = rng.int(4000, 10_000);
        break;
    }
    out.push({ n, kind, gapMs, downMs, agent: kind === "fill-spool" ? 0 : agent });
  }
  return out;
}

import { randomBytes } from "node:crypto";
import type { Clock } from "@cdktr/protocol";
import { systemClock } from "@cdktr/protocol";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * Monotonic ULID generator: 26 Crockford base32 characters, 48-bit millisecond time then 80 random
 * bits. Ids sort lexically in creation order, even within one millisecond or when the clock steps
 * back (the random part is incremented instead), so the run queue can be FIFO by id.
 */
export class UlidGenerator {
  private lastTime = -1;
  private lastRandom: number[] = [];

  constructor(private readonly clock: Clock = systemClock) {}

  /** The next id, strictly greater than every id this generator returned before. */
  next(): string {
    let time = this.clock.now();
    if (time <= this.lastTime) {
      time = this.lastTime;
      if (!this.increment()) {
        // 80 random bits exhausted within one millisecond: borrow the next millisecond.
        time = this.lastTime + 1;
        this.lastRandom = randomDigits();
      }
    } else {
      this.lastRandom = randomDigits();
    }
    this.lastTime = time;
    return encodeTime(time) + this.lastRandom.map((d) => ALPHABET[d]).join("");
  }

  private increment(): boolean {
    for (let i = this.lastRandom.length - 1; i >= 0; i--) {
      const d = this.lastRandom[i] ?? 0;
      if (d < 31) {
        this.lastRandom[i] = d + 1;
        return true;
      }
      this.lastRandom[i] = 0;
    }
    return false;
  }
}

function randomDigits(): number[] {
  const bytes = randomBytes(16);
  const out: number[] = [];
  // Leave the top bit of the random part clear so increments have room before overflow.
  for (let i = 0; i < 16; i++) out.push((bytes[i] ?? 0) & (i === 0 ? 0x0f : 0x1f));
  return out;
}

function encodeTime(ms: number): string {
  let t = ms;
  let s = "";
  for (let i = 0; i < 10; i++) {
    s = ALPHABET[t % 32] + s;
    t = Math.floor(t / 32);
  }
  return s;
}

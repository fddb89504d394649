/**
 * How far the log lines of this agent process got, by ordinal (the order they were appended):
 * acknowledged by the principal, or durable (acknowledged, or spooled and fsynced). Status
 * updates wait on these marks: a task's or run's final status is journaled once its lines are
 * durable, and delivered once they are acknowledged.
 */

interface MarkWaiter {
  ord: number;
  resolve: () => void;
}

/** The acknowledged mark and the waiters of both marks. */
export class DeliveryMarks {
  #ackedThrough = 0;
  #ackWaiters: MarkWaiter[] = [];
  #durableWaiters: MarkWaiter[] = [];

  /** Resolves once every line up to `mark` was acknowledged by the principal. */
  whenAcked(mark: number): Promise<void> {
    if (this.#ackedThrough >= mark) return Promise.resolve();
    return new Promise((resolve) => this.#ackWaiters.push({ ord: mark, resolve }));
  }

  /** Lines up to `ord` were acknowledged. */
  acked(ord: number): void {
    if (ord > this.#ackedThrough) this.#ackedThrough = ord;
    const ready = this.#ackWaiters.filter((w) => w.ord <= this.#ackedThrough);
    this.#ackWaiters = this.#ackWaiters.filter((w) => w.ord > this.#ackedThrough);
    for (const w of ready) w.resolve();
  }

  /**
   * Resolves once every line up to `mark` left memory (`lowestVolatile` is the lowest ordinal
   * still held only in memory) and `synced()` (the spool's fsync) resolved.
   */
  whenDurable(mark: number, lowestVolatile: number, synced: () => Promise<void>): Promise<void> {
    if (mark < lowestVolatile) return synced();
    return new Promise((resolve) => this.#durableWaiters.push({ ord: mark, resolve }));
  }

  /** Resolve the durability waiters whose lines all left memory (once the spool is fsynced). */
  checkDurable(lowestVolatile: () => number, synced: () => Promise<void>): void {
    if (this.#durableWaiters.length === 0) return;
    const low = lowestVolatile();
    const ready = this.#durableWaiters.filter((w) => w.ord < low);
    if (ready.length === 0) return;
    this.#durableWaiters = this.#durableWaiters.filter((w) => w.ord >= low);
    const done = synced();
    for (const w of ready) void done.then(w.resolve);
  }

  /**
   * The shipper stopped, its lines saved in the spool except those from `lowestLost` on: the
   * durability waiters below it resolve, the others never do (their statuses are never
   * journaled: no run is reported final over lines it lost).
   */
  stopped(lowestLost: number): void {
    for (const w of this.#durableWaiters.splice(0)) if (w.ord < lowestLost) w.resolve();
  }

  /** Resolve every acknowledgement waiter (nothing more will be acknowledged by this process). */
  releaseAckWaiters(): void {
    for (const w of this.#ackWaiters.splice(0)) w.resolve();
  }
}

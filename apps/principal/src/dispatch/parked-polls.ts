import type { Assignment, Clock, TimerHandle } from "@cdktr/protocol";
import type { TokenOrigin } from "./assignment-token.js";

/** What a `fetchWork` long-poll resolves to. */
export interface FetchResult {
  assignment: Assignment | null;
  cancel: string[];
}

/** One `fetchWork` call being answered: parked until a run, its timeout or its abort. */
export interface Waiter {
  agentId: string;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
  labels: readonly string[];
  keyName: string | null;
  /** The agent process's session and fetch number (its assignment is the permission to start), or null. */
  origin: TokenOrigin | null;
  resolve: (r: FetchResult) => void;
  timer: TimerHandle | null;
  done: boolean;
}

/**
 * The parked `fetchWork` long-polls, in arrival order (answered first come, first served) and per
 * agent, in insertion-ordered sets: parking and removing one is O(1), however many are parked.
 */
export class ParkedPolls {
  private readonly waiters = new Set<Waiter>();
  private readonly byAgent = new Map<string, Set<Waiter>>();

  constructor(private readonly clock: Clock) {}

  /** Number of long-polls parked now (all agents, or one). */
  count(agentId?: string): number {
    return agentId === undefined ? this.waiters.size : (this.byAgent.get(agentId)?.size ?? 0);
  }

  /** The parked long-polls in arrival order (a copy). */
  all(): Waiter[] {
    return [...this.waiters];
  }

  /** The parked long-polls of `agentId` (a copy). */
  ofAgent(agentId: string): Waiter[] {
    return [...(this.byAgent.get(agentId) ?? [])];
  }

  /** Park `w` until it is answered. */
  park(w: Waiter): void {
    this.waiters.add(w);
    let mine = this.byAgent.get(w.agentId);
    if (mine === undefined) {
      mine = new Set();
      this.byAgent.set(w.agentId, mine);
    }
    mine.add(w);
  }

  /** Answer `w` with `r` (once). */
  finish(w: Waiter, r: FetchResult): void {
    if (w.done) return;
    this.settle(w);
    w.resolve(r);
  }

  /** Mark a long-poll answered: unparked, its timer and abort listener gone. */
  settle(w: Waiter): void {
    w.done = true;
    this.waiters.delete(w);
    const mine = this.byAgent.get(w.agentId);
    mine?.delete(w);
    if (mine?.size === 0) this.byAgent.delete(w.agentId);
    if (w.timer !== null) this.clock.clearTimer(w.timer);
    w.timer = null;
    if (w.onAbort !== null) w.signal?.removeEventListener("abort", w.onAbort);
    w.onAbort = null;
  }
}

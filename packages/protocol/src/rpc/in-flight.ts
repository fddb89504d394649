import { CdktrError } from "../errors.js";

/** A running handler. Its abort controller (and deadline timer) exist once it reads its signal. */
export interface InFlight {
  /** The handler's abort signal, made on first use: aborted at the deadline and when the server closes. */
  signal(): AbortSignal;
  /** Settles once the reply was queued (set by the caller). */
  done: Promise<void>;
  /** The handler replied: stop tracking it (clears its deadline timer). */
  end(): void;
}

/**
 * The requests an RPC server is running, per connection too: at most `maxPerConnection` at once
 * for one connection (a client pipelining without reading replies cannot pile up handlers); and
 * what closing needs, aborting them all and waiting for their replies.
 */
export class InFlightRequests {
  private readonly running = new Set<{ controller: AbortController | null; done: Promise<void> }>();
  private readonly byConnection = new Map<string, number>();

  /**
   * @param maxPerConnection requests one connection may have running
   * @param closing true once the server is closing: a signal made then is aborted at once
   */
  constructor(
    readonly maxPerConnection: number,
    private readonly closing: () => boolean,
  ) {}

  /** Requests running for `connection`. */
  count(connection: string): number {
    return this.byConnection.get(connection) ?? 0;
  }

  /** Start tracking a request of `connection`; null when the connection has its bound running. */
  begin(connection: string, deadline: number | null): InFlight | null {
    const running = this.count(connection);
    if (running >= this.maxPerConnection) return null;
    this.byConnection.set(connection, running + 1);
    const entry = { controller: null as AbortController | null, done: Promise.resolve() };
    let timer: NodeJS.Timeout | undefined;
    this.running.add(entry);
    const closing = this.closing;
    return {
      // Most handlers never look at their signal: the AbortController and the deadline timer are
      // only created when it is read (with the same meaning as if made up front).
      signal(): AbortSignal {
        if (entry.controller === null) {
          const controller = new AbortController();
          entry.controller = controller;
          if (closing()) {
            controller.abort(new CdktrError("SHUTTING_DOWN", "the server is shutting down"));
          } else if (deadline !== null) {
            const passed = (): void =>
              controller.abort(new CdktrError("DEADLINE_EXCEEDED", "the caller's deadline passed"));
            const left = deadline - Date.now();
            if (left <= 0) passed();
            else timer = setTimeout(passed, left);
          }
        }
        return entry.controller.signal;
      },
      get done() {
        return entry.done;
      },
      set done(p: Promise<void>) {
        entry.done = p;
      },
      end: () => {
        clearTimeout(timer);
        this.running.delete(entry);
        const left = this.count(connection) - 1;
        if (left > 0) this.byConnection.set(connection, left);
        else this.byConnection.delete(connection);
      },
    };
  }

  /** Abort the signal of every running request that made one. */
  abortAll(reason: CdktrError): void {
    for (const f of this.running) f.controller?.abort(reason);
  }

  /** The replies of the running requests (each settles once its reply was queued). */
  pending(): Promise<void>[] {
    return [...this.running].map((f) => f.done);
  }
}

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

/** Why {@link InFlightRequests.begin} refused a request: its connection's or its key's bound. */
export interface InFlightRefusal {
  bound: "connection" | "key";
  running: number;
  max: number;
}

/**
 * The requests an RPC server is running, per connection and per key too: at most
 * `maxPerConnection` at once for one connection (a client pipelining without reading replies
 * cannot pile up handlers), and at most `maxPerKey` for one key over all its connections (opening
 * more connections buys no more); and what closing needs, aborting them all and waiting for their
 * replies.
 */
export class InFlightRequests {
  private readonly running = new Set<{ controller: AbortController | null; done: Promise<void> }>();
  private readonly byConnection = new Map<string, number>();
  private readonly byKey = new Map<string, number>();

  /**
   * @param maxPerConnection requests one connection may have running
   * @param maxPerKey requests one key may have running over all its connections
   * @param closing true once the server is closing: a signal made then is aborted at once
   */
  constructor(
    private readonly maxPerConnection: number,
    private readonly maxPerKey: number,
    private readonly closing: () => boolean,
  ) {}

  /**
   * Start tracking a request of `connection`, sent with the key named `key` (null without
   * authentication); the refusal when the connection or the key has its bound running.
   */
  begin(connection: string, key: string | null, deadline: number | null): InFlight | InFlightRefusal {
    const running = this.byConnection.get(connection) ?? 0;
    if (running >= this.maxPerConnection) return { bound: "connection", running, max: this.maxPerConnection };
    const keyRunning = key === null ? 0 : (this.byKey.get(key) ?? 0);
    if (key !== null && keyRunning >= this.maxPerKey) return { bound: "key", running: keyRunning, max: this.maxPerKey };
    this.byConnection.set(connection, running + 1);
    if (key !== null) this.byKey.set(key, keyRunning + 1);
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
        decrement(this.byConnection, connection);
        if (key !== null) decrement(this.byKey, key);
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

/** The retryable `RESOURCE_EXHAUSTED` answering a request refused by `r` (sent with the key `keyName`). */
export function refusalError(r: InFlightRefusal, keyName: string | null): CdktrError {
  const who = r.bound === "key" ? `of key \`${keyName ?? ""}\` (all its connections)` : "of this connection";
  return new CdktrError(
    "RESOURCE_EXHAUSTED",
    `${r.running} requests ${who} are running (at most ${r.max}): wait for their replies before sending more`,
    { retryable: true },
  );
}

/** One less for `name` (the entry goes at zero). */
function decrement(counts: Map<string, number>, name: string): void {
  const left = (counts.get(name) ?? 1) - 1;
  if (left > 0) counts.set(name, left);
  else counts.delete(name);
}

import type { Dealer, Publisher, Router, XPublisher } from "zeromq";
import { CdktrError, CodedError } from "../errors.js";

type SendSocket = Dealer | Router | Publisher | XPublisher;

/**
 * Longest the pump hands messages to libzmq before it lets the event loop run. zeromq.js resolves
 * a send that libzmq takes at once synchronously (always with `sendTimeout` 0, otherwise for 512
 * sends in a row), so a long backlog would otherwise run as one microtask chain and hold up
 * every request, reply and timer of the process.
 */
const PUMP_SLICE_MS = 1;

interface Item {
  frames: (Buffer | string)[];
  /** Epoch ms after which the item is not sent at all; null = no limit. */
  deadline: number | null;
  /** Applied as the socket's `sendTimeout` before sending; null = leave the socket's own. */
  sendTimeoutMs: number | null;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Raised by {@link SendQueue.push} when the item's deadline passed before it could be sent (code `EXPIRED`). */
export class SendExpiredError extends CodedError<"EXPIRED"> {
  constructor() {
    super("EXPIRED", "deadline passed before the message could be sent");
  }
}

/** The rejection of a send on a closed socket (code `CLOSED`). */
function socketClosed(): CdktrError {
  return new CdktrError("CLOSED", "socket closed", { retryable: false });
}

/**
 * Serialises sends on one socket: zeromq.js rejects a `send()` while another is pending. Yields
 * to the event loop after every millisecond of sending, so a backlog (a log flood republished
 * line by line) never starves the process's other I/O. Internal to `@cdktr/protocol`.
 */
export class SendQueue {
  /** Queued items from index `head` on (a head index: `shift()` is O(n) on large arrays). */
  private items: Item[] = [];
  private head = 0;
  private pumping = false;
  private closed = false;
  private readonly drained: (() => void)[] = [];

  constructor(private readonly socket: SendSocket) {}

  /** Queue `frames`; resolves once libzmq accepted them, rejects with the send error. */
  push(frames: (Buffer | string)[], opts: { deadline?: number | null; sendTimeoutMs?: number } = {}): Promise<void> {
    if (this.closed) return Promise.reject(socketClosed());
    return new Promise<void>((resolve, reject) => {
      this.items.push({
        frames,
        deadline: opts.deadline ?? null,
        sendTimeoutMs: opts.sendTimeoutMs ?? null,
        resolve,
        reject,
      });
      if (!this.pumping) void this.pump();
    });
  }

  /** Messages waiting to be handed to libzmq. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** Resolves when every queued item was sent or failed. */
  drain(): Promise<void> {
    if (!this.pumping && this.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.drained.push(resolve));
  }

  /** Reject everything queued; later pushes reject at once. */
  close(reason: unknown): void {
    this.closed = true;
    const pending = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    for (const item of pending) item.reject(reason);
  }

  /** The next queued item, or undefined; compacts the array once half of it is consumed. */
  private next(): Item | undefined {
    if (this.head >= this.items.length) {
      if (this.items.length > 0) {
        this.items = [];
        this.head = 0;
      }
      return undefined;
    }
    const item = this.items[this.head];
    this.head++;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    let sliceStart = performance.now();
    try {
      for (;;) {
        if (performance.now() - sliceStart >= PUMP_SLICE_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          sliceStart = performance.now();
        }
        const item = this.next();
        if (item === undefined) break;
        let timeout = item.sendTimeoutMs;
        if (item.deadline !== null) {
          const left = item.deadline - Date.now();
          if (left <= 0) {
            item.reject(new SendExpiredError());
            continue;
          }
          timeout = timeout === null || timeout < 0 ? left : Math.min(timeout, left);
        }
        try {
          if (this.socket.closed) throw socketClosed();
          if (timeout !== null && this.socket.sendTimeout !== timeout) this.socket.sendTimeout = timeout;
          await this.socket.send(item.frames);
          item.resolve();
        } catch (e) {
          item.reject(e);
        }
      }
    } finally {
      this.pumping = false;
      for (const resolve of this.drained.splice(0)) resolve();
    }
  }
}

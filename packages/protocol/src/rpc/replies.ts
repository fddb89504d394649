import { CdktrError, toCdktrError, type WireError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import { PROTOCOL, peerName } from "./frames.js";
import type { SendQueue } from "./send-queue.js";

/** Where a reply goes. */
export interface ReplyTarget {
  routingId: Buffer;
  /** The request id as text (for handlers and logs). */
  requestId: string;
  /** The request id exactly as the client sent it, echoed in the reply so that it can match it. */
  rawRequestId: Buffer | string;
}

/**
 * The replies of an RPC server: `[routingId, protocol, requestId, "ok" | "error", body]` through
 * its send queue. A reply that cannot be serialised becomes `INTERNAL`, one above the size limit
 * `MESSAGE_TOO_LARGE`; a reply to a peer that is gone is dropped (logged at debug).
 */
export class Replies {
  /** True once a reply was queued while the server was closing. */
  repliedWhileClosing = false;

  constructor(
    private readonly queue: SendQueue,
    private readonly maxReplyBytes: number,
    private readonly logger: Logger,
    private readonly state: () => "new" | "running" | "closing" | "closed",
  ) {}

  /** Reply `reply` (serialised as JSON) to a `verb` request. */
  ok(p: ReplyTarget, verb: string, reply: unknown): void {
    let text: string;
    try {
      text = JSON.stringify(reply === undefined ? null : reply);
    } catch (e) {
      this.error(p, new CdktrError("INTERNAL", `internal error: reply of ${verb} is not serialisable`, { cause: e }));
      return;
    }
    if (Buffer.byteLength(text) > this.maxReplyBytes) {
      this.error(
        p,
        new CdktrError(
          "MESSAGE_TOO_LARGE",
          `reply of ${verb} exceeds ${this.maxReplyBytes} bytes; ask for a smaller page (limit)`,
          { retryable: false },
        ),
      );
      return;
    }
    this.send(p, "ok", text);
  }

  /** Reply `err` as `{ code, message, retryable }`. */
  error(p: ReplyTarget, err: CdktrError): void {
    const wire: WireError = err.toWire();
    this.send(p, "error", JSON.stringify(wire));
  }

  /**
   * Reply what the handler of `verb` threw: a CdktrError as it is (logged at debug), anything
   * else as `INTERNAL` (logged at error with `peer`: a bug).
   */
  thrown(p: ReplyTarget, verb: string, peer: string, e: unknown): void {
    const err = toCdktrError(e);
    if (err.code === "INTERNAL" && !(e instanceof CdktrError)) {
      this.logger.error(`handler of ${verb} failed`, { peer, requestId: p.requestId, error: e });
    } else {
      this.logger.debug(`handler of ${verb} refused`, { requestId: p.requestId, code: err.code, message: err.message });
    }
    this.error(p, err);
  }

  private send(p: ReplyTarget, status: "ok" | "error", body: string): void {
    const state = this.state();
    if (state === "closed") return;
    if (state === "closing") this.repliedWhileClosing = true;
    this.queue.push([p.routingId, PROTOCOL, p.rawRequestId, status, body]).catch((e: unknown) => {
      const code = (e as { code?: unknown }).code;
      // EHOSTUNREACH: the peer is gone (mandatory ROUTER); EAGAIN: its queue is full. Drop.
      this.logger.debug("rpc reply dropped", { peer: peerName(p.routingId), requestId: p.requestId, code, error: e });
    });
  }
}

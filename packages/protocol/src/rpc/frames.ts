/**
 * Wire framing shared by {@link RpcClient} and {@link RpcServer}. Every frame is UTF-8 text.
 *
 * request (DEALER -> ROUTER): `[ "cdktr/1", requestId, deadline, verb, JSON body ]`
 * reply   (ROUTER -> DEALER): `[ "cdktr/1", requestId, "ok" | "error", JSON body ]`
 *
 * `deadline` is epoch milliseconds as a decimal string, `"0"` for none. An error body is
 * `{ code, message, retryable }`.
 */
import { isUtf8 } from "node:buffer";
import { randomUUID } from "node:crypto";
import type { z } from "zod";

/** The protocol name/version frame that starts every request and reply. */
export const PROTOCOL = "cdktr/1";

/** Default application limit on the size of one request (all frames together). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * libzmq's limit on one frame (`ZMQ_MAXMSGSIZE`) on the sockets that receive from the principal
 * (clients, subscribers): replies are at most 32 MiB. The principal's own sockets use
 * {@link serverFrameLimit} instead.
 */
export const ZMQ_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * What CURVE adds to one frame on the wire (`"\x07MESSAGE"`, nonce, MAC and flags: 33 bytes),
 * rounded up. libzmq checks `ZMQ_MAXMSGSIZE` against the encrypted frame.
 */
export const FRAME_OVERHEAD_BYTES = 64;

/**
 * `ZMQ_MAXMSGSIZE` of a server socket whose requests are limited to `maxMessageBytes` (all frames
 * together): a single frame larger than the whole request limit can never be part of a valid
 * request, so libzmq refuses it as soon as its size header arrives, before buffering any of it,
 * and drops the connection (the peer reconnects by itself; no reply is possible). Never below
 * {@link DEFAULT_MAX_MESSAGE_BYTES}: a client with the default limit talking to a server set
 * lower still gets `MESSAGE_TOO_LARGE` rather than a dropped connection.
 */
export function serverFrameLimit(maxMessageBytes: number): number {
  return Math.max(maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES) + FRAME_OVERHEAD_BYTES;
}

/**
 * `ZMQ_MAXMSGSIZE` of the publisher's XPUB socket, which receives only subscription messages
 * (`"!auth " + key + proof + topic`, a few hundred bytes).
 */
export const MAX_SUBSCRIPTION_BYTES = 64 * 1024;

/** Longest request id a server echoes back. */
export const MAX_REQUEST_ID_BYTES = 128;

/** A fresh request id (a random UUID). */
export function newRequestId(): string {
  return randomUUID();
}

/** `tcp://host:port`, the ZeroMQ endpoint of a TCP address. */
export function endpointFor(host: string, port: number): string {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `tcp://${h}:${port}`;
}

/** `tcp://host:port` with another port (other endpoints unchanged). */
export function withPort(endpoint: string, port: number): string {
  const m = /^(tcp:\/\/.+):\d+$/.exec(endpoint);
  return m === null ? endpoint : `${m[1]}:${port}`;
}

/** Whether `frame` is valid UTF-8 (an absent frame counts as empty, so valid). */
export function isUtf8Frame(frame: Buffer | undefined): boolean {
  return frame === undefined || isUtf8(frame);
}

/** Decode a frame as UTF-8 text (invalid sequences become U+FFFD: check {@link isUtf8Frame} first). */
export function frameText(frame: Buffer | undefined): string {
  return frame === undefined ? "" : frame.toString("utf8");
}

/** Sum of the byte lengths of `frames`. */
export function frameBytes(frames: readonly Buffer[]): number {
  let n = 0;
  for (const f of frames) n += f.length;
  return n;
}

/**
 * One line per zod issue, `body.workflowId: expected string` style, for error messages.
 * `root` prefixes every path.
 */
export function formatZodIssues(error: z.ZodError, root: string): string {
  return error.issues
    .map((issue) => {
      const path = [root, ...issue.path.map((p) => (typeof p === "number" ? `[${p}]` : String(p)))]
        .join(".")
        .replace(/\.\[/g, "[");
      return `${path}: ${issue.message}`;
    })
    .join("; ");
}

/** A printable form of a ROUTER routing id (text when printable ASCII, else `0x` + hex). */
export function peerName(routingId: Buffer): string {
  for (const b of routingId) {
    if (b < 0x20 || b > 0x7e) return `0x${routingId.toString("hex")}`;
  }
  return routingId.toString("latin1");
}

import { errorMessage, type ErrorCode } from "../errors.js";
import type { VerbTable } from "../messages.js";
import { MAX_REQUEST_ID_BYTES, PROTOCOL, frameBytes, frameText, isUtf8Frame } from "./frames.js";

/**
 * Names of the frames by index of `frames` (the routing id first), for error messages; those
 * name a frame by its number in docs/protocol.md (protocol = 0), one less than the index.
 */
const FRAME_NAMES = ["routing id", "protocol", "requestId", "deadline", "verb", "body"] as const;

/** A request whose frames are well formed: its verb, deadline and JSON body (not yet checked by its schema). */
export interface CheckedFrames {
  ok: true;
  verb: string;
  /** Epoch ms; null when the caller sent none. */
  deadline: number | null;
  json: unknown;
}

/** Why a request's frames are refused. */
export interface RefusedFrames {
  ok: false;
  code: ErrorCode;
  message: string;
  /** The number of frames (routing id excluded) when their count was wrong, else null. */
  wrongFrameCount: number | null;
}

/**
 * Check the frames of one request as a ROUTER received them (`[routingId, protocol, requestId,
 * deadline, verb, body]`), in the order docs/protocol.md lists the errors: protocol, frame
 * count, size, request id, UTF-8 (refused, never repaired), deadline (well formed and not
 * passed), verb (one of `verbs`), body (JSON). The body's schema is the caller's business.
 */
export function checkRequestFrames(
  frames: readonly Buffer[],
  routingId: Buffer,
  requestId: string,
  verbs: VerbTable,
  maxMessageBytes: number,
): CheckedFrames | RefusedFrames {
  const refuse = (code: ErrorCode, message: string, wrongFrameCount: number | null = null): RefusedFrames => ({
    ok: false,
    code,
    message,
    wrongFrameCount,
  });
  const proto = frameText(frames[1]);
  if (frames.length < 2 || proto !== PROTOCOL) {
    const got = frames.length < 2 ? "no frames" : JSON.stringify(proto.slice(0, 40));
    return refuse(
      "PROTOCOL_MISMATCH",
      `this server speaks ${PROTOCOL}; the first frame was ${got}. Use a client of protocol ${PROTOCOL} (see docs/protocol.md)`,
    );
  }
  if (frames.length !== 6) {
    return refuse(
      "BAD_REQUEST",
      `expected 5 frames [${PROTOCOL}, requestId, deadline, verb, body], got ${frames.length - 1}`,
      frames.length - 1,
    );
  }
  const size = frameBytes(frames) - routingId.length;
  if (size > maxMessageBytes) {
    return refuse(
      "MESSAGE_TOO_LARGE",
      `request of ${size} bytes exceeds the limit of ${maxMessageBytes} bytes; send smaller batches`,
    );
  }
  if (requestId === "") return refuse("BAD_REQUEST", `requestId must be 1 to ${MAX_REQUEST_ID_BYTES} bytes`);
  // Frames are UTF-8 text: invalid bytes are refused, never repaired into U+FFFD and executed.
  for (let i = 2; i < frames.length; i++) {
    if (!isUtf8Frame(frames[i])) {
      return refuse(
        "BAD_REQUEST",
        `frame ${i - 1} (${FRAME_NAMES[i] ?? "?"}) is not valid UTF-8; every frame of a request is UTF-8 text (docs/protocol.md)`,
      );
    }
  }
  const deadlineText = frameText(frames[3]);
  if (!/^\d{1,16}$/.test(deadlineText)) {
    return refuse(
      "BAD_REQUEST",
      `deadline must be epoch milliseconds as a decimal string ("0" = none), got ${JSON.stringify(deadlineText.slice(0, 40))}`,
    );
  }
  const deadlineNum = Number(deadlineText);
  const deadline = deadlineNum === 0 ? null : deadlineNum;
  if (deadline !== null && deadline <= Date.now()) {
    return refuse(
      "DEADLINE_EXCEEDED",
      `the request's deadline passed ${Date.now() - deadline} ms before it was handled; retry with a longer timeout`,
    );
  }
  const verb = frameText(frames[4]);
  if (!Object.hasOwn(verbs, verb)) {
    return refuse(
      "UNKNOWN_VERB",
      `unknown verb ${JSON.stringify(verb.slice(0, 64))}; this server accepts: ${Object.keys(verbs).join(", ")}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(frameText(frames[5]));
  } catch (e) {
    return refuse("BAD_REQUEST", `body of ${verb} is not valid JSON (${errorMessage(e)})`);
  }
  return { ok: true, verb, deadline, json };
}

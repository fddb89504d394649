import { CdktrError, WireErrorSchema } from "../errors.js";
import { PROTOCOL, frameText } from "./frames.js";

/** What one reply's frames say: the raw reply JSON, or the error to reject the request with. */
export type DecodedReply = { ok: true; json: unknown } | { ok: false; error: CdktrError };

/**
 * Decode the frames of a reply a DEALER received (`[protocol, requestId, "ok" | "error", body]`),
 * already matched to a pending `verb` request by its request id, in this order: protocol
 * (`PROTOCOL_MISMATCH`), frame count, JSON body, status. A well-formed error body becomes the
 * server's coded error; anything malformed becomes a non-retryable `INTERNAL`.
 */
export function decodeReply(frames: readonly Buffer[], verb: string, endpoint: string): DecodedReply {
  const proto = frameText(frames[0]);
  if (proto !== PROTOCOL) {
    return {
      ok: false,
      error: new CdktrError(
        "PROTOCOL_MISMATCH",
        `${endpoint} replied with protocol ${JSON.stringify(proto.slice(0, 40))}, expected ${PROTOCOL}; upgrade the older side`,
        {
          retryable: false,
        },
      ),
    };
  }
  if (frames.length !== 4) {
    return {
      ok: false,
      error: new CdktrError(
        "INTERNAL",
        `malformed ${verb} reply from ${endpoint}: ${frames.length} frames, expected 4`,
        { retryable: false },
      ),
    };
  }
  const status = frameText(frames[2]);
  let json: unknown;
  try {
    json = JSON.parse(frameText(frames[3]));
  } catch {
    return {
      ok: false,
      error: new CdktrError("INTERNAL", `malformed ${verb} reply from ${endpoint}: body is not JSON`, {
        retryable: false,
      }),
    };
  }
  if (status === "ok") return { ok: true, json };
  if (status === "error") {
    const wire = WireErrorSchema.safeParse(json);
    return {
      ok: false,
      error: wire.success
        ? CdktrError.fromWire(wire.data)
        : new CdktrError(
            "INTERNAL",
            `malformed ${verb} error reply from ${endpoint}: ${JSON.stringify(json).slice(0, 200)}`,
            { retryable: false },
          ),
    };
  }
  return {
    ok: false,
    error: new CdktrError(
      "INTERNAL",
      `malformed ${verb} reply from ${endpoint}: status ${JSON.stringify(status.slice(0, 20))}`,
      { retryable: false },
    ),
  };
}

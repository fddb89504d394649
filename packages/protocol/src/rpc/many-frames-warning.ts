import type { Logger } from "../logging/logger.js";

/** A message with more frames than this is logged at warn, naming its sender's key. */
export const MANY_FRAMES = 64;
/** Shortest interval between two of those warnings. */
const MANY_FRAMES_WARN_MS = 10_000;

/**
 * No socket option bounds a frame count (docs/operations.md, "Wire limits"): a message refused
 * for its abusive number of frames is logged naming its sender, so that an operator can revoke
 * its key. At most one line per 10 s, with the number of such messages left unlogged, so that a
 * flood cannot fill the log.
 */
export class ManyFramesWarning {
  private warnedAt = 0;
  private unlogged = 0;

  constructor(private readonly logger: Logger) {}

  /** Note a refused message of `frames` frames from `peer`, sent with the key `key()` (null: none). */
  note(peer: string, key: () => string | null, frames: number): void {
    const now = Date.now();
    if (now - this.warnedAt < MANY_FRAMES_WARN_MS) {
      this.unlogged++;
      return;
    }
    this.warnedAt = now;
    this.logger.warn("rpc message with an abusive number of frames refused", {
      peer,
      key: key(),
      frames,
      unloggedSinceLast: this.unlogged,
    });
    this.unlogged = 0;
  }
}

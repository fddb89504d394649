/**
 * Splits a byte stream into lines without ever holding more than one (capped) line in memory.
 */

/** Options of {@link LineSplitter}. */
export interface LineSplitterOptions {
  /**
   * Longest line kept in one piece, in bytes. A longer line is emitted as several consecutive
   * lines of at most this size (cut on a UTF-8 character boundary), so nothing is lost and
   * memory stays bounded whatever the task writes.
   * @default 65536
   */
  maxLineBytes?: number;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Incremental line splitter: feed it chunks with {@link push}, call {@link end} when the stream
 * ends (a final line without a newline is emitted then). Lines are decoded as UTF-8; invalid
 * bytes become U+FFFD. A trailing `\r` (CRLF line ends) is dropped.
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  #parts: Buffer[] = [];
  #partsBytes = 0;

  constructor(options: LineSplitterOptions = {}) {
    this.#maxLineBytes = Math.max(4, options.maxLineBytes ?? 65_536);
  }

  /** Consume one chunk; returns the complete lines it finished. */
  push(chunk: Buffer): string[] {
    const out: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl === -1 ? chunk.length : nl;
      this.#append(chunk.subarray(start, end), out);
      if (nl === -1) break;
      out.push(this.#take(true));
      start = nl + 1;
    }
    return out;
  }

  /** The stream ended: returns the final unterminated line, if any. */
  end(): string[] {
    return this.#partsBytes > 0 ? [this.#take(true)] : [];
  }

  #append(piece: Buffer, out: string[]): void {
    let rest = piece;
    while (this.#partsBytes + rest.length > this.#maxLineBytes) {
      const room = this.#maxLineBytes - this.#partsBytes;
      const cut = utf8Boundary(rest, room);
      this.#parts.push(rest.subarray(0, cut));
      this.#partsBytes += cut;
      rest = rest.subarray(cut);
      out.push(this.#take(false));
    }
    if (rest.length > 0) {
      // Copy: the caller's chunk buffer may be pooled and reused.
      this.#parts.push(Buffer.from(rest));
      this.#partsBytes += rest.length;
    }
  }

  #take(lineEnd: boolean): string {
    let buf = this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#partsBytes);
    this.#parts = [];
    this.#partsBytes = 0;
    if (lineEnd && buf.length > 0 && buf[buf.length - 1] === CARRIAGE_RETURN) buf = buf.subarray(0, buf.length - 1);
    return buf.toString("utf8");
  }
}

/**
 * The largest cut position <= `room` that does not split a UTF-8 sequence (falls back to `room`
 * when the bytes are not valid UTF-8 anyway). Always > 0 when `room` > 0.
 */
function utf8Boundary(buf: Buffer, room: number): number {
  if (room <= 0) return 0;
  if (room >= buf.length) return buf.length;
  let cut = room;
  // Step back over continuation bytes (10xxxxxx) of the character that straddles the cut.
  for (let i = 0; i < 3 && cut > 0 && ((buf[cut] as number) & 0xc0) === 0x80; i++) cut--;
  return cut === 0 ? room : cut;
}

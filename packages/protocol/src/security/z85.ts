/**
 * Z85 (ZeroMQ RFC 32), the text form ZeroMQ gives CURVE keys: 32 bytes <-> 40 characters.
 */
import { UsageError } from "../errors.js";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
const VALUES = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]));

/** Whether `text` is Z85 of a length multiple of 5 (a CURVE key is 40 characters). */
export function isZ85(text: string): boolean {
  if (text.length === 0 || text.length % 5 !== 0) return false;
  for (const c of text) if (!VALUES.has(c)) return false;
  return true;
}

/**
 * Bytes of a Z85 string.
 * @throws UsageError INVALID_ARGUMENT when `text` is not Z85.
 */
export function z85Decode(text: string): Buffer {
  if (!isZ85(text)) throw new UsageError("INVALID_ARGUMENT", "not a Z85 string (40 characters for a CURVE key)");
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0, o = 0; i < text.length; i += 5, o += 4) {
    let value = 0;
    for (let j = 0; j < 5; j++) value = value * 85 + (VALUES.get(text.charAt(i + j)) ?? 0);
    if (value > 0xffffffff) throw new UsageError("INVALID_ARGUMENT", "not a Z85 string (value out of range)");
    out.writeUInt32BE(value, o);
  }
  return out;
}

/**
 * Z85 text of `bytes` (a length multiple of 4).
 * @throws UsageError INVALID_ARGUMENT when the length is not a multiple of 4.
 */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new UsageError("INVALID_ARGUMENT", "Z85 encodes multiples of 4 bytes");
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let out = "";
  for (let i = 0; i < view.length; i += 4) {
    let value = view.readUInt32BE(i);
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(ALPHABET.charAt(value % 85));
      value = Math.floor(value / 85);
    }
    out += chunk.join("");
  }
  return out;
}

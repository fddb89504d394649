import { BadCursorError } from "../errors.js";

/** An opaque page cursor: base64url JSON of the last row's sort key. */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

/**
 * The sort key in `cursor`, checked against the kinds expected.
 * @throws BadCursorError when it was not made by {@link encodeCursor} for the same query
 */
export function decodeCursor(cursor: string, kinds: readonly ("string" | "number")[]): (string | number)[] {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw new BadCursorError("invalid cursor: pass back `nextCursor` from the previous reply unchanged");
  }
  if (!Array.isArray(value) || value.length !== kinds.length || value.some((v, i) => typeof v !== kinds[i])) {
    throw new BadCursorError(
      "invalid cursor: pass back `nextCursor` from the previous reply unchanged (with the same filters)",
    );
  }
  return value as (string | number)[];
}

/**
 * Text from tasks and from the wire made safe to print on a terminal: a log line, a run message
 * or a workflow name must not be able to move the cursor, clear the screen, set the window title,
 * write to the clipboard (OSC 52) or hide text. Every control character is shown as an escape
 * instead: C0 except tab (`\n`, `\r`, `\x1b`...), DEL (`\x7f`) and C1 (`\u009b`...). Escaping ESC
 * and the C1 introducers breaks every escape sequence; the rest of a sequence is then plain text.
 * The CLI's own colours are added after escaping, so they still work.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;

const NAMED: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r" };

function escapeOne(c: string): string {
  const named = NAMED[c];
  if (named !== undefined) return named;
  const code = c.charCodeAt(0);
  const hex = code.toString(16).padStart(2, "0");
  return code < 0x80 ? `\\x${hex}` : `\\u00${hex}`;
}

/**
 * `text` with every control character but tab replaced by a visible escape (`\x1b`, `\n`,
 * `\u009b`). Idempotent: escaping twice gives the same text.
 *
 * @example
 * escapeControl("\u001b]0;pwned\u0007\u001b[2J") // "\\x1b]0;pwned\\x07\\x1b[2J"
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, escapeOne);
}

/**
 * A copy of `value` with {@link escapeControl} applied to every string in it (object keys
 * included), through arrays and plain objects: a record from the principal, ready to be formatted
 * for a terminal. Use it on what the principal returns before formatting it (never for `--json`,
 * which is escaped by JSON itself).
 */
export function terminalSafe<T>(value: T): T {
  return escapeDeep(value) as T;
}

function escapeDeep(value: unknown): unknown {
  if (typeof value === "string") return escapeControl(value);
  if (Array.isArray(value)) return value.map(escapeDeep);
  if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[escapeControl(k)] = escapeDeep(v);
    return out;
  }
  return value;
}

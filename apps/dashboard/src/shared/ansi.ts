/**
 * A small ANSI SGR parser for log lines shown in the browser: it turns a line into styled spans
 * that the UI renders as React text (never as HTML). Colours 30-37/90-97/40-47/100-107,
 * 38;5;n / 48;5;n, 38;2;r;g;b / 48;2;r;g;b (also with `:` separators), bold, italic, underline
 * and reset are applied; every other escape sequence (other CSI, OSC, DCS, SOS, PM, APC, two-byte
 * escapes) is dropped. Control characters are made visible instead of being obeyed: C0 (except tab)
 * and DEL become their U+2400 "control picture", C1 becomes `\x9b`-style text, and bidirectional
 * overrides/isolates/marks become `\u202e`-style text, so a line can neither hide nor reorder text.
 *
 * Pure: no DOM, no Node imports (shared by the dashboard UI bundle and the server's unit tests).
 */

/** The style of a span; absent fields are the terminal defaults. Colours are CSS colour strings. */
export interface AnsiStyle {
  fg?: string;
  bg?: string;
  bold?: boolean;
  italic?: boolean;
  underline?: boolean;
}

/** One run of text with one style. `escaped` marks text standing for a neutralised character. */
export interface AnsiSpan {
  text: string;
  style: AnsiStyle;
  escaped?: boolean;
}

/** The 16 basic colours (xterm defaults): 0-7 normal, 8-15 bright. */
export const ANSI_BASIC_COLOURS: readonly string[] = [
  "#000000",
  "#cd3131",
  "#0dbc79",
  "#e5e510",
  "#2472c8",
  "#bc3fbc",
  "#11a8cd",
  "#e5e5e5",
  "#666666",
  "#f14c4c",
  "#23d18b",
  "#f5f543",
  "#3b8eea",
  "#d670d6",
  "#29b8db",
  "#ffffff",
];

const CUBE_LEVELS = [0, 95, 135, 175, 215, 255] as const;

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** The CSS colour of xterm-256 colour `n` (0-255), or undefined when out of range. */
export function ansi256(n: number): string | undefined {
  if (!Number.isInteger(n) || n < 0 || n > 255) return undefined;
  if (n < 16) return ANSI_BASIC_COLOURS[n];
  if (n < 232) {
    const i = n - 16;
    const r = CUBE_LEVELS[Math.floor(i / 36)] ?? 0;
    const g = CUBE_LEVELS[Math.floor(i / 6) % 6] ?? 0;
    const b = CUBE_LEVELS[i % 6] ?? 0;
    return `#${hex2(r)}${hex2(g)}${hex2(b)}`;
  }
  const level = 8 + (n - 232) * 10;
  return `#${hex2(level)}${hex2(level)}${hex2(level)}`;
}

/** How a neutralised character is shown, or undefined when it is shown as itself. */
export function visibleControl(code: number): string | undefined {
  if (code === 0x09) return undefined;
  if (code < 0x20) return String.fromCharCode(0x2400 + code);
  if (code === 0x7f) return "\u2421";
  if (code >= 0x80 && code <= 0x9f) return `\\x${hex2(code)}`;
  if (
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069) ||
    code === 0x200e ||
    code === 0x200f ||
    code === 0x061c
  )
    return `\\u${code.toString(16).padStart(4, "0")}`;
  return undefined;
}

const ESC = 0x1b;
const BEL = 0x07;

/** Numbers of one SGR parameter (`38:2::1:2:3` gives [38, 2, NaN, 1, 2, 3]; "" gives [0]). */
function subParams(param: string): number[] {
  if (param === "") return [0];
  return param.split(":").map((p) => (p === "" ? Number.NaN : Number(p)));
}

/** Applies one SGR parameter list (`1;31` etc.) to a style, returning the new style. */
function applySgr(style: AnsiStyle, params: string): AnsiStyle {
  const next: AnsiStyle = { ...style };
  const list = params.split(";");
  for (let i = 0; i < list.length; i++) {
    const sub = subParams(list[i] ?? "");
    const code = sub[0] ?? 0;
    if (code === 38 || code === 48) {
      let colour: string | undefined;
      if (sub.length > 1) {
        // Colon form: 38:5:n or 38:2:r:g:b or 38:2:<colour space>:r:g:b.
        if (sub[1] === 5) colour = ansi256(sub[2] ?? Number.NaN);
        else if (sub[1] === 2) {
          const rgb = sub.length >= 6 ? sub.slice(3, 6) : sub.slice(2, 5);
          colour = rgbColour(rgb);
        }
      } else {
        const mode = Number(list[i + 1]);
        if (mode === 5) {
          colour = ansi256(Number(list[i + 2]));
          i += 2;
        } else if (mode === 2) {
          colour = rgbColour([Number(list[i + 2]), Number(list[i + 3]), Number(list[i + 4])]);
          i += 4;
        } else i += 1;
      }
      if (colour !== undefined) {
        if (code === 38) next.fg = colour;
        else next.bg = colour;
      }
      continue;
    }
    if (code === 0) {
      delete next.fg;
      delete next.bg;
      delete next.bold;
      delete next.italic;
      delete next.underline;
    } else if (code === 1) next.bold = true;
    else if (code === 3) next.italic = true;
    else if (code === 4) next.underline = true;
    else if (code === 22) delete next.bold;
    else if (code === 23) delete next.italic;
    else if (code === 24) delete next.underline;
    else if (code === 39) delete next.fg;
    else if (code === 49) delete next.bg;
    else if (code >= 30 && code <= 37) next.fg = ANSI_BASIC_COLOURS[code - 30] ?? "";
    else if (code >= 90 && code <= 97) next.fg = ANSI_BASIC_COLOURS[code - 90 + 8] ?? "";
    else if (code >= 40 && code <= 47) next.bg = ANSI_BASIC_COLOURS[code - 40] ?? "";
    else if (code >= 100 && code <= 107) next.bg = ANSI_BASIC_COLOURS[code - 100 + 8] ?? "";
    // Anything else (faint, blink, inverse, fonts...) is ignored.
  }
  return next;
}

function rgbColour(rgb: number[]): string | undefined {
  if (rgb.length !== 3 || rgb.some((c) => !Number.isInteger(c) || c < 0 || c > 255)) return undefined;
  return `#${rgb.map(hex2).join("")}`;
}

function sameStyle(a: AnsiStyle, b: AnsiStyle): boolean {
  return a.fg === b.fg && a.bg === b.bg && a.bold === b.bold && a.italic === b.italic && a.underline === b.underline;
}

/**
 * Where the escape sequence starting at `start` (an ESC) ends (exclusive), and its SGR parameters
 * when it is an SGR (`ESC [ ... m`). Returns undefined for an ESC that starts no complete
 * sequence: the caller then shows the ESC itself.
 */
function scanEscape(s: string, start: number): { end: number; sgr?: string } | undefined {
  const next = s.charCodeAt(start + 1);
  if (Number.isNaN(next)) return undefined;
  if (next === 0x5b) {
    // CSI: parameter bytes 0x30-0x3f, intermediate bytes 0x20-0x2f, one final byte 0x40-0x7e.
    let i = start + 2;
    while (i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x3f) i++;
    const paramsEnd = i;
    while (i < s.length && s.charCodeAt(i) >= 0x20 && s.charCodeAt(i) <= 0x2f) i++;
    const final = s.charCodeAt(i);
    if (Number.isNaN(final) || final < 0x40 || final > 0x7e) return undefined;
    if (final === 0x6d && paramsEnd === i) {
      const params = s.slice(start + 2, paramsEnd);
      // Private SGR-like sequences (`ESC [ > 4 m`) are dropped, not applied.
      if (/^[0-9;:]*$/.test(params)) return { end: i + 1, sgr: params };
    }
    return { end: i + 1 };
  }
  if (next === 0x5d || next === 0x50 || next === 0x58 || next === 0x5e || next === 0x5f) {
    // OSC, DCS, SOS, PM, APC: a string ended by BEL (OSC only in practice) or ST (ESC \).
    for (let i = start + 2; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === BEL) return { end: i + 1 };
      if (c === ESC) return s.charCodeAt(i + 1) === 0x5c ? { end: i + 2 } : undefined;
    }
    return undefined;
  }
  // nF escapes (ESC, intermediates 0x20-0x2f, final 0x30-0x7e) and Fp/Fe/Fs (ESC + 0x30-0x7e).
  let i = start + 1;
  while (i < s.length && s.charCodeAt(i) >= 0x20 && s.charCodeAt(i) <= 0x2f) i++;
  const final = s.charCodeAt(i);
  if (Number.isNaN(final) || final < 0x30 || final > 0x7e) return undefined;
  return { end: i + 1 };
}

/**
 * Parses one line into styled spans: SGR sequences set the style, other escape sequences are
 * removed, control and bidi characters are replaced by visible text (spans with `escaped: true`).
 * Adjacent spans of the same style and kind are merged; empty spans are never returned.
 */
export function parseAnsi(input: string): AnsiSpan[] {
  const spans: AnsiSpan[] = [];
  let style: AnsiStyle = {};
  let text = "";
  const flush = (): void => {
    if (text === "") return;
    const last = spans[spans.length - 1];
    if (last !== undefined && last.escaped !== true && sameStyle(last.style, style)) last.text += text;
    else spans.push({ text, style });
    text = "";
  };
  const pushEscaped = (shown: string): void => {
    flush();
    const last = spans[spans.length - 1];
    if (last !== undefined && last.escaped === true && sameStyle(last.style, style)) last.text += shown;
    else spans.push({ text: shown, style, escaped: true });
  };
  let i = 0;
  while (i < input.length) {
    const code = input.charCodeAt(i);
    if (code === ESC) {
      const seq = scanEscape(input, i);
      if (seq === undefined) {
        pushEscaped("\u241b");
        i++;
        continue;
      }
      if (seq.sgr !== undefined) {
        flush();
        style = applySgr(style, seq.sgr);
      }
      i = seq.end;
      continue;
    }
    const shown = visibleControl(code);
    if (shown !== undefined) pushEscaped(shown);
    else text += input[i];
    i++;
  }
  flush();
  return spans;
}

/** The visible text of a line once parsed (what search matches against). */
export function ansiPlainText(spans: readonly AnsiSpan[]): string {
  let out = "";
  for (const s of spans) out += s.text;
  return out;
}

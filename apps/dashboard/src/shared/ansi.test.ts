import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ANSI_BASIC_COLOURS, ansi256, ansiPlainText, parseAnsi } from "./ansi.js";

const red = ANSI_BASIC_COLOURS[1];

/** Whether text holds a character a terminal would obey: C0 but tab, DEL, C1, bidi overrides. */
function hasControl(text: string): boolean {
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if ((c < 0x20 && c !== 0x09) || (c >= 0x7f && c <= 0x9f)) return true;
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c === 0x200e || c === 0x200f) return true;
  }
  return false;
}
const brightGreen = ANSI_BASIC_COLOURS[10];

describe("ANSI SGR parser", () => {
  it("returns plain text as one unstyled span and an empty line as no span", () => {
    assert.deepEqual(parseAnsi("hello world"), [{ text: "hello world", style: {} }]);
    assert.deepEqual(parseAnsi(""), []);
  });

  it("applies foreground and background colours, bright variants and reset", () => {
    assert.deepEqual(parseAnsi("a\x1b[31mb\x1b[0mc"), [
      { text: "a", style: {} },
      { text: "b", style: { fg: red } },
      { text: "c", style: {} },
    ]);
    assert.deepEqual(parseAnsi("\x1b[92;41mx\x1b[mz"), [
      { text: "x", style: { fg: brightGreen, bg: red } },
      { text: "z", style: {} },
    ]);
    assert.deepEqual(parseAnsi("\x1b[104mx\x1b[49my\x1b[39m"), [
      { text: "x", style: { bg: ANSI_BASIC_COLOURS[12] } },
      { text: "y", style: {} },
    ]);
  });

  it("applies bold, italic and underline and turns them off one by one", () => {
    assert.deepEqual(parseAnsi("\x1b[1;3;4mA\x1b[22mB\x1b[23mC\x1b[24mD"), [
      { text: "A", style: { bold: true, italic: true, underline: true } },
      { text: "B", style: { italic: true, underline: true } },
      { text: "C", style: { underline: true } },
      { text: "D", style: {} },
    ]);
  });

  it("supports 256 colours and true colour, with ; and : separators", () => {
    assert.deepEqual(parseAnsi("\x1b[38;5;196mx"), [{ text: "x", style: { fg: "#ff0000" } }]);
    assert.deepEqual(parseAnsi("\x1b[48;5;232mx"), [{ text: "x", style: { bg: "#080808" } }]);
    assert.deepEqual(parseAnsi("\x1b[38;5;9mx"), [{ text: "x", style: { fg: ANSI_BASIC_COLOURS[9] } }]);
    assert.deepEqual(parseAnsi("\x1b[38;2;1;2;255;1mx"), [{ text: "x", style: { fg: "#0102ff", bold: true } }]);
    assert.deepEqual(parseAnsi("\x1b[38:2::10:20:30mx"), [{ text: "x", style: { fg: "#0a141e" } }]);
    assert.deepEqual(parseAnsi("\x1b[48:5:21mx"), [{ text: "x", style: { bg: "#0000ff" } }]);
    assert.equal(ansi256(16), "#000000");
    assert.equal(ansi256(231), "#ffffff");
    assert.equal(ansi256(255), "#eeeeee");
    assert.equal(ansi256(256), undefined);
  });

  it("ignores out-of-range colours instead of producing an invalid CSS colour", () => {
    assert.deepEqual(parseAnsi("\x1b[38;2;300;0;0mx"), [{ text: "x", style: {} }]);
    assert.deepEqual(parseAnsi("\x1b[38;5;999mx"), [{ text: "x", style: {} }]);
    assert.deepEqual(parseAnsi("\x1b[38;5mx"), [{ text: "x", style: {} }]);
  });

  it("strips other CSI sequences, OSC (BEL or ST), DCS and two-byte escapes", () => {
    assert.deepEqual(parseAnsi("a\x1b[2Kb\x1b[1;1Hc\x1b[?25ld"), [{ text: "abcd", style: {} }]);
    assert.deepEqual(parseAnsi("\x1b]0;title\x07x\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"), [
      { text: "xlink", style: {} },
    ]);
    assert.deepEqual(parseAnsi("a\x1bPq#0;1\x1b\\b\x1b(Bc\x1b7d\x1bce"), [{ text: "abcde", style: {} }]);
    assert.deepEqual(parseAnsi("\x1b[>4;2mx"), [{ text: "x", style: {} }]);
  });

  it("shows an ESC that starts no complete sequence instead of swallowing the text after it", () => {
    assert.deepEqual(parseAnsi("a\x1b"), [
      { text: "a", style: {} },
      { text: "\u241b", style: {}, escaped: true },
    ]);
    assert.equal(ansiPlainText(parseAnsi("\x1b]0;unterminated")), "\u241b]0;unterminated");
    assert.equal(ansiPlainText(parseAnsi("\x1b[12")), "\u241b[12");
  });

  it("makes C0, DEL and C1 control characters visible and keeps tabs", () => {
    assert.deepEqual(parseAnsi("a\tb"), [{ text: "a\tb", style: {} }]);
    assert.deepEqual(parseAnsi("a\rb\x00\x07\x7f"), [
      { text: "a", style: {} },
      { text: "\u240d", style: {}, escaped: true },
      { text: "b", style: {} },
      { text: "\u2400\u2407\u2421", style: {}, escaped: true },
    ]);
    assert.equal(ansiPlainText(parseAnsi("x\u009b31my\u0085")), "x\\x9b31my\\x85");
    assert.equal(ansiPlainText(parseAnsi("line\nnext")), "line\u240anext");
  });

  it("shows bidi overrides, isolates and marks escaped so they cannot reorder the line", () => {
    const spans = parseAnsi("user\u202Egnp.exe\u202C \u2066x\u2069\u200F");
    assert.equal(ansiPlainText(spans), "user\\u202egnp.exe\\u202c \\u2066x\\u2069\\u200f");
    for (const s of spans) assert.ok(!hasControl(s.text));
    assert.equal(spans.filter((s) => s.escaped === true).length, 4);
  });

  it("keeps the style on escaped characters and on non-ASCII text", () => {
    assert.deepEqual(parseAnsi("\x1b[31mé\x00😀"), [
      { text: "é", style: { fg: red } },
      { text: "\u2400", style: { fg: red }, escaped: true },
      { text: "😀", style: { fg: red } },
    ]);
  });

  it("never emits an escape or control character, whatever the input", () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const alphabet = ["\x1b", "[", "]", "m", ";", "3", "8", "5", "2", "\x07", "\\", "a", "\u202e", "\x9b", "\x00", "P"];
    for (let n = 0; n < 2000; n++) {
      let s = "";
      const len = rand(30);
      for (let i = 0; i < len; i++) s += alphabet[rand(alphabet.length)];
      for (const span of parseAnsi(s)) {
        assert.ok(span.text.length > 0);
        assert.ok(!hasControl(span.text), JSON.stringify(s));
      }
    }
  });
});

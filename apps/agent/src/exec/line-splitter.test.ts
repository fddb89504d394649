import { test } from "node:test";
import assert from "node:assert/strict";
import { LineSplitter } from "./line-splitter.js";

test("lines split across chunks, CRLF trimmed, final unterminated line emitted at end", () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(Buffer.from("hel")), []);
  assert.deepEqual(s.push(Buffer.from("lo\nwor")), ["hello"]);
  assert.deepEqual(s.push(Buffer.from("ld\r\n\nlast")), ["world", ""]);
  assert.deepEqual(s.end(), ["last"]);
  assert.deepEqual(s.end(), []);
});

test("a line longer than the cap is emitted in pieces without splitting a UTF-8 character", () => {
  const s = new LineSplitter({ maxLineBytes: 8 });
  // "aaaaaaa" + "é" (2 bytes) would straddle the 8-byte cap: the cut goes before "é".
  const out = [...s.push(Buffer.from("aaaaaaaébbbbbbbbbb\nx")), ...s.end()];
  assert.deepEqual(out, ["aaaaaaa", "ébbbbbb", "bbbb", "x"]);
  assert.equal(out.join(""), "aaaaaaaébbbbbbbbbbx");
  for (const l of out) assert.ok(Buffer.byteLength(l) <= 8);
});

test("a multi-megabyte line is bounded by the cap and nothing is lost", () => {
  const s = new LineSplitter({ maxLineBytes: 65_536 });
  const big = "z".repeat(3 * 1024 * 1024 + 5);
  const out: string[] = [];
  for (let i = 0; i < big.length; i += 100_000) out.push(...s.push(Buffer.from(big.slice(i, i + 100_000))));
  out.push(...s.push(Buffer.from("\n")), ...s.end());
  assert.equal(out.join(""), big);
  assert.ok(out.every((l) => l.length <= 65_536));
});

test("invalid UTF-8 bytes become replacement characters", () => {
  const s = new LineSplitter();
  const out = s.push(Buffer.from([0x61, 0xff, 0xfe, 0x62, 0x0a]));
  assert.deepEqual(out, ["a\uFFFD\uFFFDb"]);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import type { LogLine } from "@cdktr/protocol";
import { formatLogLine } from "./log-line.js";
import { createStyle } from "./style.js";
import { escapeControl, terminalSafe } from "./terminal-text.js";

/** Any character a terminal acts on: C0 but tab, DEL, C1. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters is the point
const RAW_CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

test("control characters are shown as escapes: C0 but tab, DEL and C1; everything else is kept", () => {
  assert.equal(escapeControl("\u001b]0;pwned\u0007\u001b[2J"), "\\x1b]0;pwned\\x07\\x1b[2J");
  assert.equal(escapeControl("a\tb"), "a\tb", "tab is kept");
  assert.equal(escapeControl("50%\r100%\nnext"), "50%\\r100%\\nnext");
  assert.equal(escapeControl("\u0000\u0008\u007f"), "\\x00\\x08\\x7f");
  assert.equal(escapeControl("\u009b2J\u0085\u0080"), "\\u009b2J\\u0085\\u0080", "C1 (8-bit CSI, NEL)");
  assert.equal(escapeControl("héllo wörld ✓ 日本 \\x1b"), "héllo wörld ✓ 日本 \\x1b", "text and backslashes untouched");
  for (let c = 0; c < 0x2000; c++) {
    const out = escapeControl(String.fromCharCode(c));
    assert.ok(!RAW_CONTROL.test(out), `U+${c.toString(16)} escaped`);
    assert.equal(escapeControl(out), out, "idempotent");
  }
});

test("terminalSafe escapes every string of a record, keys included, and leaves other values alone", () => {
  const input = {
    runId: "r1",
    message: "boom\u001b[2J",
    params: { "k\u001b": "v\u0007", n: 3, ok: true },
    list: ["\r", null],
    at: null,
  };
  assert.deepEqual(terminalSafe(input), {
    runId: "r1",
    message: "boom\\x1b[2J",
    params: { "k\\x1b": "v\\x07", n: 3, ok: true },
    list: ["\\r", null],
    at: null,
  });
  assert.equal(input.message, "boom\u001b[2J", "the input is not modified");
});

test("a log line is printed escaped, with the CLI's own colours intact", () => {
  const line: LogLine = {
    time: "2026-11-28T10:00:00.000Z",
    runId: "run-1",
    workflowId: "wf",
    taskId: "evil",
    stream: "stderr",
    level: "info",
    seq: 1,
    line: "\u001b]0;pwned\u0007\u001b[2J",
  };
  const plain = formatLogLine(line, createStyle(false), { showRun: true });
  assert.ok(!RAW_CONTROL.test(plain), JSON.stringify(plain));
  assert.match(plain, /evil {2}\\x1b\]0;pwned\\x07\\x1b\[2J$/);
  const coloured = formatLogLine(line, createStyle(true));
  // The only escape sequences left are the CLI's own colours (SGR: ESC [ n m).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colours start with ESC
  const withoutColours = coloured.replace(/\u001b\[\d+m/g, "");
  assert.ok(!RAW_CONTROL.test(withoutColours), JSON.stringify(coloured));
  assert.ok(coloured.includes("\u001b[31m\\x1b]0;pwned\\x07\\x1b[2J\u001b[39m"), "stderr is red, its text escaped");
});

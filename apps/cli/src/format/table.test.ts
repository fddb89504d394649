import { test } from "node:test";
import assert from "node:assert/strict";
import { renderTable } from "./table.js";
import { createStyle, stripAnsi } from "./style.js";
import { colorEnabled } from "../io.js";

test("columns padded to the widest cell, ANSI colour not counted", () => {
  const style = createStyle(true);
  const out = renderTable(
    ["ID", "STATUS"],
    [
      ["a", style.status("COMPLETED")],
      ["longer-id", style.status("FAILED")],
    ],
  );
  assert.equal(stripAnsi(out), "ID         STATUS\na          COMPLETED\nlonger-id  FAILED\n");
  assert.notEqual(out, stripAnsi(out), "colour codes are present");
  assert.equal(renderTable(["A"], [], { empty: "no runs" }), "no runs\n");
  assert.equal(
    renderTable(
      ["N", "X"],
      [
        ["1", "a"],
        ["100", "b"],
      ],
      { alignRight: [0] },
    ),
    "  N  X\n  1  a\n100  b\n",
  );
});

test("colour only on a TTY and without NO_COLOR", () => {
  assert.equal(colorEnabled({ isTTY: true, env: {} }), true);
  assert.equal(colorEnabled({ isTTY: false, env: {} }), false);
  assert.equal(colorEnabled({ isTTY: true, env: { NO_COLOR: "1" } }), false);
  assert.equal(colorEnabled({ isTTY: true, env: { TERM: "dumb" } }), false);
  assert.equal(createStyle(false).red("x"), "x");
});

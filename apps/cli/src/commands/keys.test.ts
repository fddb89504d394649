import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../cli.js";
import { CliError } from "../errors.js";
import { bufferIo } from "../io.js";
import { parseRole, parseWorkflowList } from "./keys.js";

describe("cdktr keys: arguments", () => {
  it("roles are the five of docs/security.md, case-insensitive; anything else is bad usage naming them", () => {
    assert.equal(parseRole("Trigger"), "trigger");
    assert.throws(
      () => parseRole("admin"),
      (e: unknown) =>
        e instanceof CliError &&
        e.exitCode === 2 &&
        e.message.startsWith('unknown role "admin": use one of operator, reader, scheduler, trigger, agent'),
    );
  });

  it("--workflows is a comma-separated list of workflow ids, blanks and repeats dropped", () => {
    assert.deepEqual(parseWorkflowList(" etl, report,,etl "), ["etl", "report"]);
    assert.throws(() => parseWorkflowList(" , "), /at least one workflow id/);
    assert.throws(() => parseWorkflowList("etl,a b"), /"a b" is not a workflow id/);
  });

  it("--out - refuses to print a secret key on a terminal, before anything is made or enrolled", async (t) => {
    const home = mkdtempSync(join(tmpdir(), "cdktr-keys-tty-"));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const io = bufferIo({ env: { HOME: home, NO_COLOR: "1" }, isTTY: true });
    const code = await runCli(["keys", "create", "ci", "--role", "trigger", "--out", "-"], io);
    assert.equal(code, 2);
    assert.match(io.err(), /^error: --out - prints the key file, secret key included, on stdout: redirect it/);
    assert.equal(io.out(), "");
    assert.deepEqual(readdirSync(home), [], "nothing written");
  });
});

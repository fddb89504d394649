import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CdktrError } from "@cdktr/protocol";
import { CliError, describeError } from "./errors.js";

describe("CliError", () => {
  it("carries its exit code and a stable code: CLI_USAGE for bad usage, CLI_FAILED otherwise", () => {
    const usage = new CliError("bad parameter", 2);
    assert.equal(usage.name, "CliError");
    assert.equal(usage.code, "CLI_USAGE");
    assert.equal(usage.exitCode, 2);
    const failed = new CliError("no such run");
    assert.equal(failed.code, "CLI_FAILED");
    assert.equal(failed.exitCode, 1);
  });
});

describe("describeError", () => {
  it("prints a CliError as is, with its exit code", () => {
    assert.deepEqual(describeError(new CliError("use either --run or --workflow", 2)), {
      message: "use either --run or --workflow",
      exitCode: 2,
    });
  });

  it("points at the principal when it cannot be reached", () => {
    const d = describeError(new CdktrError("TIMEOUT", "no reply"), { principal: "127.0.0.1:5561" });
    assert.match(d.message, /^no principal at 127\.0\.0\.1:5561: start one with `cdktr start principal`/);
    assert.equal(d.exitCode, 1);
  });

  it("says why an authenticated principal may not answer: no key at all, or a key it does not know", () => {
    const timeout = new CdktrError("TIMEOUT", "no reply");
    const keyless = describeError(timeout, { principal: "127.0.0.1:5561", keyName: null }).message;
    assert.match(keyless, /^no principal at 127\.0\.0\.1:5561: start one/);
    assert.match(keyless, /answers only enrolled keys, and this cdktr has none: .*CDKTR_KEY_FILE/);
    const unknown = describeError(timeout, { principal: "127.0.0.1:5561", keyName: "ci" }).message;
    assert.match(unknown, /it does not know key `ci` \(not enrolled, revoked, or made for another principal\)$/);
    // authentication off (no key expected): no hint
    assert.doesNotMatch(describeError(timeout, { principal: "127.0.0.1:5561" }).message, /key/);
  });

  it("joins a multi-line server message into one line; bad input exits 2", () => {
    assert.deepEqual(describeError(new CdktrError("INVALID_PARAMS", "param date:\n  is required\n")), {
      message: "param date:; is required",
      exitCode: 2,
    });
  });

  it("prints the message of anything else", () => {
    assert.deepEqual(describeError(new Error("boom\nmore")), { message: "boom; more", exitCode: 1 });
    assert.deepEqual(describeError("plain text"), { message: "plain text", exitCode: 1 });
  });
});

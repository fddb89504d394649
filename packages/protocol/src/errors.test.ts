import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  CdktrError,
  CodedError,
  ThrownValueError,
  WireErrorSchema,
  coerceError,
  errorMessage,
  isCdktrError,
} from "./errors.js";
import { ConfigError } from "./config/config-error.js";

describe("coded errors", () => {
  it("keep their code, name, context and cause", () => {
    class LockError extends CodedError<"DATA_DIR_LOCKED"> {}
    const cause = new Error("EEXIST");
    const e = new LockError("DATA_DIR_LOCKED", "another agent holds /data", { cause, context: { dir: "/data" } });
    assert.ok(e instanceof Error);
    assert.equal(e.name, "LockError");
    assert.equal(e.code, "DATA_DIR_LOCKED");
    assert.deepEqual(e.context, { dir: "/data" });
    assert.equal(e.cause, cause);
  });

  it("a ConfigError lists its problems under a heading, with code CONFIG_INVALID", () => {
    const e = new ConfigError(["A: bad", "B: worse"], "cannot read .env");
    assert.ok(e instanceof CodedError);
    assert.equal(e.name, "ConfigError");
    assert.equal(e.code, "CONFIG_INVALID");
    assert.deepEqual(e.problems, ["A: bad", "B: worse"]);
    assert.equal(e.message, "cannot read .env:\n  A: bad\n  B: worse");
    assert.equal(isCdktrError(e), false, "a local code is not a wire code");
  });
});

describe("coerceError", () => {
  it("passes errors through", () => {
    const e = new CdktrError("TIMEOUT", "no reply");
    assert.equal(coerceError(e), e);
  });

  it("turns other thrown values into an Error that describes them and keeps them as cause", () => {
    const fromString = coerceError("boom");
    assert.ok(fromString instanceof ThrownValueError);
    assert.equal(fromString.message, "boom");
    assert.equal(fromString.cause, "boom");
    assert.equal(errorMessage({ a: 1 }), '{"a":1}');
    assert.equal(errorMessage(null), "null");
    assert.equal(errorMessage(undefined), "undefined");
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.equal(errorMessage(circular), "[object Object]");
  });

  it("keeps the message and code of error-like objects", () => {
    const e = coerceError({ code: "ENOENT", message: "no such file" });
    assert.equal(e.message, "no such file");
    assert.equal((e as ThrownValueError).code, "ENOENT");
    assert.equal((coerceError({ message: "plain" }) as ThrownValueError).code, "THROWN_VALUE");
  });
});

describe("NOT_LEADER on the wire", () => {
  it("carries the leader's endpoints both ways, is retryable, and stays absent on other errors", () => {
    const leader = { api: "tcp://10.0.0.2:5561", logs: "tcp://10.0.0.2:5562", publish: "tcp://10.0.0.2:5563" };
    const e = new CdktrError("NOT_LEADER", "this principal is a standby: send writes to the leader", { leader });
    assert.equal(e.retryable, true);
    const wire = WireErrorSchema.parse(JSON.parse(JSON.stringify(e.toWire())));
    assert.deepEqual(wire.leader, leader);
    assert.deepEqual(CdktrError.fromWire(wire).leader, leader);
    assert.equal("leader" in new CdktrError("INTERNAL", "x").toWire(), false);
  });
});

import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { makeTempDir, removeTempDirs } from "@cdktr/test-base";
import { ConfigError } from "./config-error.js";
import { clientEnv, envBool, envInt, envPort, loadDotEnv, parseDotEnv, parseEnv } from "./env.js";

afterEach(() => removeTempDirs());

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    for (const p of e.problems) assert.ok(e.message.includes(p), "message lists every problem");
    return e.problems;
  }
  assert.fail("expected a ConfigError");
}

describe("parseEnv", () => {
  const schema = z.object({
    CDKTR_PRINCIPAL_PORT: envPort(5561),
    CDKTR_AGENT_MAX_CONCURRENT: envInt({ min: 1, max: 64, default: 4 }),
    CDKTR_DEBUG: envBool(false),
    CDKTR_MODE: z.enum(["fast", "safe"]).default("safe"),
    CDKTR_NAME: z.string().min(1),
  });

  it("applies defaults and coerces values", () => {
    const c = parseEnv(schema, { CDKTR_NAME: "x", CDKTR_DEBUG: "yes", CDKTR_PRINCIPAL_PORT: "", UNRELATED: "1" });
    assert.deepEqual(c, {
      CDKTR_PRINCIPAL_PORT: 5561,
      CDKTR_AGENT_MAX_CONCURRENT: 4,
      CDKTR_DEBUG: true,
      CDKTR_MODE: "safe",
      CDKTR_NAME: "x",
    });
  });

  it("throws ConfigError with one readable line per bad variable", () => {
    const problems = problemsOf(() =>
      parseEnv(schema, {
        CDKTR_PRINCIPAL_PORT: "abc",
        CDKTR_AGENT_MAX_CONCURRENT: "0",
        CDKTR_DEBUG: "maybe",
        CDKTR_MODE: "turbo",
      }),
    );
    assert.deepEqual(problems, [
      'CDKTR_PRINCIPAL_PORT: expected an integer from 1 to 65535, got "abc"',
      'CDKTR_AGENT_MAX_CONCURRENT: expected an integer from 1 to 64, got "0"',
      'CDKTR_DEBUG: expected true or false (also 1/0, yes/no, on/off), got "maybe"',
      'CDKTR_MODE: expected one of "fast"|"safe", got "turbo"',
      "CDKTR_NAME: required but not set",
    ]);
  });

  it("rejects out-of-range and fractional ports", () => {
    assert.deepEqual(
      problemsOf(() => parseEnv(z.object({ P: envPort(1) }), { P: "70000" })),
      ['P: expected an integer from 1 to 65535, got "70000"'],
    );
    assert.deepEqual(
      problemsOf(() => parseEnv(z.object({ P: envPort(1) }), { P: "1.5" })),
      ['P: expected an integer from 1 to 65535, got "1.5"'],
    );
  });
});

describe("clientEnv", () => {
  it("reads the CDKTR_* client variables with defaults", () => {
    assert.deepEqual(clientEnv({}), {
      host: "127.0.0.1",
      port: 5561,
      logsPort: 5562,
      publishPort: 5563,
      endpoints: ["tcp://127.0.0.1:5561"],
    });
    assert.deepEqual(
      clientEnv({ CDKTR_PRINCIPAL_HOST: "10.0.0.5", CDKTR_PRINCIPAL_PORT: "6000", CDKTR_LOGS_PUBLISHING_PORT: "6003" }),
      {
        host: "10.0.0.5",
        port: 6000,
        logsPort: 5562,
        publishPort: 6003,
        endpoints: ["tcp://10.0.0.5:6000"],
      },
    );
    assert.throws(
      () => clientEnv({ CDKTR_LOGS_LISTENING_PORT: "x" }),
      /CDKTR_LOGS_LISTENING_PORT: expected an integer/,
    );
  });

  it("reads CDKTR_PRINCIPAL_ENDPOINTS as a list of API endpoints, deduplicated, and names a bad item", () => {
    assert.deepEqual(
      clientEnv({ CDKTR_PRINCIPAL_ENDPOINTS: "host1:5561, tcp://host2:6000,[::1]:5561,host1:5561" }).endpoints,
      ["tcp://host1:5561", "tcp://host2:6000", "tcp://[::1]:5561"],
    );
    assert.throws(
      () => clientEnv({ CDKTR_PRINCIPAL_ENDPOINTS: "host1:5561,host2" }),
      /CDKTR_PRINCIPAL_ENDPOINTS: expected host:port items separated by commas \("host2" is not one\)/,
    );
    assert.throws(() => clientEnv({ CDKTR_PRINCIPAL_ENDPOINTS: "host1:70000" }), /CDKTR_PRINCIPAL_ENDPOINTS/);
    assert.throws(() => clientEnv({ CDKTR_PRINCIPAL_ENDPOINTS: " , " }), /CDKTR_PRINCIPAL_ENDPOINTS: expected 1 to 16/);
  });
});

describe("loadDotEnv", () => {
  it("loads a .env file without overriding variables already set", () => {
    const dir = makeTempDir();
    const file = join(dir, ".env");
    writeFileSync(
      file,
      [
        "# comment",
        "CDKTR_A=1",
        "export CDKTR_B = two words  # trailing comment",
        'CDKTR_C="line1\\nline2 # not a comment"',
        "CDKTR_D='$literal \\n'",
        "CDKTR_SET=from-file",
        "",
      ].join("\n"),
    );
    const env: Record<string, string | undefined> = { CDKTR_SET: "from-env" };
    loadDotEnv(file, env);
    assert.deepEqual(env, {
      CDKTR_SET: "from-env",
      CDKTR_A: "1",
      CDKTR_B: "two words",
      CDKTR_C: "line1\nline2 # not a comment",
      CDKTR_D: "$literal \\n",
    });
  });

  it("accepts a missing file", () => {
    const env: Record<string, string | undefined> = {};
    loadDotEnv(join(makeTempDir(), "missing.env"), env);
    assert.deepEqual(env, {});
  });

  it("names file and line of malformed entries", () => {
    const problems = problemsOf(() => parseDotEnv('A=1\nnot a pair\n1BAD=x\nQ="open', "conf/.env"));
    assert.deepEqual(problems, [
      "conf/.env:2: expected KEY=value",
      'conf/.env:3: "1BAD" is not a valid variable name',
      'conf/.env:4: unterminated " quote',
    ]);
  });
});

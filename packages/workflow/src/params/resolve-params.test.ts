import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ParamDefinition } from "@cdktr/protocol";
import { resolveParams, withParamDefaults } from "./resolve-params.js";

const defs: Record<string, ParamDefinition> = {
  count: { type: "number", required: false, default: 1, description: null },
  flag: { type: "boolean", required: false, default: false, description: null },
  env: { type: "enum", values: ["dev", "prod"], required: true, description: null },
  label: { type: "string", required: false, description: null },
};

describe("resolveParams", () => {
  it("coerces strings and applies defaults", () => {
    assert.deepEqual(resolveParams(defs, { count: "3", flag: "true", env: "prod" }), {
      ok: true,
      params: { count: 3, flag: true, env: "prod" },
    });
    assert.deepEqual(resolveParams(defs, { env: "dev" }), { ok: true, params: { count: 1, flag: false, env: "dev" } });
    assert.deepEqual(resolveParams(defs, { env: "dev", label: 42, flag: "FALSE", count: 2.5 }), {
      ok: true,
      params: { count: 2.5, flag: false, env: "dev", label: "42" },
    });
  });

  it("reports every problem: missing required, unknown names, bad values", () => {
    const r = resolveParams(defs, { count: "three", flag: "maybe", colour: "red" });
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.deepEqual(r.errors, [
      "unknown param `colour` (known: count, flag, env, label)",
      'param `count`: expected a number, got "three"',
      'param `flag`: expected a boolean (true/false), got "maybe"',
      "missing required param `env` (one of dev, prod)",
    ]);
  });

  it("rejects enum values outside the list and any param for a workflow without params", () => {
    const r = resolveParams(defs, { env: "staging" });
    assert.ok(!r.ok);
    assert.match(r.errors[0] ?? "", /param `env`: expected one of "dev", "prod", got "staging"/);
    const none = resolveParams({}, { x: 1 });
    assert.ok(!none.ok);
    assert.match(none.errors[0] ?? "", /takes no params/);
    assert.deepEqual(resolveParams({}, {}), { ok: true, params: {} });
  });

  it("treats empty and whitespace strings as not a number", () => {
    const r = resolveParams({ n: { type: "number", required: true, description: null } }, { n: " " });
    assert.ok(!r.ok);
  });
});

describe("withParamDefaults", () => {
  it("adds the default of each declared param a run lacks, keeps the run's values and leaves the rest absent", () => {
    const run = { env: "dev", count: 5, extra: "kept" };
    assert.deepEqual(withParamDefaults(defs, run), { env: "dev", count: 5, flag: false, extra: "kept" });
    assert.deepEqual(run, { env: "dev", count: 5, extra: "kept" }, "the run's params are not changed");
    const full = { env: "dev", count: 1, flag: true };
    assert.equal(withParamDefaults(defs, full), full, "nothing to add: the same object");
  });
});

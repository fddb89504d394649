/**
 * Typed run parameters: coercion of trigger input (often strings from a CLI or a webhook)
 * against a workflow's `params` definitions.
 */
import type { ParamDefinition, ParamValue, Params } from "@cdktr/protocol";

/** Result of {@link resolveParams}. */
export type ResolveParamsResult = { ok: true; params: Params } | { ok: false; errors: string[] };

const TRUE = new Set(["true", "yes", "on", "1"]);
const FALSE = new Set(["false", "no", "off", "0"]);

/**
 * Coerces one value to a parameter's type.
 * @returns the typed value, or an error message (without the parameter name).
 */
export function coerceParam(
  def: ParamDefinition,
  value: unknown,
): { ok: true; value: ParamValue } | { ok: false; error: string } {
  switch (def.type) {
    case "string":
      if (typeof value === "string") return { ok: true, value };
      if ((typeof value === "number" && Number.isFinite(value)) || typeof value === "boolean") {
        return { ok: true, value: String(value) };
      }
      return { ok: false, error: `expected a string, got ${describe(value)}` };
    case "number": {
      if (typeof value === "number" && Number.isFinite(value)) return { ok: true, value };
      if (typeof value === "string" && value.trim() !== "") {
        const n = Number(value.trim());
        if (Number.isFinite(n)) return { ok: true, value: n };
      }
      return { ok: false, error: `expected a number, got ${describe(value)}` };
    }
    case "boolean":
      if (typeof value === "boolean") return { ok: true, value };
      if (typeof value === "string") {
        const v = value.trim().toLowerCase();
        if (TRUE.has(v)) return { ok: true, value: true };
        if (FALSE.has(v)) return { ok: true, value: false };
      }
      if (value === 0 || value === 1) return { ok: true, value: value === 1 };
      return { ok: false, error: `expected a boolean (true/false), got ${describe(value)}` };
    case "enum": {
      const values = def.values ?? [];
      const s =
        typeof value === "string"
          ? value
          : typeof value === "number" || typeof value === "boolean"
            ? String(value)
            : null;
      if (s !== null && values.includes(s)) return { ok: true, value: s };
      return {
        ok: false,
        error: `expected one of ${values.map((v) => JSON.stringify(v)).join(", ")}, got ${describe(value)}`,
      };
    }
  }
}

/**
 * Resolves the parameters of a trigger against a workflow's definitions: coerces each value
 * (`"3"` -> 3 for a number, `"true"` -> true for a boolean), applies defaults, and reports every
 * problem at once: unknown names, missing required parameters, values of the wrong type.
 * A parameter that is optional, has no default and is not given is left out of `params`.
 *
 * @example
 * resolveParams({ count: { type: "number", required: false, default: 1, description: null } }, { count: "3" })
 * // { ok: true, params: { count: 3 } }
 */
export function resolveParams(
  defs: Readonly<Record<string, ParamDefinition>>,
  input: Readonly<Record<string, unknown>>,
): ResolveParamsResult {
  const errors: string[] = [];
  const params: Params = {};
  const known = Object.keys(defs);
  for (const name of Object.keys(input)) {
    if (!Object.hasOwn(defs, name)) {
      errors.push(
        known.length === 0
          ? `unknown param \`${name}\`: this workflow takes no params`
          : `unknown param \`${name}\` (known: ${known.join(", ")})`,
      );
    }
  }
  for (const name of known) {
    const def = defs[name] as ParamDefinition;
    const raw = Object.hasOwn(input, name) ? input[name] : undefined;
    if (raw === undefined || raw === null) {
      if (def.default !== undefined) params[name] = def.default;
      else if (def.required)
        errors.push(
          `missing required param \`${name}\` (${def.type === "enum" ? `one of ${(def.values ?? []).join(", ")}` : def.type})`,
        );
      continue;
    }
    const r = coerceParam(def, raw);
    if (r.ok) params[name] = r.value;
    else errors.push(`param \`${name}\`: ${r.error}`);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, params };
}

/**
 * The params of a run as its tasks see them: the run's own values, plus the default of each
 * declared param the run lacks (a run triggered before the param was added to the file).
 * An optional param without a default stays absent.
 */
export function withParamDefaults(defs: Readonly<Record<string, ParamDefinition>>, params: Params): Params {
  let out: Params | null = null;
  for (const [name, def] of Object.entries(defs)) {
    if (def.default === undefined || Object.hasOwn(params, name)) continue;
    out ??= { ...params };
    out[name] = def.default;
  }
  return out ?? params;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${value}`;
  return typeof value;
}

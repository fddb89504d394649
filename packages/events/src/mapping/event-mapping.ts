/**
 * An event's content into a run: a listener's declared `params_map` (run param -> JMESPath
 * expression), an optional `when` filter and an optional `idempotency_key` expression, each
 * evaluated against the listener's **event document** (its JSON body, headers, subject... as each
 * listener documents).
 *
 * JMESPath (https://jmespath.site, the community edition) is a query language without side
 * effects: an expression can read the document, never run code.
 */
import { compile, TreeInterpreter, type JSONValue } from "@jmespath-community/jmespath";
import { UsageError, errorMessage, type Params } from "@cdktr/protocol";

/** One mapped param: an expression, or an expression that may find nothing (the param is then omitted). */
export type ParamsMapEntry = string | { readonly from: string; readonly optional?: boolean | undefined };

/** Run param name -> where its value comes from in the event document. */
export type ParamsMap = Readonly<Record<string, ParamsMapEntry>>;

/** What a listener declares about turning its events into runs. */
export interface EventMappingSpec {
  /** Fixed params of every run (mapped params win over them). */
  params?: Params;
  /** Params taken from the event: `{date: "body.date", sha: {from: "body.after", optional: true}}`. */
  paramsMap?: ParamsMap;
  /**
   * Only events for which this expression is truthy trigger (JMESPath truthiness: `false`,
   * `null`, `""`, `[]` and `{}` are false), e.g. `body.ref == 'refs/heads/main'`.
   */
  when?: string;
  /** Expression giving the run's idempotency key (a non-empty string or a number), e.g. `headers."x-request-id"`. */
  idempotencyKey?: string;
}

/** Outcome of {@link EventMapping.map}. */
export type EventMappingResult = { ok: true; params: Params; idempotencyKey?: string } | { ok: false; error: string };

type Compiled = ReturnType<typeof compile>;

interface CompiledParam {
  name: string;
  expression: string;
  node: Compiled;
  optional: boolean;
}

/** Longest string a mapped param or key may have (the principal's own limits are checked again there). */
const MAX_VALUE_CHARS = 64 * 1024;

/**
 * A compiled {@link EventMappingSpec}. Compile once at start (a bad expression is a start-up
 * error naming the field), then {@link matches} and {@link map} each event; neither throws.
 */
export class EventMapping {
  readonly #params: Params;
  readonly #mapped: readonly CompiledParam[];
  readonly #when: { expression: string; node: Compiled } | null;
  readonly #key: { expression: string; node: Compiled } | null;

  private constructor(
    params: Params,
    mapped: CompiledParam[],
    when: { expression: string; node: Compiled } | null,
    key: { expression: string; node: Compiled } | null,
  ) {
    this.#params = params;
    this.#mapped = mapped;
    this.#when = when;
    this.#key = key;
  }

  /**
   * Compile `spec`. `where` prefixes the field names in errors (e.g. `listeners[2]`).
   * @throws UsageError (`INVALID_ARGUMENT`) listing every expression that does not parse
   */
  static compile(spec: EventMappingSpec, where = ""): EventMapping {
    const at = (field: string): string => (where === "" ? field : `${where}.${field}`);
    const problems: string[] = [];
    const parse = (field: string, expression: string): Compiled | null => {
      if (expression.trim() === "") {
        problems.push(`${at(field)}: empty expression`);
        return null;
      }
      try {
        return compile(expression);
      } catch (e) {
        problems.push(`${at(field)}: ${JSON.stringify(expression)} is not a JMESPath expression: ${errorMessage(e)}`);
        return null;
      }
    };
    const mapped: CompiledParam[] = [];
    for (const [name, entry] of Object.entries(spec.paramsMap ?? {})) {
      const expression = typeof entry === "string" ? entry : entry.from;
      const node = parse(`params_map.${name}`, expression);
      if (node !== null)
        mapped.push({ name, expression, node, optional: typeof entry === "string" ? false : entry.optional === true });
    }
    const one = (field: string, expression: string | undefined) => {
      if (expression === undefined) return null;
      const node = parse(field, expression);
      return node === null ? null : { expression, node };
    };
    const when = one("when", spec.when);
    const key = one("idempotency_key", spec.idempotencyKey);
    if (problems.length > 0) throw new UsageError("INVALID_ARGUMENT", `invalid event mapping: ${problems.join("; ")}`);
    return new EventMapping({ ...(spec.params ?? {}) }, mapped, when, key);
  }

  /** True when the spec maps anything from the event (params, key or filter). */
  get readsEvent(): boolean {
    return this.#mapped.length > 0 || this.#when !== null || this.#key !== null;
  }

  /** Whether `event` passes the `when` filter (true without one; an evaluation error is false). */
  matches(event: unknown): boolean {
    if (this.#when === null) return true;
    const v = evaluate(this.#when.node, event);
    return v.ok && truthy(v.value);
  }

  /**
   * The run's params (fixed params, then mapped ones) and idempotency key from `event`, or the
   * reason it cannot map: a required param found nothing, or found an object or a list.
   */
  map(event: unknown): EventMappingResult {
    const params: Params = { ...this.#params };
    const problems: string[] = [];
    for (const p of this.#mapped) {
      const v = evaluate(p.node, event);
      if (!v.ok) {
        problems.push(`params.${p.name} (${p.expression}): ${v.error}`);
        continue;
      }
      const value = v.value;
      if (value === null) {
        if (!p.optional) problems.push(`params.${p.name} (${p.expression}): found nothing in the event`);
        continue;
      }
      if (typeof value === "string") {
        if (value.length > MAX_VALUE_CHARS)
          problems.push(
            `params.${p.name} (${p.expression}): a string of ${value.length} characters (at most ${MAX_VALUE_CHARS})`,
          );
        else params[p.name] = value;
      } else if (typeof value === "number" || typeof value === "boolean") {
        params[p.name] = value;
      } else {
        problems.push(
          `params.${p.name} (${p.expression}): found ${Array.isArray(value) ? "a list" : "an object"}; a param takes a string, a number or a boolean (select a field, or use join(',', ...) or to_string(...))`,
        );
      }
    }
    let idempotencyKey: string | undefined;
    if (this.#key !== null) {
      const v = evaluate(this.#key.node, event);
      const k = v.ok ? v.value : null;
      if (typeof k === "string" && k !== "" && k.length <= MAX_VALUE_CHARS) idempotencyKey = k;
      else if (typeof k === "number" && Number.isFinite(k)) idempotencyKey = String(k);
      else
        problems.push(
          `idempotency_key (${this.#key.expression}): ${v.ok ? `expected a non-empty string or a number, found ${describe(k)}` : v.error}`,
        );
    }
    if (problems.length > 0) return { ok: false, error: `cannot map the event: ${problems.join("; ")}` };
    return idempotencyKey === undefined ? { ok: true, params } : { ok: true, params, idempotencyKey };
  }
}

function evaluate(node: Compiled, event: unknown): { ok: true; value: JSONValue } | { ok: false; error: string } {
  try {
    return { ok: true, value: TreeInterpreter.search(node, event as JSONValue) };
  } catch (e) {
    return { ok: false, error: `evaluation failed: ${errorMessage(e)}` };
  }
}

function truthy(v: JSONValue): boolean {
  if (v === null || v === false || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
}

function describe(v: JSONValue): string {
  if (v === null) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return JSON.stringify(v).slice(0, 80);
}

/**
 * The body of a message as the event document's `body`: its JSON value when it parses as JSON,
 * else its text (UTF-8, invalid bytes replaced). Never throws.
 */
export function decodeBody(raw: string | Uint8Array): JSONValue {
  const text = typeof raw === "string" ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8");
  try {
    return JSON.parse(text) as JSONValue;
  } catch {
    return text;
  }
}

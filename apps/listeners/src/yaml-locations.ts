/**
 * Where a problem of the listeners YAML file is, and how to name it: `file:line:column` offsets
 * of values and keys in the parsed document, field paths (`listeners[0].port`), zod messages
 * without their prefix, and a "did you mean" for unknown fields.
 */
import { isMap, isPair, isScalar, type Document } from "yaml";
import type { z } from "zod";

/** The field at `path` as a user writes it, e.g. `listeners[0].port` (`(file)` for the root). */
export function fieldName(path: readonly (string | number)[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? p : `.${p}`;
  return out === "" ? "(file)" : out;
}

/** A zod issue's message without zod's `Invalid input:` prefix. */
export function issueMessage(issue: z.core.$ZodIssue): string {
  return issue.message.replace(/^Invalid input:\s*/i, "");
}

const KNOWN_FIELDS = [
  "type",
  "name",
  "source",
  "host",
  "port",
  "secret",
  "secret_env",
  "secret_file",
  "signature_tolerance_s",
  "max_body_bytes",
  "trigger_timeout_ms",
  "retry_after_s",
  "routes",
  "flavour",
  "hmac",
  "trigger_path",
  "workflows",
  "path",
  "workflow",
  "glob",
  "events",
  "debounce_ms",
  "max_wait_ms",
  "paths_param",
  "params",
  "await_write_finish_ms",
  "use_polling",
  "url",
  "url_env",
  "queue",
  "prefetch",
  "assert_queue",
  "dead_letter_exchange",
  "require_idempotency_key",
  "connection_string",
  "connection_string_env",
  "channel",
  "application_name",
  "retry_for_ms",
  // nats
  "servers",
  "user",
  "user_env",
  "pass",
  "pass_env",
  "token",
  "token_env",
  "stream",
  "durable",
  "filter_subject",
  "create_stream",
  "subjects",
  "ack_wait_ms",
  "max_in_flight",
  "dead_letter_subject",
  "principal",
  "listeners",
];

/** ` (did you mean `x`?)` for an unknown field `key` close to a known one (edit distance < 3), else `""`. */
export function suggest(key: string): string {
  let best: string | null = null;
  let bestD = 3;
  for (const k of KNOWN_FIELDS) {
    const d = distance(key.toLowerCase().replace(/-/g, "_"), k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && best !== key ? ` (did you mean \`${best}\`?)` : "";
}

/** Levenshtein distance between `a` and `b`. */
function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0] ?? 0;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j] ?? 0;
      dp[j] = Math.min((dp[j] ?? 0) + 1, (dp[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length] ?? 0;
}

/** Offset of the value at `path`, or of its nearest existing ancestor. */
export function valueOffset(doc: Document, path: readonly (string | number)[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range !== undefined) return range[0];
  }
  return undefined;
}

/** Offset of the key `key` in the map at `path`. */
export function keyOffset(doc: Document, path: readonly (string | number)[], key: string): number | undefined {
  const node: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (isMap(node)) {
    for (const pair of node.items) {
      if (isPair(pair) && isScalar(pair.key) && pair.key.value === key) return pair.key.range?.[0];
    }
  }
  return valueOffset(doc, path);
}

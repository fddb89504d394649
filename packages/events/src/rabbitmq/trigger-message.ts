/**
 * The trigger message shared by the RabbitMQ and PostgreSQL listeners:
 * `{"workflow_id": "etl.daily", "params": {"date": "2026-11-28"}, "idempotency_key": "order-42"}`.
 */
import { createHash } from "node:crypto";
import { ParamsSchema, WorkflowIdSchema, errorMessage, type Params } from "@cdktr/protocol";

/** Longest idempotency key the principal accepts. */
const MAX_KEY = 512;
const KEYS = new Set(["workflow_id", "params", "idempotency_key"]);

/** A parsed trigger message. */
export interface TriggerMessage {
  workflowId: string;
  params?: Params;
  idempotencyKey?: string;
}

/** Outcome of {@link parseTriggerMessage}. */
export type ParseTriggerResult = { ok: true; message: TriggerMessage } | { ok: false; error: string };

/**
 * Parse a trigger message body. With `allowBareWorkflowId`, a body that is not JSON but a plain
 * workflow id (`etl.daily`) is accepted too (the PostgreSQL listener's short form). Never throws.
 */
export function parseTriggerMessage(
  raw: string | Uint8Array,
  options: { allowBareWorkflowId?: boolean } = {},
): ParseTriggerResult {
  let text: string;
  try {
    text = typeof raw === "string" ? raw : new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    return {
      ok: false,
      error:
        'message body is not valid UTF-8: send JSON {"workflow_id": ..., "params"?: {...}, "idempotency_key"?: ...}',
    };
  }
  const trimmed = text.trim();
  if (options.allowBareWorkflowId === true && !trimmed.startsWith("{")) {
    const id = WorkflowIdSchema.safeParse(trimmed);
    if (!id.success) {
      return {
        ok: false,
        error: `payload ${JSON.stringify(trimmed.slice(0, 80))} is neither a workflow id nor a JSON object: ${id.error.issues[0]?.message ?? "invalid"}`,
      };
    }
    return { ok: true, message: { workflowId: id.data } };
  }
  let json: unknown;
  try {
    json = JSON.parse(trimmed);
  } catch (e) {
    return {
      ok: false,
      error: `message body is not valid JSON (${errorMessage(e)}): send {"workflow_id": ..., "params"?: {...}, "idempotency_key"?: ...}`,
    };
  }
  return validate(json);
}

function validate(json: unknown): ParseTriggerResult {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return {
      ok: false,
      error:
        'invalid trigger message: expected a JSON object {"workflow_id": ..., "params"?: {...}, "idempotency_key"?: ...}',
    };
  }
  const obj = json as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(obj))
    if (!KEYS.has(k)) problems.push(`${k}: unknown key (expected workflow_id, params, idempotency_key)`);
  const id = WorkflowIdSchema.safeParse(obj.workflow_id);
  if (!id.success)
    problems.push(
      `workflow_id: ${obj.workflow_id === undefined ? "required" : (id.error.issues[0]?.message ?? "invalid")}`,
    );
  const params = obj.params === undefined ? undefined : ParamsSchema.safeParse(obj.params);
  if (params !== undefined && !params.success) {
    for (const i of params.error.issues)
      problems.push(
        `params${i.path.length > 0 ? `.${i.path.join(".")}` : ""}: values must be strings, numbers or booleans`,
      );
  }
  const key = obj.idempotency_key;
  if (key !== undefined && (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY)) {
    problems.push(`idempotency_key: expected a string of 1 to ${MAX_KEY} characters`);
  }
  if (problems.length > 0 || !id.success)
    return { ok: false, error: `invalid trigger message: ${problems.join("; ")}` };
  const message: TriggerMessage = { workflowId: id.data };
  if (params?.success === true) message.params = params.data;
  if (typeof key === "string") message.idempotencyKey = key;
  return { ok: true, message };
}

/**
 * `<prefix><id>`, hashing `id` (sha256) when the result would exceed the principal's 512
 * characters, so any source id maps to one stable, valid idempotency key.
 */
export function scopedIdempotencyKey(prefix: string, id: string): string {
  const key = `${prefix}${id}`;
  if (key.length <= MAX_KEY) return key;
  return `${prefix.slice(0, MAX_KEY - 71)}sha256:${createHash("sha256").update(id).digest("hex")}`;
}

/**
 * What a queue-like listener (RabbitMQ, PostgreSQL NOTIFY, NATS, MQTT, Redis Streams) makes of one
 * message: either a cdktr trigger message (`{"workflow_id", "params"?, "idempotency_key"?}`), or,
 * when the listener names a fixed `workflow`, any payload whose fields are mapped into params.
 */
import type { JSONValue } from "@jmespath-community/jmespath";
import type { Params } from "@cdktr/protocol";
import { parseTriggerMessage } from "../rabbitmq/trigger-message.js";
import { decodeBody, type EventMapping } from "./event-mapping.js";

/** How a listener turns its messages into runs. */
export interface MessageTriggerOptions {
  /**
   * The workflow every message triggers. Set: a message is any payload (JSON or text) and the run's
   * params come from `mapping`. Unset: a message must be a trigger message naming its workflow.
   */
  workflow?: string;
  /** Fixed params, mapped params, filter and key expression (used only with `workflow`). */
  mapping?: EventMapping | null;
  /** Only these workflows may be triggered (null: any). */
  allow?: ReadonlySet<string> | null;
  /** `allowBareWorkflowId` of {@link parseTriggerMessage} (a plain workflow id as the whole body). */
  allowBareWorkflowId?: boolean;
}

/** Why a message does not trigger. */
export type MessageRefusal =
  /** Not a trigger message (not UTF-8, not JSON, wrong shape). */
  | "malformed"
  /** Its workflow is outside the allow-list. */
  | "not_allowed"
  /** The mapping's `when` filter is false for it: not an error, the message is simply not for us. */
  | "filtered"
  /** A mapped param or the key expression found nothing usable. */
  | "unmapped";

/** Outcome of {@link resolveMessageTrigger}. */
export type MessageTrigger =
  | {
      ok: true;
      workflowId: string;
      params?: Params;
      /** The message's own id for the run's idempotency key (from the body or the key expression), when it has one. */
      key?: string;
    }
  | { ok: false; reason: MessageRefusal; error: string };

/**
 * Resolve one message. `meta` is the rest of the event document the mapping sees besides `body`
 * (e.g. `{subject, headers}` for NATS); the body is the decoded payload ({@link decodeBody}).
 * Never throws.
 */
export function resolveMessageTrigger(
  raw: string | Uint8Array,
  meta: Readonly<Record<string, JSONValue>>,
  options: MessageTriggerOptions,
): MessageTrigger {
  const allow = options.allow ?? null;
  if (options.workflow === undefined) {
    const parsed = parseTriggerMessage(raw, { allowBareWorkflowId: options.allowBareWorkflowId === true });
    if (!parsed.ok) return { ok: false, reason: "malformed", error: parsed.error };
    const { workflowId, params, idempotencyKey } = parsed.message;
    if (allow !== null && !allow.has(workflowId))
      return { ok: false, reason: "not_allowed", error: `workflow ${workflowId} is not in this listener's workflows` };
    return {
      ok: true,
      workflowId,
      ...(params !== undefined ? { params } : {}),
      ...(idempotencyKey !== undefined ? { key: idempotencyKey } : {}),
    };
  }
  const workflowId = options.workflow;
  if (allow !== null && !allow.has(workflowId))
    return { ok: false, reason: "not_allowed", error: `workflow ${workflowId} is not in this listener's workflows` };
  const event = { ...meta, body: decodeBody(raw) };
  const mapping = options.mapping ?? null;
  if (mapping === null) return { ok: true, workflowId };
  if (!mapping.matches(event))
    return { ok: false, reason: "filtered", error: "the message does not match the listener's `when` filter" };
  const mapped = mapping.map(event);
  if (!mapped.ok) return { ok: false, reason: "unmapped", error: mapped.error };
  return {
    ok: true,
    workflowId,
    ...(Object.keys(mapped.params).length > 0 ? { params: mapped.params } : {}),
    ...(mapped.idempotencyKey !== undefined ? { key: mapped.idempotencyKey } : {}),
  };
}

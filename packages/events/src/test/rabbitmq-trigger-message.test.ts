/**
 * The trigger message of the RabbitMQ listener: the documented shape parsed, anything else
 * refused with the field named; scoped idempotency keys bounded and distinct.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseTriggerMessage, scopedIdempotencyKey } from "../rabbitmq/index.js";

describe("trigger message parsing", () => {
  test("accepts the documented shape and refuses anything else with a message naming the field", () => {
    const ok = parseTriggerMessage('{"workflow_id":"etl.daily","params":{"a":1,"b":true},"idempotency_key":"k"}');
    assert.deepEqual(ok, {
      ok: true,
      message: { workflowId: "etl.daily", params: { a: 1, b: true }, idempotencyKey: "k" },
    });
    const bare = parseTriggerMessage(" etl.daily\n", { allowBareWorkflowId: true });
    assert.deepEqual(bare, { ok: true, message: { workflowId: "etl.daily" } });
    const cases: [string, RegExp][] = [
      ["etl.daily", /not valid JSON/],
      ["{}", /workflow_id: required/],
      ['{"workflow_id":"a b"}', /workflow_id:/],
      ['{"workflow_id":"a","params":[1]}', /params/],
      ['{"workflow_id":"a","idempotency_key":""}', /idempotency_key/],
      ['{"workflowId":"a"}', /workflowId: unknown key/],
      ["[]", /JSON object/],
    ];
    for (const [raw, re] of cases) {
      const r = parseTriggerMessage(raw);
      assert.equal(r.ok, false, raw);
      assert.match(r.ok ? "" : r.error, re, raw);
    }
    assert.equal(parseTriggerMessage("not an id!", { allowBareWorkflowId: true }).ok, false);
  });

  test("scoped idempotency keys stay within 512 characters and stay distinct", () => {
    assert.equal(scopedIdempotencyKey("amqp:q:", "m1"), "amqp:q:m1");
    const a = scopedIdempotencyKey("amqp:q:", "x".repeat(600));
    const b = scopedIdempotencyKey("amqp:q:", "x".repeat(601));
    assert.ok(a.length <= 512 && b.length <= 512);
    assert.notEqual(a, b);
  });
});

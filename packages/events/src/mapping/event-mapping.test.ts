import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeBody, EventMapping } from "./event-mapping.js";

const push = {
  headers: { "x-github-event": "push", "x-github-delivery": "d-1" },
  body: { ref: "refs/heads/main", after: "abc123", commits: [{ id: "c1" }, { id: "c2" }], size: 2, forced: false },
};

test("params come from the event; fixed params are kept; mapped ones win", () => {
  const m = EventMapping.compile({
    params: { env: "prod", sha: "fixed" },
    paramsMap: { sha: "body.after", n: "body.size", forced: "body.forced", ids: "join(',', body.commits[].id)" },
  });
  assert.deepEqual(m.map(push), {
    ok: true,
    params: { env: "prod", sha: "abc123", n: 2, forced: false, ids: "c1,c2" },
  });
});

test("a required param that finds nothing, or finds an object, is a refusal naming it", () => {
  const m = EventMapping.compile({ paramsMap: { who: "body.pusher.name", all: "body.commits" } });
  const r = m.map(push);
  assert.equal(r.ok, false);
  assert.match(r.ok ? "" : r.error, /params\.who \(body\.pusher\.name\): found nothing/);
  assert.match(r.ok ? "" : r.error, /params\.all \(body\.commits\): found a list/);
});

test("an optional param that finds nothing is omitted", () => {
  const m = EventMapping.compile({ paramsMap: { who: { from: "body.pusher.name", optional: true } } });
  assert.deepEqual(m.map(push), { ok: true, params: {} });
});

test("when filters events by JMESPath truthiness", () => {
  const m = EventMapping.compile({ when: "headers.\"x-github-event\" == 'push' && body.ref == 'refs/heads/main'" });
  assert.equal(m.matches(push), true);
  assert.equal(m.matches({ ...push, body: { ...push.body, ref: "refs/heads/dev" } }), false);
  assert.equal(m.matches("not an object"), false);
  assert.equal(EventMapping.compile({}).matches(push), true);
  assert.equal(EventMapping.compile({ when: "body.commits" }).matches({ body: { commits: [] } }), false);
});

test("the idempotency key comes from a string or number field; anything else is a refusal", () => {
  const m = EventMapping.compile({ idempotencyKey: 'headers."x-github-delivery"' });
  assert.deepEqual(m.map(push), { ok: true, params: {}, idempotencyKey: "d-1" });
  assert.deepEqual(EventMapping.compile({ idempotencyKey: "body.size" }).map(push), {
    ok: true,
    params: {},
    idempotencyKey: "2",
  });
  const bad = EventMapping.compile({ idempotencyKey: "body.commits" }).map(push);
  assert.match(
    bad.ok ? "" : bad.error,
    /idempotency_key \(body\.commits\): expected a non-empty string or a number, found a list/,
  );
});

test("an expression that does not parse is a start-up error naming every bad field", () => {
  assert.throws(
    () => EventMapping.compile({ paramsMap: { a: "body..x", b: "" }, when: "[" }, "listeners[1]"),
    (e: Error) =>
      /listeners\[1\]\.params_map\.a: "body\.\.x" is not a JMESPath expression/.test(e.message) &&
      /listeners\[1\]\.params_map\.b: empty expression/.test(e.message) &&
      /listeners\[1\]\.when: /.test(e.message),
  );
});

test("decodeBody gives JSON values, else the text", () => {
  assert.deepEqual(decodeBody(Buffer.from('{"a":1}')), { a: 1 });
  assert.equal(decodeBody(Buffer.from("plain text")), "plain text");
  assert.equal(decodeBody("42"), 42);
});

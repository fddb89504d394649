import { test } from "node:test";
import assert from "node:assert/strict";
import { UsageError } from "@cdktr/protocol";
import { MqttListener, type MqttListenerOptions } from "./mqtt-listener.js";

test("MqttListener refuses bad options at construction, naming the option and the fix", () => {
  const base = { clientId: "c1", topics: ["orders/#"], key: null };
  const refused = (extra: Partial<MqttListenerOptions>, pattern: RegExp): void => {
    assert.throws(
      () => new MqttListener({ ...base, ...extra }),
      (e: unknown) => e instanceof UsageError && e.code === "INVALID_ARGUMENT" && pattern.test(e.message),
      String(pattern),
    );
  };
  refused({ clientId: "" }, /clientId.*persistent session/);
  refused({ topics: [] }, /at least one topic filter/);
  refused({ topics: ["a/#/b"] }, /topic filter "a\/#\/b": `#` may only be the last level/);
  refused({ url: "amqp://127.0.0.1" }, /mqtt:\/\/ or mqtts:\/\//);
  refused({ url: "not a url" }, /is not a URL/);
  refused({ deadLetterTopic: "orders/dead" }, /matches the subscription "orders\/#": parked messages would come back/);
  refused({ deadLetterTopic: "dead/#" }, /wildcards/);
  refused({ receiveMaximum: 0 }, /receiveMaximum/);
  refused({ sessionExpirySeconds: 0 }, /sessionExpirySeconds.*end the session/);
  refused({ keepaliveSeconds: 0 }, /keepaliveSeconds/);
  refused({ mapping: { paramsMap: { a: "body.a" } } }, /`mapping` needs `workflow`/);
  assert.throws(
    () => new MqttListener({ ...base, workflow: "w", mapping: { paramsMap: { a: "body.[" } } }),
    /mapping\.params_map\.a: "body\.\[" is not a JMESPath expression/,
  );
  const ok = new MqttListener({ ...base, deadLetterTopic: "dead/orders", url: "mqtts://user:pw@broker:8883" });
  assert.equal(ok.stats.connections, 0);
});

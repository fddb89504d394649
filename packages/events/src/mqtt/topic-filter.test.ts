import { test } from "node:test";
import assert from "node:assert/strict";
import { topicFilterProblem, topicMatches, topicNameProblem } from "./topic-filter.js";

test("topic filters: `+` and a final `#` stand alone between slashes; $share/<group>/<filter> is a shared subscription", () => {
  for (const ok of ["a", "a/b", "sensors/+/alarm", "orders/#", "#", "+", "+/+", "/a", "a//b", "$share/g/orders/#"])
    assert.equal(topicFilterProblem(ok), null, ok);
  assert.match(topicFilterProblem("a/#/b") ?? "", /only be the last level/);
  assert.match(topicFilterProblem("a/b#") ?? "", /mixes a wildcard/);
  assert.match(topicFilterProblem("sensors/+x") ?? "", /mixes a wildcard/);
  assert.match(topicFilterProblem("") ?? "", /empty/);
  assert.match(topicFilterProblem("a\u0000b") ?? "", /NUL/);
  assert.match(topicFilterProblem("$share//a") ?? "", /group name/);
  assert.match(topicFilterProblem("$share/g/") ?? "", /needs a topic filter/);
  assert.match(topicFilterProblem("x".repeat(65_536)) ?? "", /65535 bytes/);
  assert.equal(topicNameProblem("dead/letters"), null);
  assert.match(topicNameProblem("dead/+") ?? "", /wildcards/);
});

test("topic matching follows MQTT: `+` one level, `#` the rest (and the parent), never a $ topic at the first level", () => {
  const cases: [string, string, boolean][] = [
    ["sensors/+/alarm", "sensors/s1/alarm", true],
    ["sensors/+/alarm", "sensors/s1/status", false],
    ["sensors/+/alarm", "sensors/a/b/alarm", false],
    ["orders/#", "orders", true],
    ["orders/#", "orders/eu/1", true],
    ["orders/#", "ordersx/1", false],
    ["#", "anything/at/all", true],
    ["#", "$SYS/broker", false],
    ["+/broker", "$SYS/broker", false],
    ["$SYS/#", "$SYS/broker", true],
    ["a/b", "a/b", true],
    ["a/b", "a/b/c", false],
    ["a/+", "a/", true],
    ["$share/g/orders/#", "orders/1", true],
    ["$share/g/orders/#", "dead/1", false],
  ];
  for (const [filter, topic, expected] of cases)
    assert.equal(topicMatches(filter, topic), expected, `${filter} ~ ${topic}`);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "@cdktr/protocol";
import { parseListenersConfig } from "./config.js";

function problems(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseListenersConfig(text, "l.yml", env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail("expected a ConfigError");
}

test("a valid file gets defaults, names and secrets from the environment", () => {
  const c = parseListenersConfig(
    `principal: {port: 6000}\nlisteners:\n  - type: webhook\n    secret_env: HOOK_SECRET\n  - type: rabbitmq\n    queue: q\n    url_env: AMQP\n  - type: postgres\n    name: db\n    channel: ch\n  - type: file_watcher\n    path: /tmp\n    workflow: wf\n`,
    "l.yml",
    { HOOK_SECRET: "s", AMQP: "amqp://u:p@h:5672" },
  );
  assert.deepEqual(c.principal, { host: "127.0.0.1", port: 6000 });
  assert.deepEqual(
    c.listeners.map((l) => l.name),
    ["webhook-0", "rabbitmq-1", "db", "file_watcher-3"],
  );
  const [hook, mq, db] = c.listeners;
  assert.equal(hook !== undefined && "secret" in hook ? hook.secret : null, "s");
  assert.equal(hook?.spec.type === "webhook" ? hook.spec.host : null, "127.0.0.1");
  assert.equal(hook?.spec.type === "webhook" ? hook.spec.port : null, 8080);
  assert.equal(mq !== undefined && "url" in mq ? mq.url : null, "amqp://u:p@h:5672");
  assert.equal(db?.spec.type === "postgres" ? db.spec.application_name : null, "cdktr-listener");
});

test("each problem names file, line, column and field", () => {
  const p = problems(
    `listeners:\n  - type: webhook\n    port: "80"\n    secrt: x\n  - type: rabbitmq\n  - type: kafka\n`,
  );
  assert.deepEqual(p, [
    "l.yml:3:11: listeners[0].port: expected number, received string",
    "l.yml:4:5: listeners[0].secrt: unknown field (did you mean `secret`?)",
    "l.yml:5:5: listeners[1].queue: required",
    'l.yml:6:11: listeners[2].type: expected `type` to be one of "webhook", "file_watcher", "rabbitmq", "postgres"',
  ]);
});

test("secrets from unset variables, conflicting fields, duplicate names and YAML syntax errors are reported", () => {
  assert.deepEqual(problems(`listeners:\n  - type: webhook\n    secret_env: NOPE\n`), [
    "l.yml:3:17: listeners[0].secret_env: environment variable NOPE is not set",
  ]);
  assert.deepEqual(problems(`listeners:\n  - type: webhook\n    secret: a\n    secret_env: B\n`, { B: "b" }), [
    "l.yml:4:17: listeners[0].secret_env: give either secret or secret_env, not both",
  ]);
  assert.deepEqual(problems(`listeners:\n  - {type: webhook, name: x}\n  - {type: webhook, name: x, port: 1}\n`), [
    'l.yml:3:27: listeners[1].name: duplicate listener name "x"',
  ]);
  assert.match(problems(`listeners:\n  - type: webhook\n   port: 1\n`)[0] ?? "", /^l\.yml:3:\d+: /);
  assert.deepEqual(problems(`listeners: []\n`), ["l.yml:1:12: listeners: list at least one listener"]);
});

test("deploy/listeners.yml is a valid config", async () => {
  const { readFileSync } = await import("node:fs");
  const file = new URL("../../../deploy/listeners.yml", import.meta.url);
  const c = parseListenersConfig(readFileSync(file, "utf8"), file.pathname, {});
  assert.deepEqual(
    c.listeners.map((l) => [l.spec.type, l.spec.type === "webhook" ? `${l.spec.host}:${l.spec.port}` : ""]),
    [["webhook", "0.0.0.0:8080"]],
  );
});

test("the state directory: CDKTR_LISTENERS_STATE_DIR (relative to the working directory), else ~/.cdktr/listeners", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { loadConfig } = await import("./config.js");
  const dir = mkdtempSync(join(tmpdir(), "cdktr-listeners-config-"));
  try {
    writeFileSync(join(dir, "listeners.yml"), "listeners:\n  - type: webhook\n");
    assert.equal(loadConfig({ HOME: "/home/u" }, dir).stateDir, "/home/u/.cdktr/listeners");
    assert.equal(loadConfig({ HOME: "/home/u", CDKTR_LISTENERS_STATE_DIR: "state" }, dir).stateDir, join(dir, "state"));
    assert.equal(
      parseListenersConfig("listeners:\n  - type: webhook\n", "l.yml", { HOME: "/h" }).stateDir,
      "/h/.cdktr/listeners",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("rabbitmq and postgres take a `workflows` allow-list like the webhook; a bad one names file, line and field", () => {
  const c = parseListenersConfig(
    `listeners:\n  - type: rabbitmq\n    queue: q\n    workflows: [etl.daily, deploy]\n  - type: postgres\n    channel: ch\n    workflows:\n      - etl.daily\n`,
    "l.yml",
    {},
  );
  const [mq, db] = c.listeners;
  assert.deepEqual(mq?.spec.type === "rabbitmq" ? mq.spec.workflows : null, ["etl.daily", "deploy"]);
  assert.deepEqual(db?.spec.type === "postgres" ? db.spec.workflows : null, ["etl.daily"]);
  assert.deepEqual(
    problems(
      `listeners:\n  - type: rabbitmq\n    queue: q\n    workflows: [ok, "not ok"]\n  - type: postgres\n    channel: ch\n    workflows: []\n  - type: webhook\n    workflows: etl\n`,
    ),
    [
      "l.yml:4:21: listeners[0].workflows[1]: workflow ids use letters, digits, '_', '-' and '.'",
      "l.yml:7:16: listeners[1].workflows: list at least one workflow (or omit `workflows` to allow any)",
      "l.yml:9:16: listeners[2].workflows: expected array, received string",
    ],
  );
});

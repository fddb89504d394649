import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@cdktr/protocol";
import { loadConfig, parseListenersConfig } from "./config.js";

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
  assert.deepEqual(c.principal, { host: "127.0.0.1", port: 6000, endpoints: ["tcp://127.0.0.1:6000"] });
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
    'l.yml:6:11: listeners[2].type: expected `type` to be one of "webhook", "file_watcher", "rabbitmq", "postgres", "mqtt"',
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

test("CDKTR_PRINCIPAL_ENDPOINTS: several principals, unless the file names one", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "cdktr-listeners-config-"));
  try {
    const env = { HOME: "/home/u", CDKTR_PRINCIPAL_ENDPOINTS: "p1:5561,p2:5561" };
    writeFileSync(join(dir, "listeners.yml"), "listeners:\n  - type: webhook\n");
    assert.deepEqual(loadConfig(env, dir).principal.endpoints, ["tcp://p1:5561", "tcp://p2:5561"]);
    writeFileSync(join(dir, "listeners.yml"), "principal: {host: box}\nlisteners:\n  - type: webhook\n");
    assert.deepEqual(loadConfig(env, dir).principal.endpoints, ["tcp://box:5561"]);
    assert.throws(() => loadConfig({ ...env, CDKTR_PRINCIPAL_ENDPOINTS: "p1" }, dir), /CDKTR_PRINCIPAL_ENDPOINTS/);
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

test("secret_file: read when it exists, created with a random secret (0600) when it does not, never with secret or secret_env", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cdktr-listeners-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "listeners.yml");
  writeFileSync(
    config,
    "listeners:\n  - {type: webhook, name: given, secret_file: given.secret}\n  - {type: webhook, name: made, port: 1, secret_file: state/made.secret}\n",
  );
  writeFileSync(join(dir, "given.secret"), "  s3cret \n");
  const env = { CDKTR_LISTENERS_CONFIG: config, HOME: dir };
  const first = loadConfig(env, dir);
  const [given, made] = first.listeners;
  assert.ok(given !== undefined && "secret" in given && made !== undefined && "secret" in made);
  assert.equal(given.secret, "s3cret", "the content, trimmed");
  assert.deepEqual(given.secretFile, { path: join(dir, "given.secret"), created: false });
  assert.deepEqual(made.secretFile, { path: join(dir, "state", "made.secret"), created: true });
  assert.match(made.secret ?? "", /^[A-Za-z0-9_-]{43}$/, "32 random bytes, base64url");
  assert.equal(statSync(join(dir, "state", "made.secret")).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, "state")).mode & 0o777, 0o700);
  assert.equal(readFileSync(join(dir, "state", "made.secret"), "utf8").trim(), made.secret);
  // The next start reads the same secret.
  const second = loadConfig(env, dir).listeners[1];
  assert.ok(second !== undefined && "secret" in second);
  assert.deepEqual([second.secret, second.secretFile?.created], [made.secret, false]);

  assert.deepEqual(problems(`listeners:\n  - type: webhook\n    secret: a\n    secret_file: /run/secrets/hook\n`), [
    "l.yml:4:18: listeners[0].secret_file: give one of secret, secret_env and secret_file",
  ]);
  assert.deepEqual(problems(`listeners:\n  - type: webhook\n    secret_fil: x\n`), [
    "l.yml:3:5: listeners[0].secret_fil: unknown field (did you mean `secret_file`?)",
  ]);
  writeFileSync(join(dir, "given.secret"), "\n");
  assert.throws(
    () => loadConfig(env, dir),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.problems[0] ===
        `${config}: listeners[0].secret_file: ${join(dir, "given.secret")}: the secret file is empty (delete it to get a generated secret)`,
  );
  // A path it cannot create (a file where its directory should be): a config error naming the file, not a crash.
  writeFileSync(config, "listeners:\n  - {type: webhook, secret_file: given.secret/hook.secret}\n");
  writeFileSync(join(dir, "given.secret"), "s3cret\n");
  assert.throws(
    () => loadConfig(env, dir),
    (e: unknown) =>
      e instanceof ConfigError &&
      /listeners\[0\]\.secret_file: .*hook\.secret: cannot create the secret file's directory/.test(
        e.problems[0] ?? "",
      ),
  );
});

test("mqtt: a client id and topic filters, URL and password from the environment, defaults; bad filters and a looping dead-letter topic name their place", () => {
  const c = parseListenersConfig(
    [
      "listeners:",
      "  - type: mqtt",
      "    url_env: MQTT_URL",
      "    client_id: cdktr-orders",
      '    topics: ["sensors/+/alarm", "orders/#"]',
      "    username: cdktr",
      "    password_env: MQTT_PASSWORD",
      "    dead_letter_topic: cdktr/dead",
      "    workflow: etl.daily",
      "    params_map: {date: body.day, site: user_properties.site}",
      "    idempotency_key: body.id",
      "  - type: mqtt",
      "    client_id: plain",
      "    topics: [triggers]",
      "",
    ].join("\n"),
    "l.yml",
    { MQTT_URL: "mqtts://broker:8883", MQTT_PASSWORD: "pw" },
  );
  const [mapped, plain] = c.listeners;
  assert.ok(mapped !== undefined && mapped.spec.type === "mqtt" && "password" in mapped);
  assert.deepEqual([mapped.name, mapped.url, mapped.password], ["mqtt-0", "mqtts://broker:8883", "pw"]);
  assert.deepEqual(mapped.spec.topics, ["sensors/+/alarm", "orders/#"]);
  assert.deepEqual(mapped.spec.params_map, { date: "body.day", site: "user_properties.site" });
  assert.ok(plain !== undefined && plain.spec.type === "mqtt" && "password" in plain);
  assert.deepEqual(
    [plain.url, plain.password, plain.spec.receive_maximum, plain.spec.session_expiry_s, plain.spec.keepalive_s],
    ["mqtt://127.0.0.1:1883", undefined, 10, 604800, 60],
  );
  assert.deepEqual(
    [plain.spec.trigger_timeout_ms, plain.spec.require_idempotency_key, plain.spec.workflow],
    [5000, false, undefined],
  );

  assert.deepEqual(
    problems(
      [
        "listeners:",
        "  - type: mqtt",
        "    url: amqp://broker",
        "    client_id: c",
        '    topics: [ok/#, "a/#/b"]',
        "    dead_letter_topic: ok/dead",
        "    password: p",
        "    password_env: MQTT_PASSWORD",
        "  - type: mqtt",
        "    client_id: d",
        "    topics: [in]",
        "    dead_letter_topic: dead/+",
        "    url_env: UNSET_URL",
        "  - type: mqtt",
        "    topics: []",
        "",
      ].join("\n"),
      { MQTT_PASSWORD: "pw" },
    ),
    [
      "l.yml:14:5: listeners[2].client_id: required",
      "l.yml:15:13: listeners[2].topics: list at least one topic filter",
    ],
  );
  assert.deepEqual(
    problems(
      [
        "listeners:",
        "  - type: mqtt",
        "    url: amqp://broker",
        "    client_id: c",
        '    topics: [ok/#, "a/#/b"]',
        "    dead_letter_topic: ok/dead",
        "    password: p",
        "    password_env: MQTT_PASSWORD",
        "  - type: mqtt",
        "    client_id: d",
        "    topics: [in]",
        "    dead_letter_topic: dead/+",
        "    url_env: UNSET_URL",
        "",
      ].join("\n"),
      { MQTT_PASSWORD: "pw" },
    ),
    [
      "l.yml:3:10: listeners[0].url: the broker URL must start with mqtt:// or mqtts:// (TLS)",
      "l.yml:5:20: listeners[0].topics[1]: `#` may only be the last level (`orders/#`)",
      'l.yml:6:24: listeners[0].dead_letter_topic: matches the subscription "ok/#": parked messages would come back; pick a topic outside topics',
      "l.yml:8:19: listeners[0].password_env: give either password or password_env, not both",
      "l.yml:13:14: listeners[1].url_env: environment variable UNSET_URL is not set",
      "l.yml:12:24: listeners[1].dead_letter_topic: a topic to publish to cannot contain the wildcards `+` or `#`",
    ],
  );
});

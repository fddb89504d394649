import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@cdktr/protocol";
import { loadConfig, parseListenersConfig } from "./config.js";
import { mappingOf } from "./listener-specs.js";

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
    'l.yml:6:11: listeners[2].type: expected `type` to be one of "webhook", "file_watcher", "rabbitmq", "postgres", "redis_streams", "nats", "run_status", "mqtt"',
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

test("mapping fields of a queue-like listener need a fixed workflow, and bad expressions are load errors", () => {
  const text = [
    "listeners:",
    "  - type: rabbitmq",
    "    queue: q",
    "    params_map: {date: body.day}",
    "  - type: rabbitmq",
    "    queue: q2",
    "    workflow: etl",
    "    params_map: {date: 'body..day'}",
    "    when: body.kind == 'order'",
    "",
  ].join("\n");
  assert.throws(
    () => parseListenersConfig(text, "l.yml", {}),
    (e: Error & { problems?: string[] }) => {
      const all = (e.problems ?? [e.message]).join("\n");
      return (
        /l\.yml:4:17: listeners\[0\]\.params_map: params_map needs workflow: set workflow/.test(all) &&
        /listeners\[1\]\.params_map\.date: "body\.\.day" is not a JMESPath expression/.test(all)
      );
    },
  );
});

test("webhook routes: flavours, secrets from secret_env or secret_file, hmac defaults, mapping fields", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cdktr-listeners-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "listeners.yml");
  writeFileSync(
    config,
    `listeners:
  - type: webhook
    secret_env: HOOK_SECRET
    routes:
      - path: /hooks/github/deploy
        flavour: github
        workflow: deploy
        secret_env: GH_SECRET
        when: headers."x-github-event" == 'push' && body.ref == 'refs/heads/main'
        params_map: {sha: body.after}
      - path: /hooks/gitlab/build
        flavour: gitlab
        workflow: build
        secret_file: state/gitlab.secret
      - path: /hooks/shop
        flavour: hmac
        workflow: orders
        secret_env: SHOP_SECRET
        hmac: {header: X-Shop-Signature}
        idempotency_key: body.order_id
        require_idempotency_key: true
      - path: /hooks/own
        flavour: cdktr
        workflow: deploy
`,
  );
  const env = { CDKTR_LISTENERS_CONFIG: config, HOME: dir, HOOK_SECRET: "h", GH_SECRET: "gh", SHOP_SECRET: "shop" };
  const [hook] = loadConfig(env, dir).listeners;
  assert.ok(hook !== undefined && hook.spec.type === "webhook" && "routeSecrets" in hook);
  assert.equal(hook.spec.trigger_path, true, "/trigger stays served by default");
  assert.deepEqual(
    hook.spec.routes?.map((r) => [r.path, r.flavour, r.workflow, r.require_idempotency_key]),
    [
      ["/hooks/github/deploy", "github", "deploy", false],
      ["/hooks/gitlab/build", "gitlab", "build", false],
      ["/hooks/shop", "hmac", "orders", true],
      ["/hooks/own", "cdktr", "deploy", false],
    ],
  );
  assert.deepEqual(hook.spec.routes?.[2]?.hmac, { header: "X-Shop-Signature", algorithm: "sha256", encoding: "hex" });
  const gitlab = join(dir, "state", "gitlab.secret");
  assert.deepEqual(hook.routeSecrets, [
    { secret: "gh" },
    { secret: readFileSync(gitlab, "utf8").trim(), secretFile: { path: gitlab, created: true } },
    { secret: "shop" },
    { secret: undefined },
  ]);
  assert.equal(statSync(gitlab).mode & 0o777, 0o600);
});

test("webhook routes: each problem names file, line, column and field", () => {
  const route = (fields: string): string => `      - path: /hooks/a\n        workflow: wf\n${fields}`;
  const file = (routes: string, extra = ""): string => `listeners:\n  - type: webhook\n${extra}    routes:\n${routes}`;
  assert.deepEqual(problems(file(route("        flavour: github\n"))), [
    "l.yml:6:18: listeners[0].routes[0].flavour: a github route needs the secret its sender signs with: set listeners[0].routes[0].secret_env or listeners[0].routes[0].secret_file",
  ]);
  assert.deepEqual(
    problems(file(route("        flavour: gitlab\n        secret_env: GL\n        secret_file: gl.secret\n")), {
      GL: "x",
    }),
    ["l.yml:8:22: listeners[0].routes[0].secret_file: give one of secret_env and secret_file"],
  );
  assert.deepEqual(problems(file(route("        flavour: gitlab\n        secret_env: NOPE\n"))), [
    "l.yml:7:21: listeners[0].routes[0].secret_env: environment variable NOPE is not set",
  ]);
  assert.deepEqual(problems(file(route("        flavour: hmac\n        secret_env: S\n")), { S: "s" }), [
    "l.yml:6:18: listeners[0].routes[0].flavour: a hmac route needs `hmac: {header, algorithm, prefix, encoding}`",
  ]);
  assert.deepEqual(
    problems(file(route("        flavour: github\n        secret_env: S\n        hmac: {header: X-Sig}\n")), {
      S: "s",
    }),
    ["l.yml:8:15: listeners[0].routes[0].hmac: only for flavour hmac (the github signature is fixed)"],
  );
  assert.deepEqual(
    problems(
      file(
        `${route("        flavour: hmac\n        secret_env: S\n        hmac: {header: X-Sig, algorithm: md5}\n")}${route("        flavour: gitlb\n")}`,
      ),
      { S: "s" },
    ),
    [
      "l.yml:8:42: listeners[0].routes[0].hmac.algorithm: expected sha256, sha1 or sha512",
      "l.yml:11:18: listeners[0].routes[1].flavour: expected one of github, gitlab, hmac, cdktr",
    ],
  );
  assert.deepEqual(
    problems(
      file(
        "      - {path: /a/, workflow: wf, flavour: cdktr}\n      - {path: /trigger/x, workflow: wf, flavour: cdktr}\n",
      ),
    ),
    [
      "l.yml:4:16: listeners[0].routes[0].path: a route path is `/` then segments of letters, digits, '-', '_', '.' and '~' separated by `/`, without a trailing `/`, e.g. /hooks/github/deploy",
      "l.yml:5:16: listeners[0].routes[1].path: /healthz and /trigger/... are the listener's own paths: choose another route path",
    ],
  );
  assert.deepEqual(
    problems(
      file(
        `${route("        flavour: cdktr\n        when: body.[\n")}${route("        flavour: cdktr\n")}      - path: /hooks/b\n        workflow: other\n        flavour: cdktr\n`,
        "    workflows: [wf]\n",
      ),
    ),
    [
      'l.yml:5:9: invalid event mapping: listeners[0].routes[0].when: "body.[" is not a JMESPath expression: Syntax error: invalid token (EOF): ""',
      "l.yml:9:15: listeners[0].routes[1].path: /hooks/a is already the path of another route",
      "l.yml:13:19: listeners[0].routes[2].workflow: other is not in listeners[0].workflows: add it there",
    ],
  );
  assert.deepEqual(problems(`listeners:\n  - type: webhook\n    trigger_path: false\n`), [
    "l.yml:3:19: listeners[0].trigger_path: with trigger_path false and no routes the listener serves nothing: add routes",
  ]);
  // A route's secret is never written in the file.
  assert.deepEqual(problems(file(route("        flavour: github\n        secret: literal\n"))), [
    "l.yml:7:9: listeners[0].routes[0].secret: unknown field",
  ]);
});

test("redis_streams: defaults, the URL from url_env, a mapping into one workflow; each bad field named with file, line and column", () => {
  const c = parseListenersConfig(
    `listeners:\n  - type: redis_streams\n    stream: orders\n    url_env: REDIS_URL\n  - type: redis_streams\n    name: mapped\n    stream: events\n    group: g\n    consumer: box-1\n    start_id: "0"\n    dead_letter_stream: events.dead\n    workflows: [ingest]\n    workflow: ingest\n    params_map: {day: fields.day}\n    when: "fields.kind == 'order'"\n    idempotency_key: fields.order_id\n`,
    "l.yml",
    { REDIS_URL: "redis://u:p@cache:6379/2" },
  );
  const [plain, mapped] = c.listeners;
  assert.ok(plain?.spec.type === "redis_streams" && "url" in plain);
  assert.equal(plain.url, "redis://u:p@cache:6379/2");
  assert.equal(plain.name, "redis_streams-0");
  const { type: _t, stream, ...defaults } = plain.spec;
  assert.equal(stream, "orders");
  assert.deepEqual(defaults, {
    url_env: "REDIS_URL",
    group: "cdktr",
    start_id: "$",
    field: "message",
    count: 10,
    block_ms: 5000,
    claim_idle_ms: 60_000,
    max_deliveries: 10,
    trigger_timeout_ms: 5000,
  });
  assert.ok(mapped?.spec.type === "redis_streams" && "url" in mapped);
  assert.equal(mapped.url, "redis://127.0.0.1:6379", "the default URL");
  assert.deepEqual(
    [
      mapped.spec.group,
      mapped.spec.consumer,
      mapped.spec.start_id,
      mapped.spec.dead_letter_stream,
      mapped.spec.workflow,
    ],
    ["g", "box-1", "0", "events.dead", "ingest"],
  );
  assert.deepEqual(mappingOf(mapped.spec), {
    paramsMap: { day: "fields.day" },
    when: "fields.kind == 'order'",
    idempotencyKey: "fields.order_id",
  });

  assert.deepEqual(
    problems(
      `listeners:\n  - type: redis_streams\n    stream: s\n    url: http://cache:6379\n    start_id: latest\n    count: 5000\n  - type: redis_streams\n    stream: s2\n    url: redis://a\n    url_env: R\n    claim_idle_ms: 1000\n    dead_letter_stream: s2\n  - type: redis_streams\n    stream: s3\n    params_map: {day: body.day}\n    url_env: UNSET\n`,
      { R: "redis://b" },
    ),
    [
      "l.yml:4:10: listeners[0].url: expected a redis:// or rediss:// URL",
      'l.yml:5:15: listeners[0].start_id: expected "$", "0" or an entry id like 1700000000000-0',
      "l.yml:6:12: listeners[0].count: Too big: expected number to be <=1000",
    ],
    "schema problems first",
  );
  assert.deepEqual(
    problems(
      `listeners:\n  - type: redis_streams\n    stream: s2\n    url: redis://a\n    url_env: R\n    claim_idle_ms: 1000\n    dead_letter_stream: s2\n  - type: redis_streams\n    stream: s3\n    params_map: {day: body.day}\n    url_env: UNSET\n`,
      { R: "redis://b" },
    ),
    [
      "l.yml:6:20: listeners[0].claim_idle_ms: must exceed trigger_timeout_ms (5000): an entry being triggered would look idle to the other consumers",
      "l.yml:7:25: listeners[0].dead_letter_stream: must differ from stream (parked entries would be read again): name another stream",
      "l.yml:5:14: listeners[0].url_env: give either url or url_env, not both",
      "l.yml:10:17: listeners[1].params_map: params_map needs workflow: set workflow (the one workflow every message triggers), or remove params_map (without workflow each message is a trigger message naming its own workflow and params)",
      "l.yml:11:14: listeners[1].url_env: environment variable UNSET is not set",
    ],
  );
});

test("nats: defaults, credentials from the environment, and every problem named with file, line and field", () => {
  const c = parseListenersConfig(
    `listeners:\n  - type: nats\n    stream: ORDERS\n    durable: cdktr\n    user: app\n    pass_env: NATS_PASS\n  - type: nats\n    servers: [nats://a:4222, nats://b:4222]\n    stream: JOBS\n    durable: cdktr\n    token_env: NATS_TOKEN\n    create_stream: true\n    subjects: [jobs.>]\n    filter_subject: jobs.new\n    dead_letter_subject: dead.jobs\n    workflow: etl\n    params_map: {date: body.day}\n`,
    "l.yml",
    { NATS_PASS: "secret", NATS_TOKEN: "t0ken" },
  );
  const [orders, jobs] = c.listeners;
  assert.ok(orders !== undefined && "natsAuth" in orders && jobs !== undefined && "natsAuth" in jobs);
  assert.deepEqual(orders.natsAuth, { user: "app", pass: "secret" });
  assert.deepEqual(jobs.natsAuth, { token: "t0ken" });
  assert.equal(orders.name, "nats-0");
  assert.deepEqual(
    [orders.spec.ack_wait_ms, orders.spec.max_in_flight, orders.spec.trigger_timeout_ms, orders.spec.create_stream],
    [30_000, 10, 5000, false],
  );
  assert.deepEqual(jobs.spec.servers, ["nats://a:4222", "nats://b:4222"]);

  // The schema first: names and subjects as NATS reads them.
  assert.deepEqual(
    problems(
      `listeners:\n  - type: nats\n    stream: a.b\n    durable: "x y"\n    filter_subject: jobs..new\n    dead_letter_subject: dead.*\n`,
    ),
    [
      "l.yml:3:13: listeners[0].stream: a name cannot contain whitespace, `.`, `*`, `>`, `/` or `\\`",
      "l.yml:4:14: listeners[0].durable: a name cannot contain whitespace, `.`, `*`, `>`, `/` or `\\`",
      "l.yml:5:21: listeners[0].filter_subject: empty token (a leading, trailing or double `.`)",
      "l.yml:6:26: listeners[0].dead_letter_subject: no wildcards (`*`, `>`) here: name one subject",
    ],
  );
  // Then the fields that contradict each other, and secrets from unset variables.
  assert.deepEqual(
    problems(
      `listeners:\n  - type: nats\n    stream: S\n    durable: d\n    token: t\n    user: u\n    create_stream: true\n  - type: nats\n    stream: S\n    durable: d2\n    pass_env: UNSET\n    subjects: [a.>]\n    ack_wait_ms: 1000\n    trigger_timeout_ms: 2000\n  - type: nats\n    stream: S\n    durable: d3\n    pass: p\n    filter_subject: [jobs.*, dead.>]\n    dead_letter_subject: dead.jobs\n    params_map: {date: body.day}\n`,
    ),
    [
      "l.yml:5:12: listeners[0].token: give either a token or user/pass, not both",
      "l.yml:7:20: listeners[0].create_stream: create_stream needs subjects: the subjects of the stream to create",
      "l.yml:11:15: listeners[1].pass_env: environment variable UNSET is not set",
      "l.yml:12:15: listeners[1].subjects: subjects is used only with create_stream: true (an existing stream keeps its own subjects)",
      "l.yml:13:18: listeners[1].ack_wait_ms: must be longer than trigger_timeout_ms (2000): a message would be delivered again while its trigger is in flight",
      "l.yml:21:17: listeners[2].params_map: params_map needs workflow: set workflow (the one workflow every message triggers), or remove params_map (without workflow each message is a trigger message naming its own workflow and params)",
      "l.yml:18:11: listeners[2].pass: a password needs user (or user_env)",
      "l.yml:20:26: listeners[2].dead_letter_subject: dead.jobs would be consumed again by this listener (it matches dead.>): pick a subject outside the consumed ones",
    ],
  );
});

test("mapping fields without `workflow` are refused, not silently ignored (the absent field is not in the parsed entry)", () => {
  assert.deepEqual(problems(`listeners:\n  - type: rabbitmq\n    queue: q\n    idempotency_key: body.id\n`), [
    "l.yml:4:22: listeners[0].idempotency_key: idempotency_key needs workflow: set workflow (the one workflow every message triggers), or remove idempotency_key (without workflow each message is a trigger message naming its own workflow and params)",
  ]);
  assert.deepEqual(problems(`listeners:\n  - type: nats\n    stream: S\n    durable: d\n    params: {n: "1"}\n`), [
    "l.yml:5:13: listeners[0].params: params needs workflow: set workflow (the one workflow every message triggers), or remove params (without workflow each message is a trigger message naming its own workflow and params)",
  ]);
});

test("run_status: rules with default status, and cycles or a rule after itself refused with file, line and field", () => {
  const ok = parseListenersConfig(
    "listeners:\n  - type: run_status\n    rules:\n      - {after: extract, workflow: load}\n      - {after: load, status: [FAILED, CRASHED], workflow: page, params: {team: data}}\n",
    "l.yml",
    {},
  );
  const spec = ok.listeners[0]?.spec;
  assert.equal(spec?.type, "run_status");
  assert.deepEqual(spec?.type === "run_status" ? spec.rules : null, [
    { after: "extract", status: ["COMPLETED"], workflow: "load" },
    { after: "load", status: ["FAILED", "CRASHED"], workflow: "page", params: { team: "data" } },
  ]);
  assert.throws(
    () =>
      parseListenersConfig(
        "listeners:\n  - type: run_status\n    key_file: k.json\n    key_name: x\n    rules:\n      - {after: a, workflow: b}\n      - {after: b, workflow: a}\n      - {after: c, workflow: c}\n      - {after: d, status: RUNNING, workflow: e}\n",
        "l.yml",
        {},
      ),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.problems, [
        "l.yml:9:28: listeners[0].rules[3].status: expected one or more of COMPLETED, FAILED, CRASHED, CANCELLED, SKIPPED (the states a run ends in)",
      ]);
      return true;
    },
  );
  assert.throws(
    () =>
      parseListenersConfig(
        "listeners:\n  - type: run_status\n    key_file: k.json\n    key_name: x\n    rules:\n      - {after: a, workflow: b}\n      - {after: b, workflow: a}\n      - {after: c, workflow: c}\n",
        "l.yml",
        {},
      ),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.problems, [
        "l.yml:3:15: listeners[0].key_file: give either key_file or key_name, not both",
        "l.yml:8:30: listeners[0].rules[2].workflow: a rule cannot start c after its own runs (a cycle)",
        "l.yml:6:7: listeners[0].rules: the rules chain in a cycle (a -> b -> a): a run would start the next one forever; remove one of them",
      ]);
      return true;
    },
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

test("file_watcher: params_map, when and idempotency_key next to its one params; bad expressions name their place", () => {
  const c = parseListenersConfig(
    [
      "listeners:",
      "  - type: file_watcher",
      "    path: /data/in",
      "    workflow: etl.daily",
      "    params: {region: eu}",
      "    params_map: {date: \"split(path, '_')[0]\", kind: {from: 'events[0].event', optional: true}}",
      "    when: \"ends_with(path, '.csv')\"",
      "    idempotency_key: path",
      "  - type: file_watcher",
      "    path: /data/plain",
      "    workflow: etl.daily",
      "",
    ].join("\n"),
    "l.yml",
    {},
  );
  const [mapped, plain] = c.listeners;
  assert.ok(mapped !== undefined && mapped.spec.type === "file_watcher");
  assert.deepEqual(mappingOf(mapped.spec), {
    params: { region: "eu" },
    paramsMap: { date: "split(path, '_')[0]", kind: { from: "events[0].event", optional: true } },
    when: "ends_with(path, '.csv')",
    idempotencyKey: "path",
  });
  assert.equal(mapped.spec.paths_param, "paths");
  assert.ok(plain !== undefined && plain.spec.type === "file_watcher");
  assert.deepEqual(mappingOf(plain.spec), {});

  assert.deepEqual(
    problems(
      [
        "listeners:",
        "  - type: file_watcher",
        "    path: /data/in",
        "    workflow: etl.daily",
        "    when: \"ends_with(path, '.csv'\"",
        "    params_map: {date: path, n: 'length(paths'}",
        "",
      ].join("\n"),
    ),
    [
      `l.yml:2:5: invalid event mapping: listeners[0].params_map.n: "length(paths" is not a JMESPath expression: Syntax error: invalid token (EOF): ""; listeners[0].when: "ends_with(path, '.csv'" is not a JMESPath expression: Syntax error: invalid token (EOF): ""`,
    ],
  );
  assert.deepEqual(
    problems(
      ["listeners:", "  - type: file_watcher", "    path: /data/in", "    workflow: w", "    when: ''", ""].join("\n"),
    ),
    ["l.yml:5:11: listeners[0].when: Too small: expected string to have >=1 characters"],
  );
});

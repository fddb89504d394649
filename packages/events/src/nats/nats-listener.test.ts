/**
 * What the NATS listener decides without a server: its options, NATS subject syntax and matching,
 * and a stop while NATS cannot be reached. (Against a real NATS server and principal:
 * e2e/src/listeners/nats.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { NatsListener, natsNameProblem, natsSubjectMatches, natsSubjectProblem } from "./index.js";

const base = { stream: "ORDERS", durable: "cdktr", key: null, principal: { host: "127.0.0.1", port: 1 } };

test("subjects match as NATS filters do: `*` one token, a final `>` one or more", () => {
  const cases: [string, string, boolean][] = [
    ["orders.new", "orders.new", true],
    ["orders.*", "orders.new", true],
    ["orders.*", "orders.eu.new", false],
    ["orders.>", "orders.eu.new", true],
    ["orders.>", "orders", false],
    ["*.new", "orders.new", true],
    [">", "anything.at.all", true],
    ["orders.new", "orders.newer", false],
    ["orders.new.x", "orders.new", false],
  ];
  for (const [filter, subject, expected] of cases)
    assert.equal(natsSubjectMatches(filter, subject), expected, `${filter} ~ ${subject}`);
});

test("subject and name syntax: each problem says what is wrong", () => {
  assert.equal(natsSubjectProblem("orders.*.>", true), null);
  assert.equal(natsSubjectProblem("orders..new", true), "empty token (a leading, trailing or double `.`)");
  assert.equal(natsSubjectProblem(".orders", true), "empty token (a leading, trailing or double `.`)");
  assert.equal(natsSubjectProblem("orders.>.new", true), "`>` must be the last token");
  assert.equal(natsSubjectProblem("orders.n*", true), "a wildcard (`*`, `>`) must be a whole token");
  assert.equal(natsSubjectProblem("orders.*", false), "no wildcards (`*`, `>`) here: name one subject");
  assert.equal(natsSubjectProblem("orders new", true), "a subject cannot contain whitespace");
  assert.equal(natsNameProblem("ORDERS_2"), null);
  assert.match(natsNameProblem("orders.eu") ?? "", /cannot contain/);
  assert.match(natsNameProblem("x".repeat(256)) ?? "", /longer than 255/);
});

test("options that cannot work are refused at construction, naming the option and the fix", () => {
  const refused = (extra: Record<string, unknown>, pattern: RegExp): void => {
    assert.throws(
      () => new NatsListener({ ...base, ...extra }),
      (e: unknown) => (e as { code?: unknown }).code === "INVALID_ARGUMENT" && pattern.test((e as Error).message),
      JSON.stringify(extra),
    );
  };
  refused({ stream: "a.b" }, /`stream` "a\.b": a name cannot contain/);
  refused({ durable: "" }, /`durable` "": empty name/);
  refused({ servers: [] }, /`servers` must list at least one/);
  refused({ token: "t", user: "u" }, /either `token` or `user`\/`pass`/);
  refused({ pass: "p" }, /`pass` needs `user`/);
  refused({ createStream: true }, /`createStream` needs `subjects`/);
  refused({ subjects: ["a.>"] }, /`subjects` is used only with `createStream: true`/);
  refused({ filterSubject: "a..b" }, /`filterSubject` "a\.\.b": empty token/);
  refused({ deadLetterSubject: "dead.*" }, /`deadLetterSubject` "dead\.\*": no wildcards/);
  refused(
    { filterSubject: ["jobs.*", "dead.>"], deadLetterSubject: "dead.jobs" },
    /dead\.jobs would be consumed again by this listener \(it matches dead\.>\)/,
  );
  refused(
    { createStream: true, subjects: ["jobs.>"], deadLetterSubject: "jobs.dead" },
    /jobs\.dead would be consumed again/,
  );
  refused({ ackWaitMs: 5000 }, /`ackWaitMs` \(5000\) must be an integer longer than `triggerTimeoutMs` \(5000\)/);
  refused({ maxInFlight: 0 }, /`maxInFlight` \(0\) must be an integer from 1 to 10000/);
  refused({ mapping: { paramsMap: { d: "body.d" } } }, /`mapping` needs `workflow`/);
  refused(
    { workflow: "etl", mapping: { paramsMap: { d: "body.(" } } },
    /mapping\.params_map\.d: "body\.\(" is not a JMESPath expression/,
  );
  // A dead-letter subject outside the filter is fine, even inside the stream's subjects.
  const ok = new NatsListener({
    ...base,
    createStream: true,
    subjects: ["jobs.>"],
    filterSubject: "jobs.new",
    deadLetterSubject: "jobs.dead",
  });
  assert.equal(ok.stats.connections, 0);
});

test("NATS unreachable: the listener keeps retrying with backoff and stops at once", async (t) => {
  // A port that accepts and closes at once: every connection attempt fails.
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const l = new NatsListener({ ...base, servers: `nats://127.0.0.1:${port}`, backoff: { initialMs: 50, maxMs: 100 } });
  let attempts = 0;
  server.on("connection", () => {
    attempts += 1;
  });
  await l.start();
  const deadline = Date.now() + 10_000;
  while (attempts < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(attempts >= 3, `retried (${attempts} attempts)`);
  const t0 = Date.now();
  await l.stop();
  assert.ok(Date.now() - t0 < 2000, `stopped in ${Date.now() - t0} ms`);
  assert.deepEqual([l.stats.connections, l.stats.consuming, l.running], [0, false, false]);
});

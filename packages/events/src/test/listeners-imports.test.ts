/**
 * `@cdktr/events` must never load the optional peer dependencies of the built-in listeners;
 * each subpath loads only its own.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const PKG_DIR = fileURLToPath(new URL("../../", import.meta.url));
const HOOK = `export async function resolve(specifier, context, next) {
  if (/^(amqplib|pg|chokidar|picomatch|ioredis|@nats-io\\/transport-node|@nats-io\\/jetstream|mqtt)(\\/|$)/.test(specifier)) throw new Error("LOADED " + specifier);
  return next(specifier, context);
}`;

/** Import `specifier` in a fresh node whose resolver refuses the peer dependencies. */
function importGuarded(specifier: string): Promise<{ ok: boolean; output: string }> {
  const script = `import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(${JSON.stringify(HOOK)}));
await import(${JSON.stringify(specifier)});`;
  return new Promise((resolve) => {
    execFile(process.execPath, ["--input-type=module", "-e", script], { cwd: PKG_DIR }, (err, stdout, stderr) => {
      resolve({ ok: err === null, output: `${stdout}${stderr}` });
    });
  });
}

test("importing @cdktr/events and @cdktr/events/webhook loads none of amqplib, pg, chokidar, picomatch, ioredis, @nats-io/*, mqtt", async () => {
  for (const s of ["@cdktr/events", "@cdktr/events/webhook"]) {
    const r = await importGuarded(s);
    assert.equal(r.ok, true, `${s}: ${r.output}`);
  }
});

test("each heavy subpath loads its own peer dependency (so the guard above can fail)", async () => {
  // file-watcher has two peers; ESM resolves a module's imports concurrently, so either one may be
  // the first refused.
  for (const [s, deps] of [
    ["@cdktr/events/rabbitmq", "amqplib"],
    ["@cdktr/events/postgres", "pg"],
    ["@cdktr/events/file-watcher", "chokidar|picomatch"],
    ["@cdktr/events/redis", "ioredis"],
    ["@cdktr/events/nats", "@nats-io/transport-node|@nats-io/jetstream"],
    ["@cdktr/events/mqtt", "mqtt"],
  ] as const) {
    const r = await importGuarded(s);
    assert.equal(r.ok, false, s);
    assert.match(r.output, new RegExp(`LOADED (${deps})\\b`), `${s}: ${r.output}`);
  }
});

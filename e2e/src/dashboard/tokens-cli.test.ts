/**
 * `cdktr dashboard token create|list|revoke` with the real bin: the tokens file they write (mode,
 * contents), what they print and refuse. No principal involved.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { cleanup, makeTempDir, runCli } from "@cdktr/test-utils";

afterEach(cleanup);

test("token create prints the token once; the file (0600 in a 0700 dir) holds only its hash; list hides it; revoke", async () => {
  const home = makeTempDir("dash-tokens-");
  const keysDir = join(home, "keys");
  const env = { HOME: home, CDKTR_KEYS_DIR: keysDir };
  const file = join(keysDir, "dashboard-tokens.json");

  const made = await runCli(["dashboard", "token", "create", "alice", "--role", "operator"], { env });
  assert.equal(made.code, 0, made.stderr);
  const token = made.stdout.trim();
  assert.match(token, /^cdktr_dash_[A-Za-z0-9_-]{43}$/);
  assert.match(made.stderr, /cannot be shown again/);
  assert.match(made.stderr, /sign in/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(keysDir).mode & 0o777, 0o700);
  const text = readFileSync(file, "utf8");
  assert.ok(!text.includes(token), "the token itself is not stored");
  assert.ok(!text.includes(token.slice(11)), "nor its random part");
  const doc = JSON.parse(text) as {
    version: number;
    tokens: { name: string; role: string; hash: string; revokedAt: null }[];
  };
  assert.equal(doc.version, 1);
  assert.deepEqual(
    doc.tokens.map((t) => [t.name, t.role, t.hash, t.revokedAt]),
    [["alice", "operator", `sha256:${createHash("sha256").update(token).digest("hex")}`, null]],
  );

  const json = await runCli(["dashboard", "token", "create", "bob", "--role", "reader", "--json"], { env });
  assert.equal(json.code, 0, json.stderr);
  const bob = JSON.parse(json.stdout) as { name: string; role: string; token: string; file: string };
  assert.equal(bob.name, "bob");
  assert.equal(bob.role, "reader");
  assert.equal(bob.file, file);
  assert.match(bob.token, /^cdktr_dash_/);

  const list = await runCli(["dashboard", "token", "list"], { env });
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /NAME\s+ROLE\s+CREATED\s+STATUS/);
  assert.match(list.stdout, /alice\s+operator\s+\S+\s+active/);
  assert.doesNotMatch(list.stdout, /cdktr_dash_|sha256/);
  const listJson = await runCli(["dashboard", "token", "list", "--json"], { env });
  const listed = JSON.parse(listJson.stdout) as Record<string, unknown>[];
  assert.deepEqual(
    listed.map((t) => Object.keys(t).sort()),
    [
      ["createdAt", "name", "revokedAt", "role"],
      ["createdAt", "name", "revokedAt", "role"],
    ],
  );

  const dup = await runCli(["dashboard", "token", "create", "alice", "--role", "reader"], { env });
  assert.equal(dup.code, 2);
  assert.match(dup.stderr, /exists already: revoke it first/);
  assert.equal(dup.stdout, "");

  const revoked = await runCli(["dashboard", "token", "revoke", "alice"], { env });
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match((await runCli(["dashboard", "token", "list"], { env })).stdout, /alice\s+operator\s+\S+\s+revoked /);
  const again = await runCli(["dashboard", "token", "create", "alice", "--role", "reader"], { env });
  assert.equal(again.code, 0, again.stderr);
  const after = JSON.parse(readFileSync(file, "utf8")) as {
    tokens: { name: string; role: string; revokedAt: unknown }[];
  };
  assert.deepEqual(
    after.tokens.map((t) => [t.name, t.role, t.revokedAt]),
    [
      ["bob", "reader", null],
      ["alice", "reader", null],
    ],
  );
  assert.equal(statSync(file).mode & 0o777, 0o600);

  const missing = await runCli(["dashboard", "token", "revoke", "nobody"], { env });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no token named nobody/);
});

test("token create refuses bad names and roles (exit 2); CDKTR_DASHBOARD_TOKENS_FILE picks the file", async () => {
  const home = makeTempDir("dash-tokens-");
  const file = join(home, "elsewhere", "t.json");
  const env = { HOME: home, CDKTR_DASHBOARD_TOKENS_FILE: file };
  for (const name of ["Alice", "_x", "a b", "x".repeat(65), "a/b"]) {
    const r = await runCli(["dashboard", "token", "create", name, "--role", "reader"], { env });
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /invalid token name/);
  }
  const role = await runCli(["dashboard", "token", "create", "ok", "--role", "admin"], { env });
  assert.equal(role.code, 2);
  assert.match(role.stderr, /use reader or operator/);
  const good = await runCli(["dashboard", "token", "create", "ok.name@x-1", "--role", "reader"], { env });
  assert.equal(good.code, 0, good.stderr);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const empty = await runCli(["dashboard", "token", "list"], { env: { HOME: makeTempDir("dash-none-") } });
  assert.equal(empty.code, 0);
  assert.match(empty.stdout, /no dashboard tokens in .*dashboard-tokens\.json/);
});

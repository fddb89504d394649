import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readKeyFile } from "@cdktr/protocol";
import { runCli } from "../cli.js";
import { CliError } from "../errors.js";
import { bufferIo } from "../io.js";
import { parseRole, parseWorkflowList } from "./keys.js";

describe("cdktr keys: arguments", () => {
  it("roles are the six of docs/security.md, case-insensitive; anything else is bad usage naming them", () => {
    assert.equal(parseRole("Trigger"), "trigger");
    assert.throws(
      () => parseRole("admin"),
      (e: unknown) =>
        e instanceof CliError &&
        e.exitCode === 2 &&
        e.message.startsWith('unknown role "admin": use one of operator, reader, scheduler, trigger, agent, dashboard'),
    );
  });

  it("--workflows is a comma-separated list of workflow ids, blanks and repeats dropped", () => {
    assert.deepEqual(parseWorkflowList(" etl, report,,etl "), ["etl", "report"]);
    assert.throws(() => parseWorkflowList(" , "), /at least one workflow id/);
    assert.throws(() => parseWorkflowList("etl,a b"), /"a b" is not a workflow id/);
  });

  it("--out - refuses to print a secret key on a terminal, before anything is made or enrolled", async (t) => {
    const home = mkdtempSync(join(tmpdir(), "cdktr-keys-tty-"));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const io = bufferIo({ env: { HOME: home, NO_COLOR: "1" }, isTTY: true });
    const code = await runCli(["keys", "create", "ci", "--role", "trigger", "--out", "-"], io);
    assert.equal(code, 2);
    assert.match(io.err(), /^error: --out - prints the key file, secret key included, on stdout: redirect it/);
    assert.equal(io.out(), "");
    assert.deepEqual(readdirSync(home), [], "nothing written");
  });
});

describe("cdktr keys init", () => {
  it("makes principal.json and the local keys (mode 0600, pinning the new pair) offline, keeps them on a second run, refuses a foreign file", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "cdktr-keys-init-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const keysDir = join(dir, "keys");
    const io = bufferIo({ env: { HOME: dir, NO_COLOR: "1" }, cwd: dir });
    assert.equal(await runCli(["keys", "init", "keys"], io), 0, io.err());
    const names = [
      "local-agent.json",
      "local-dashboard.json",
      "local-listeners.json",
      "local-operator.json",
      "local-scheduler.json",
      "principal.json",
    ];
    assert.deepEqual(readdirSync(keysDir).sort(), names);
    const principal = readKeyFile(join(keysDir, "principal.json"));
    assert.equal(principal.role, "principal");
    for (const n of names) {
      assert.equal(statSync(join(keysDir, n)).mode & 0o777, 0o600, n);
      assert.equal(readKeyFile(join(keysDir, n)).principalPublicKey, principal.publicKey, `${n} pins the new pair`);
    }
    assert.equal(readKeyFile(join(keysDir, "local-agent.json")).role, "agent");
    assert.match(io.out(), /^created .*principal\.json \(principal\)$/m);

    const again = bufferIo({ env: { HOME: dir, NO_COLOR: "1" }, cwd: dir });
    assert.equal(await runCli(["keys", "init", keysDir, "--json"], again), 0, again.err());
    const reply = JSON.parse(again.out()) as { keysDir: string; files: { name: string; created: boolean }[] };
    assert.equal(reply.keysDir, keysDir);
    assert.deepEqual(
      reply.files.map((f) => f.created),
      [false, false, false, false, false, false],
      "nothing replaced",
    );
    assert.equal(readKeyFile(join(keysDir, "principal.json")).publicKey, principal.publicKey);

    // A local key of another deployment in the directory: refused, naming the file.
    const other = join(dir, "other");
    assert.equal(await runCli(["keys", "init", other], bufferIo({ env: { HOME: dir }, cwd: dir })), 0);
    rmSync(join(other, "principal.json"));
    const foreign = bufferIo({ env: { HOME: dir, NO_COLOR: "1" }, cwd: dir });
    assert.equal(await runCli(["keys", "init", other], foreign), 1);
    assert.match(
      foreign.err(),
      /local-operator\.json pins another principal key .*move it away, or use an empty directory/,
    );
    assert.ok(!readdirSync(other).includes("principal.json"), "nothing written before refusing");
  });
});

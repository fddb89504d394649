/**
 * `cdktr keys` end to end with the real bin and a real principal: a trigger key made by the
 * operator's CLI drives `cdktr run --wait` from another HOME through CDKTR_KEY_FILE, `keys list`
 * shows it without any secret, revoking it shuts that same command out; and every refusal is
 * one line (unknown role, name in use, existing file, a key that is not an operator's). The files
 * of `cdktr keys init` are a deployment's keys as they are (a principal, an agent and the CLI).
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { KeyRecordSchema, readKeyFile } from "@cdktr/protocol";
import {
  cleanup,
  cliBin,
  freePorts,
  makeTempDir,
  runCli,
  spawnService,
  startAgent,
  startPrincipal,
  workflowYaml,
  type CliResult,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { lines } from "./helpers.js";

afterEach(cleanup);

const ECHO = workflowYaml({ name: "Echo", tasks: { say: { cmd: "echo", args: ["hi from echo"] } } });
const OTHER = workflowYaml({ name: "Other", tasks: { say: { cmd: "echo", args: ["other"] } } });

function oneErrorLine(r: CliResult, code: number, pattern: RegExp, what: string): void {
  assert.equal(r.code, code, `${what}: exit code ${String(r.code)}\n${r.stdout}${r.stderr}`);
  const errs = lines(r.stderr);
  assert.equal(errs.length, 1, `${what}: one stderr line, got:\n${r.stderr}`);
  assert.match(errs[0] ?? "", /^error: /, what);
  assert.match(errs[0] ?? "", pattern, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
}

/** A principal running `echo` and `other`, with an agent. */
async function stack(): Promise<PrincipalFixture> {
  const p = await startPrincipal({ workflows: { "echo.yml": ECHO, "other.yml": OTHER } });
  await startAgent(p, { env: { CDKTR_AGENT_FETCH_WAIT_MS: "1000" } });
  return p;
}

/** "Another machine": a fresh HOME holding a copy of `keyFile` (0600), and the env naming it. */
function elsewhere(p: PrincipalFixture, keyFile: string): { env: Record<string, string>; home: string; copy: string } {
  const home = makeTempDir("cdktr-other-machine-");
  const copy = join(home, "keys", "ci.json");
  mkdirSync(join(home, "keys"), { recursive: true, mode: 0o700 });
  copyFileSync(keyFile, copy);
  chmodSync(copy, 0o600);
  const { HOME: _principalHome, ...ports } = p.clientEnv;
  return { env: { ...ports, HOME: home, CDKTR_KEY_FILE: copy }, home, copy };
}

describe("cdktr keys", () => {
  it("create a trigger key, run with it from another HOME, list it without secret, revoke it: the same command then fails", async () => {
    const p = await stack();
    const operator = p.clientEnv;

    const created = await runCli(["keys", "create", "ci", "--role", "trigger", "--workflows", "echo"], {
      env: operator,
    });
    assert.equal(created.code, 0, created.stderr);
    const path = join(p.keysDir, "ci.json");
    assert.match(created.stdout, /key `ci` enrolled: role trigger, scope ci, may run: echo/);
    assert.ok(created.stdout.includes(`key file: ${path}`), created.stdout);
    assert.match(created.stdout, /export CDKTR_KEY_FILE=/);
    assert.match(created.stdout, new RegExp(`CDKTR_PRINCIPAL_PORT=${p.ports.api} `));
    assert.match(created.stdout, /cdktr run echo --wait/);
    assert.equal(statSync(path).mode & 0o777, 0o600, "the key file is 0600");
    const file = readKeyFile(path);
    assert.deepEqual(
      [file.name, file.role, file.scope, file.workflows, file.principalPublicKey],
      ["ci", "trigger", "ci", ["echo"], p.publicKey],
    );
    assert.ok(!created.stdout.includes(file.secretKey), "the secret key is not printed");

    // Another machine: only the copied file, no keys directory of its own.
    const remote = elsewhere(p, path);
    const run = await runCli(["run", "echo", "--wait"], { env: remote.env, cwd: remote.home });
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    const runId = lines(run.stdout)[0] ?? "";
    assert.match(run.stdout, /COMPLETED/);
    // Its allow-list holds.
    const refused = await runCli(["run", "other"], { env: remote.env });
    oneErrorLine(refused, 1, /other/, "a workflow outside the key's list");

    // Who triggered it: `runs show` and the `runs` table.
    const show = await runCli(["runs", "show", runId], { env: operator });
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^by key: {4}ci$/m);
    const table = await runCli(["runs"], { env: operator });
    const header = lines(table.stdout)[0] ?? "";
    assert.match(header, /SOURCE\s+BY\s+CREATED/);
    const row = lines(table.stdout).find((l) => l.startsWith(runId)) ?? "";
    assert.match(row, /\bcli\s+ci\s+\d{4}-/, row);

    // The list: every key, no secret anywhere.
    const list = await runCli(["keys", "list"], { env: operator });
    assert.equal(list.code, 0, list.stderr);
    const ciRow = lines(list.stdout).find((l) => l.startsWith("ci ")) ?? "";
    assert.match(ciRow, /^ci\s+trigger\s+ci\s+echo\s+\S+ \S+\s+active\s+/);
    assert.ok(ciRow.includes(file.publicKey), "the public key is listed");
    assert.match(list.stdout, /^local-operator \*/m, "the CLI's own key is marked");
    const json = await runCli(["keys", "list", "--json"], { env: operator });
    assert.equal(json.code, 0, json.stderr);
    const records = (JSON.parse(json.stdout) as unknown[]).map((k) => KeyRecordSchema.strict().parse(k));
    assert.deepEqual(records.map((k) => k.name).sort(), [
      "ci",
      "local-agent",
      "local-dashboard",
      "local-listeners",
      "local-operator",
      "local-scheduler",
    ]);
    for (const text of [list.stdout, list.stderr, json.stdout]) {
      assert.ok(!text.includes(file.secretKey), "no secret key listed");
      assert.doesNotMatch(text, /secret/i);
    }

    // Revoke: the same command from the other machine now gets nothing done.
    const revoke = await runCli(["keys", "revoke", "ci"], { env: operator });
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, /^key `ci` \(role trigger\) revoked/);
    const again = await runCli(["keys", "revoke", "ci"], { env: operator });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /was revoked already/);
    const before = (await p.runs("echo")).length;
    const after = await runCli(["run", "echo", "--wait"], { env: remote.env, timeoutMs: 30_000 });
    oneErrorLine(after, 1, /does not know key `ci` \(not enrolled, revoked/, "a revoked key");
    assert.equal((await p.runs("echo")).length, before, "no run was started with the revoked key");
    const listed = await runCli(["keys", "list", "--json"], { env: operator });
    const ci = (JSON.parse(listed.stdout) as { name: string; revokedAt: string | null }[]).find((k) => k.name === "ci");
    assert.ok(ci?.revokedAt !== null && ci?.revokedAt !== undefined, "listed as revoked");
  });

  it("--out - prints the key file on stdout and the instructions on stderr; a scope is shared", async () => {
    const p = await stack();
    const r = await runCli(["keys", "create", "hook-a", "--role", "trigger", "--scope", "hooks", "--out", "-"], {
      env: p.clientEnv,
    });
    assert.equal(r.code, 0, r.stderr);
    const target = join(makeTempDir("cdktr-out-"), "hook-a.json");
    writeFileSync(target, r.stdout, { mode: 0o600 });
    const file = readKeyFile(target);
    assert.deepEqual([file.name, file.role, file.scope, file.workflows], ["hook-a", "trigger", "hooks", null]);
    assert.match(r.stderr, /key `hook-a` enrolled: role trigger, scope hooks/);
    assert.ok(!existsSync(join(p.keysDir, "hook-a.json")), "nothing written to the keys directory");
    const run = await runCli(["run", "echo", "--wait"], {
      env: { ...p.clientEnv, HOME: makeTempDir("cdktr-hook-"), CDKTR_KEY_FILE: target },
    });
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
  });

  it("refusals are one line each: bad role, name and options, name in use, existing file, no key, not an operator key, own key", async () => {
    const p = await stack();
    const env = p.clientEnv;
    const out = makeTempDir("cdktr-keys-out-");

    oneErrorLine(
      await runCli(["keys", "create", "x", "--role", "admin"], { env }),
      2,
      /unknown role "admin": use one of operator, reader, scheduler, trigger, agent/,
      "unknown role",
    );
    oneErrorLine(await runCli(["keys", "create", "x"], { env }), 2, /--role/, "missing --role");
    oneErrorLine(
      await runCli(["keys", "create", "bad/name", "--role", "reader"], { env }),
      2,
      /key name "bad\/name"/,
      "bad name",
    );
    oneErrorLine(
      await runCli(["keys", "create", "x", "--role", "agent", "--workflows", "echo"], { env }),
      2,
      /--workflows limits .* an agent key starts none/,
      "--workflows on an agent key",
    );
    oneErrorLine(
      await runCli(["keys", "create", "x", "--role", "trigger", "--workflows", "a|b"], { env }),
      2,
      /--workflows: "a\|b" is not a workflow id/,
      "bad workflow id",
    );

    // A name the principal has already: KEY_IN_USE, and the file written for it is removed.
    const inUse = join(out, "agent-again.json");
    oneErrorLine(
      await runCli(["keys", "create", "local-agent", "--role", "agent", "--out", inUse], { env }),
      1,
      /a key named `local-agent` is enrolled already/,
      "name in use",
    );
    assert.ok(!existsSync(inUse), "no key file left for a key that was not enrolled");

    // Never over an existing file (checked before anything is enrolled).
    const taken = join(out, "taken.json");
    writeFileSync(taken, "keep me");
    oneErrorLine(
      await runCli(["keys", "create", "fresh", "--role", "reader", "--out", taken], { env }),
      1,
      /key file .*taken\.json exists already/,
      "existing file",
    );
    const names = async (): Promise<string[]> =>
      (JSON.parse((await runCli(["keys", "list", "--json"], { env })).stdout) as { name: string }[]).map((k) => k.name);
    assert.ok(!(await names()).includes("fresh"), "nothing enrolled when the file exists");

    // No key at all (another HOME), and a key that is not an operator's.
    const keyless = { ...env, HOME: makeTempDir("cdktr-keyless-") };
    oneErrorLine(await runCli(["keys", "list"], { env: keyless }), 1, /no key found: .*operator key/, "no key");
    const reader = await p.createKey("watcher", "reader");
    const asReader = { ...env, HOME: makeTempDir("cdktr-reader-"), CDKTR_KEY_FILE: reader.path };
    for (const args of [
      ["keys", "list"],
      ["keys", "create", "sneaky", "--role", "operator", "--out", join(out, "sneaky.json")],
      ["keys", "revoke", "local-agent"],
    ]) {
      oneErrorLine(
        await runCli(args, { env: asReader }),
        1,
        /permission denied: key `watcher` \(role reader\) may not call \w+Key.*`cdktr keys` needs an operator key/,
        args.join(" "),
      );
    }
    assert.ok(!existsSync(join(out, "sneaky.json")), "no key file for a refused enrolment");
    assert.ok(!(await names()).includes("sneaky"));

    // Unknown name, and the key this cdktr speaks with.
    oneErrorLine(await runCli(["keys", "revoke", "nobody"], { env }), 1, /nobody/, "unknown key");
    oneErrorLine(
      await runCli(["keys", "revoke", "local-operator"], { env }),
      2,
      /`local-operator` is the key this cdktr speaks with/,
      "own key",
    );
    assert.ok((await names()).includes("local-operator"));
  });
});

describe("cdktr keys init", () => {
  it("a principal started on its files (as from Kubernetes Secrets) writes nothing there, enrols the local keys, and an agent and the CLI work with them", async () => {
    const tmp = makeTempDir("cdktr-keys-init-");
    const keysDir = join(tmp, "keys");
    const made = await runCli(["keys", "init", keysDir], { env: { HOME: tmp } });
    assert.equal(made.code, 0, made.stderr);
    const snapshot = (): Record<string, string> =>
      Object.fromEntries(readdirSync(keysDir).map((n) => [n, readFileSync(join(keysDir, n), "utf8")]));
    const before = snapshot();
    assert.equal(Object.keys(before).length, 6);

    const workflows = join(tmp, "workflows");
    mkdirSync(workflows);
    writeFileSync(join(workflows, "echo.yml"), ECHO);
    const [api = 0, logs = 0, publish = 0] = await freePorts(3);
    const ports = {
      CDKTR_PRINCIPAL_PORT: String(api),
      CDKTR_LOGS_LISTENING_PORT: String(logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(publish),
    };
    const start = (app: string, env: Record<string, string>) =>
      spawnService({ script: cliBin(), args: ["start", app], env: { ...ports, ...env }, cwd: tmp, name: app });
    await start("principal", {
      HOME: tmp,
      CDKTR_KEYS_DIR: keysDir,
      CDKTR_WORKFLOW_DIR: workflows,
      CDKTR_DB_PATH: join(tmp, "data", "cdktr.db"),
    });
    // Each elsewhere: only its key file, as a pod with its Secret.
    await start("agent", {
      HOME: makeTempDir("cdktr-agent-home-"),
      CDKTR_KEY_FILE: join(keysDir, "local-agent.json"),
      CDKTR_AGENT_DATA_DIR: join(tmp, "agent"),
    });
    const run = await runCli(["run", "echo", "--wait"], {
      env: { ...ports, HOME: makeTempDir("cdktr-cli-home-"), CDKTR_KEY_FILE: join(keysDir, "local-operator.json") },
    });
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    assert.deepEqual(snapshot(), before, "the principal wrote nothing in its keys directory");
  });
});

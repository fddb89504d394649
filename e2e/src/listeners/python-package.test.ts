/**
 * The Python client as users install it: `clients/python/build-wheel.sh` builds the wheel with
 * Debian's tooling, pip installs it (`--no-index --no-deps`) into a venv made with
 * `--system-site-packages` (Debian's python3-zmq), and the venv's python runs `python -m cdktr`
 * (ping, run, runs, the errors) and the batch verb against a real principal and agent with
 * authentication on; then against a real standby of two principals on PostgreSQL, whose
 * NOT_LEADER the client follows to the leader.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import {
  cleanup,
  freePort,
  makeTempDir,
  startPrincipal,
  startStack,
  workflowYaml,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, requireServer } from "./helpers.js";
import {
  buildWheel,
  CLIENT_DIR,
  installInVenv,
  isolatedEnv,
  packageSkipReason,
  runProcess,
  type Finished,
  type Venv,
} from "./python-helpers.js";

const WORKFLOW = workflowYaml({
  name: "Py",
  header: ["params:", '  greeting: {type: string, default: "hi"}', "  count: {type: number, required: false}"],
  tasks: { say: { name: "Say", cmd: "echo", args: ["hello"] } },
});
const OTHER = workflowYaml({ name: "Other", tasks: { say: { cmd: "echo", args: ["other"] } } });

/** The version of the npm packages (the root package.json), which the wheel must carry. */
const VERSION = (JSON.parse(readFileSync(join(CLIENT_DIR, "..", "..", "package.json"), "utf8")) as { version: string })
  .version;

// One clean-up for the file: the venv (a temp dir) serves both suites below.
after(cleanup);

let installed: Promise<{ wheel: string; venv: Venv }> | undefined;
/** The wheel, built once for this file, and a venv it is installed in. */
function installedOnce(): Promise<{ wheel: string; venv: Venv }> {
  installed ??= (async () => {
    const wheel = await buildWheel(makeTempDir("cdktr-py-wheel-"));
    return { wheel, venv: await installInVenv(wheel) };
  })();
  return installed;
}

/** Lines of stdout. */
const lines = (r: Finished): string[] => r.stdout.trimEnd().split("\n");

function ok(r: Finished): Finished {
  assert.equal(r.code, 0, `exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** `run_workflows` with the installed package: three triggers in one request. */
const BATCH_SCRIPT = `
import json, sys
import cdktr
from cdktr import Principal

with Principal() as p:
    rs = p.run_workflows([
        {"workflow_id": "py", "params": {"greeting": "batch"}, "idempotency_key": "venv-batch-1"},
        {"workflow_id": "no-such-workflow"},
        {"workflow_id": "py", "params": {"greeting": "batch"}, "idempotency_key": "venv-batch-1"},
        {"workflow_id": "other", "source": "venv-other"},
    ], source="venv-batch")
print(json.dumps({
    "module": cdktr.__file__,
    "results": [{"success": r.success, "code": r.code, "run_id": r.run_id, "duplicate": r.duplicate} for r in rs],
}))
`;

describe("the Python client installed from its wheel", { skip: packageSkipReason() }, () => {
  let f: PrincipalFixture;
  let venv: Venv;
  let wheel: string;
  let sourceFiles: string[];

  before(async () => {
    sourceFiles = readdirSync(CLIENT_DIR).sort();
    ({ wheel, venv } = await installedOnce());
    const stack = await startStack({
      workflows: { "py.yml": WORKFLOW, "other.yml": OTHER },
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
      agent: { env: { CDKTR_AGENT_FETCH_WAIT_MS: "1000" } },
    });
    f = stack.principal;
  });

  /** `python -m cdktr <args>` with the venv's python, in the principal's HOME (its local keys). */
  const cli = (args: string[], env: Record<string, string> = {}): Promise<Finished> =>
    venv.run(["-m", "cdktr", ...args], { ...f.clientEnv, ...env });

  test("build-wheel.sh builds cdktr-<version of the npm packages>-py3-none-any.whl and writes nothing next to the sources; pip installs it into a venv with its console script", async () => {
    assert.equal(wheel.split("/").pop(), `cdktr-${VERSION}-py3-none-any.whl`);
    assert.deepEqual(readdirSync(CLIENT_DIR).sort(), sourceFiles, "no build/, dist/ or *.egg-info in clients/python");
    const r = ok(
      await venv.run([
        "-c",
        "import json, cdktr, importlib.metadata as m; d = m.distribution('cdktr'); print(json.dumps({'file': cdktr.__file__, 'version': cdktr.__version__, 'meta': d.version, 'requires': d.requires, 'python': d.metadata['Requires-Python'], 'scripts': sorted(e.name for e in d.entry_points if e.group == 'console_scripts')}))",
      ]),
    );
    const meta = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.ok(String(meta.file).startsWith(join(venv.dir, "lib")), `imported from the venv: ${String(meta.file)}`);
    assert.equal(meta.version, VERSION);
    assert.equal(meta.meta, VERSION);
    assert.deepEqual(meta.requires, ["pyzmq (>=22)"]);
    assert.equal(meta.python, ">=3.9");
    assert.deepEqual(meta.scripts, ["cdktr-py"]);
    const version = ok(await venv.run(["-m", "cdktr", "--version"]));
    assert.equal(version.stdout, `cdktr (Python client) ${VERSION}\n`);
  });

  test("--help documents the commands, their options and the environment variables read", async () => {
    const main = ok(await venv.run(["-m", "cdktr", "--help"])).stdout;
    for (const word of [
      "ping",
      "run",
      "runs",
      "--principal",
      "--key-file",
      "--timeout-ms",
      "CDKTR_PRINCIPAL_HOST",
      "CDKTR_PRINCIPAL_PORT",
      "CDKTR_PRINCIPAL_ENDPOINTS",
      "CDKTR_KEY_FILE",
      "CDKTR_KEYS_DIR",
      "~/.cdktr/keys",
      "local-operator.json",
      "CDKTR_AUTH",
    ])
      assert.ok(main.includes(word), `--help names ${word}:\n${main}`);
    const run = ok(await venv.run(["-m", "cdktr", "run", "--help"])).stdout;
    for (const word of ["--param NAME=VALUE", "--key IDEMPOTENCY_KEY", "--wait", "--json", "CDKTR_KEY_FILE"])
      assert.ok(run.includes(word), `run --help names ${word}:\n${run}`);
    const runs = ok(await venv.run(["-m", "cdktr", "runs", "--help"])).stdout;
    for (const word of ["--workflow", "--limit", "--status", "CDKTR_PRINCIPAL_ENDPOINTS"])
      assert.ok(runs.includes(word), `runs --help names ${word}:\n${runs}`);
    const none = await venv.run(["-m", "cdktr"]);
    assert.equal(none.code, 2, "no command: usage, exit 2");
    assert.match(none.stderr, /usage: python3 -m cdktr/);
  });

  test("ping prints the principal's id and version, its role and the key proved; the console script does the same", async () => {
    const { principalId, version } = await f.client.request("ping", {});
    const expected = [
      `principal ${principalId} (version ${version}) at tcp://127.0.0.1:${f.ports.api}`,
      "role:    leader",
      "health:  ok",
      `key:     local-operator (role operator, ${join(f.keysDir, "local-operator.json")})`,
    ];
    assert.deepEqual(lines(ok(await cli(["ping"]))), expected);
    // the console script pip made, started directly (its #! names the venv's python)
    const script = ok(await runProcess(join(venv.dir, "bin", "cdktr-py"), ["ping"], isolatedEnv(f.clientEnv)));
    assert.deepEqual(lines(script), expected);
    const usage = await runProcess(join(venv.dir, "bin", "cdktr-py"), ["run"], isolatedEnv());
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^usage: cdktr-py run /);
    const json = JSON.parse(ok(await cli(["ping", "--json"])).stdout) as Record<string, unknown>;
    assert.equal(json.principalId, principalId);
  });

  test("run creates one run with its params and idempotency key (checked through the principal); the same key again is that run; --wait ends with COMPLETED", async () => {
    const first = ok(await cli(["run", "py", "--param", "greeting=bonjour", "-p", "count=3", "--key", "venv-run-1"]));
    const [runId, ...rest] = lines(first);
    assert.match(runId ?? "", /^\S+$/);
    assert.deepEqual(rest, [], "only the run id on stdout");
    assert.equal(first.stderr, "");
    const { run } = await f.client.getRun(runId ?? "");
    assert.deepEqual(run.params, { greeting: "bonjour", count: 3 }, "the principal coerced count to its type");
    assert.equal(run.idempotencyKey, "venv-run-1");
    assert.equal(run.source, "python-cli");
    assert.equal(run.triggeredBy, "local-operator");

    const again = ok(await cli(["run", "py", "--param", "greeting=bonjour", "-p", "count=3", "--key", "venv-run-1"]));
    assert.equal(again.stdout, `${runId}\n`);
    assert.equal(
      again.stderr,
      "(key venv-run-1 was used before: this is that run, nothing new was started)\n",
      "a duplicate says so on stderr",
    );
    assert.equal((await f.runs("py")).filter((r) => r.idempotencyKey === "venv-run-1").length, 1);

    const waited = ok(await cli(["run", "py", "--wait", "--source", "venv-wait"]));
    const out = lines(waited);
    const waitedId = out[0] ?? "";
    assert.match(out.at(-1) ?? "", new RegExp(`^run ${waitedId} COMPLETED in \\S+$`), waited.stdout);
    assert.ok(
      out.some((l) => / {2}run COMPLETED$/.test(l)),
      `the final state change is printed:\n${waited.stdout}`,
    );
    const done = await f.client.getRun(waitedId);
    assert.equal(done.run.status, "COMPLETED");
    assert.equal(done.run.source, "venv-wait");
    assert.ok(done.run.idempotencyKey?.startsWith("auto:"), "a key is generated when none is given");

    const json = JSON.parse(ok(await cli(["run", "other", "--json"])).stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json).sort(), ["duplicate", "runId", "skipped", "status"]);
  });

  test("runs lists the latest runs newest first as a table; --workflow, --limit and --json", async () => {
    const older = await f.run("other");
    const newer = await f.run("other");
    const table = lines(ok(await cli(["runs", "--workflow", "other", "--limit", "2"])));
    assert.match(table[0] ?? "", /^RUN +WORKFLOW +STATUS +SOURCE +BY +CREATED +DURATION$/);
    assert.equal(table.length, 3, table.join("\n"));
    assert.deepEqual(
      table.slice(1).map((l) => l.split(/\s+/).slice(0, 2)),
      [
        [newer, "other"],
        [older, "other"],
      ],
    );
    assert.match(table[1] ?? "", / local-operator {2}\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} /);
    const records = JSON.parse(ok(await cli(["runs", "--workflow", "other", "--json", "-n", "1"])).stdout) as {
      runId: string;
    }[];
    assert.deepEqual(
      records.map((r) => r.runId),
      [newer],
    );
    const none = ok(await cli(["runs", "--status", "crashed", "--workflow", "py"]));
    assert.equal(none.stdout, "no runs\n");
  });

  test("run_workflows from the installed package: one result per item, in order, checked through the principal", async () => {
    const r = ok(await venv.run(["-c", BATCH_SCRIPT], f.clientEnv));
    const out = JSON.parse(r.stdout) as {
      module: string;
      results: { success: boolean; code: string | null; run_id: string | null; duplicate: boolean }[];
    };
    assert.ok(out.module.startsWith(venv.dir), out.module);
    assert.deepEqual(
      out.results.map((x) => [x.success, x.code, x.duplicate]),
      [
        [true, null, false],
        [false, "WORKFLOW_NOT_FOUND", false],
        [true, null, true],
        [true, null, false],
      ],
    );
    const [first, , again, other] = out.results;
    assert.equal(again?.run_id, first?.run_id);
    const { run } = await f.client.getRun(String(first?.run_id));
    assert.deepEqual(
      [run.params, run.source, run.idempotencyKey],
      [{ greeting: "batch" }, "venv-batch", "venv-batch-1"],
    );
    const { run: o } = await f.client.getRun(String(other?.run_id));
    assert.deepEqual([o.workflowId, o.source], ["other", "venv-other"]);
  });

  test("a refused trigger exits non-zero with the principal's reason; nothing is created", async () => {
    const before = (await f.runs("py")).length;
    const unknown = await cli(["run", "no-such-workflow"]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stdout, "");
    assert.match(unknown.stderr, /^error: WORKFLOW_NOT_FOUND: .*no-such-workflow.*\n$/);

    const badParam = await cli(["run", "py", "-p", "nope=1"]);
    assert.equal(badParam.code, 2, badParam.stderr);
    assert.match(badParam.stderr, /^error: INVALID_PARAMS: .*nope/);

    const malformed = await cli(["run", "py", "--param", "greeting"]);
    assert.equal(malformed.code, 2);
    assert.equal(
      malformed.stderr,
      "error: bad parameter 'greeting': write --param name=value (e.g. --param date=2026-11-28) (see `python3 -m cdktr run --help`)\n",
    );

    const trigger = await f.createKey("venv-trigger", "trigger", { workflows: ["other"] });
    const denied = await cli(["run", "py", "--key-file", trigger.path]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /^error: PERMISSION_DENIED: .*venv-trigger/);
    assert.equal((await f.runs("py")).length, before, "no run was created");
  });

  test("a key file that cannot be used exits 1 with a message naming the file; an unenrolled key and an unreachable principal say where and what to check", async () => {
    const missing = join(makeTempDir("cdktr-py-key-"), "none.json");
    const gone = await cli(["ping", "--key-file", missing]);
    assert.equal(gone.code, 1);
    assert.equal(
      gone.stderr,
      `error: key file ${missing} does not exist: create one with \`cdktr keys create\` or fix CDKTR_KEY_FILE\n`,
    );

    const made = await f.createKey("venv-unsafe", "trigger");
    const unsafe = join(makeTempDir("cdktr-py-key-"), "unsafe.json");
    copyFileSync(made.path, unsafe);
    chmodSync(unsafe, 0o644);
    const open = await cli(["run", "py"], { CDKTR_KEY_FILE: unsafe });
    assert.equal(open.code, 1);
    assert.equal(
      open.stderr,
      `error: key file ${unsafe} may be read by other users (mode 644): run \`chmod 600 ${unsafe}\`\n`,
    );

    const notJson = join(makeTempDir("cdktr-py-key-"), "bad.json");
    copyFileSync(made.path, notJson);
    chmodSync(notJson, 0o600);
    writeFileSync(notJson, "{ not json");
    const invalid = await cli(["runs", "--key-file", notJson]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, new RegExp(`^error: key file ${notJson} is not JSON: `));

    // A key the principal never enrolled: it answers nothing, so the message names the key and its file.
    const stranger = await f.createKey("venv-stranger", "operator", { enroll: false });
    const unknown = await cli(["ping", "--timeout-ms", "500", "--key-file", stranger.path]);
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.stderr,
      `error: no principal answered at tcp://127.0.0.1:${f.ports.api} (timeout 500 ms): start one with \`cdktr start principal\` (or point at it with --principal HOST:PORT, CDKTR_PRINCIPAL_ENDPOINTS, CDKTR_PRINCIPAL_HOST, CDKTR_PRINCIPAL_PORT); if one runs there, it does not know key \`venv-stranger\` from ${stranger.path} (not enrolled, revoked, or made for another principal)\n`,
    );
    assert.ok(unknown.ms < 10_000, `took ${unknown.ms} ms with a 500 ms timeout`);

    const port = await freePort();
    // a HOME without keys: the message adds that this client has none
    const down = await cli(["run", "py", "--principal", `127.0.0.1:${port}`, "--timeout-ms", "500"], {
      HOME: makeTempDir("cdktr-py-home-"),
    });
    assert.equal(down.code, 1);
    assert.equal(down.stdout, "");
    assert.match(
      down.stderr,
      new RegExp(
        `^error: no principal answered at tcp://127\\.0\\.0\\.1:${port} \\(timeout 500 ms\\): start one with \`cdktr start principal\`.*this client has none: set CDKTR_KEY_FILE`,
      ),
    );
    const plaintext = await cli(["ping", "--principal", `127.0.0.1:${port}`, "--timeout-ms", "500"], {
      CDKTR_AUTH: "off",
    });
    assert.equal(plaintext.code, 1);
    assert.equal(
      plaintext.stderr,
      `error: no principal answered at tcp://127.0.0.1:${port} (timeout 500 ms): start one with \`cdktr start principal\` (or point at it with --principal HOST:PORT, CDKTR_PRINCIPAL_ENDPOINTS, CDKTR_PRINCIPAL_HOST, CDKTR_PRINCIPAL_PORT)\n`,
      "CDKTR_AUTH=off: no word about keys",
    );
    const badAddress = await cli(["ping", "--principal", "127.0.0.1:http"]);
    assert.equal(badAddress.code, 2);
    assert.match(badAddress.stderr, /^error: --principal: expected host:port/);
  });
});

describe("the installed Python client with several principals on PostgreSQL", async () => {
  const skip = packageSkipReason() ?? (await requireServer("PostgreSQL", 5432));
  const BASE_URL = "postgres://postgres@127.0.0.1:5432/test";
  const schema = `cdktr_py_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: BASE_URL });
  let venv: Venv;
  before(async () => {
    if (skip !== undefined) return;
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    ({ venv } = await installedOnce());
  });
  after(async () => {
    await cleanup(); // the principals first, then their schema
    if (skip === undefined) {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  });

  test("given only a standby, run follows its NOT_LEADER to the leader it names; ping and runs are answered by the standby", {
    skip: skip ?? false,
  }, async () => {
    const env = {
      CDKTR_DATABASE_URL: `${BASE_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      CDKTR_LEADER_TTL_MS: "2000",
      CDKTR_KEYS_DIR: makeTempDir("cdktr-py-ha-keys-"),
    };
    const leader = await startPrincipal({ workflows: { "py.yml": WORKFLOW }, env });
    const standby = await startPrincipal({ workflows: { "py.yml": WORKFLOW }, env });
    assert.equal(standby.service?.ready.role, "standby");
    const only = { ...standby.clientEnv, CDKTR_PRINCIPAL_ENDPOINTS: `127.0.0.1:${standby.ports.api}` };
    const cli = (args: string[]): Promise<Finished> => venv.run(["-m", "cdktr", ...args], only);

    const ping = lines(ok(await cli(["ping"])));
    assert.equal(ping[0]?.endsWith(`at tcp://127.0.0.1:${standby.ports.api}`), true, ping.join("\n"));
    assert.equal(ping[1], `role:    standby (leader ${leader.endpoints.api})`);

    const run = ok(await cli(["run", "py", "--param", "greeting=ha", "--key", "venv-ha-1"]));
    const runId = lines(run)[0] ?? "";
    const { run: stored } = await leader.client.getRun(runId);
    assert.deepEqual([stored.params, stored.idempotencyKey], [{ greeting: "ha" }, "venv-ha-1"]);

    const table = lines(ok(await cli(["runs", "--workflow", "py"])));
    assert.equal(table.length, 2, table.join("\n"));
    assert.ok(table[1]?.startsWith(`${runId} `), table.join("\n"));
  });
});

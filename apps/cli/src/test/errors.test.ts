/**
 * The errors users hit most print ONE clear line (no stack trace) and exit non-zero, with the
 * real `cdktr` bin as a process.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { freePort, killAllServices, makeTempDir, removeTempDirs, type ServiceHandle } from "@cdktr/test-utils";
import { spawn } from "node:child_process";
import { BIN, lines, makeSandbox, runBin, startPrincipal, type BinResult, type Sandbox } from "./helpers.js";

function assertOneLine(r: BinResult, pattern: RegExp, what: string): void {
  const errLines = lines(r.stderr);
  assert.equal(errLines.length, 1, `${what}: expected one stderr line, got:\n${r.stderr}`);
  assert.match(errLines[0] ?? "", pattern, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
}

describe("without a principal", () => {
  after(() => removeTempDirs());

  test("every command that needs one says where it looked and how to start one", async () => {
    const port = await freePort();
    const env = { HOME: makeTempDir(), CDKTR_PRINCIPAL_PORT: String(port) };
    for (const args of [["runs"], ["workflows"], ["ping"], ["agents"], ["run", "hello"], ["logs", "--run", "x"]]) {
      const r = await runBin(args, { env, timeoutMs: 30_000 });
      assert.equal(r.code, 1, `${args.join(" ")}: exit code`);
      assertOneLine(
        r,
        new RegExp(`^error: no principal at 127\\.0\\.0\\.1:${port}: start one with \`cdktr start principal\``),
        args.join(" "),
      );
    }
    // --principal wins over the environment
    const other = await freePort();
    const r = await runBin(["ping", "--principal", `127.0.0.1:${other}`], { env, timeoutMs: 30_000 });
    assertOneLine(r, new RegExp(`no principal at 127\\.0\\.0\\.1:${other}`), "--principal");
  });

  test("ping gives up within 3 s on a port that accepts connections but never answers", async () => {
    // A silent TCP server: the ZeroMQ handshake never completes, so only the deadline ends ping.
    const held: Socket[] = [];
    const silent = createServer((s) => held.push(s));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    try {
      const env = { HOME: makeTempDir() };
      // Node start-up and module loading are measured alone, so only ping's own waiting counts.
      let t0 = Date.now();
      const version = await runBin(["--version"], { env });
      const startup = Date.now() - t0;
      assert.equal(version.code, 0);
      t0 = Date.now();
      const r = await runBin(["ping", "--principal", `127.0.0.1:${port}`], { env, timeoutMs: 30_000 });
      const waited = Date.now() - t0 - startup;
      assert.equal(r.code, 1);
      assertOneLine(r, new RegExp(`^error: no principal at 127\\.0\\.0\\.1:${port}`), "ping (silent server)");
      // 3 s is the promise; 1.5 s of slack for a busy machine. A retry would need 4 s or more.
      assert.ok(waited < 4500, `ping waited about ${waited} ms`);
    } finally {
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  test("bad parameter syntax, unknown commands and options are usage errors (exit 2)", async () => {
    const env = { HOME: makeTempDir(), CDKTR_PRINCIPAL_PORT: String(await freePort()) };
    const cases: [string[], RegExp][] = [
      [["run", "hello", "-p", "foo"], /^error: bad parameter "foo": write -p name=value/],
      [["run", "hello", "-p", "=x"], /^error: bad parameter "=x"/],
      [["frobnicate"], /^error: unknown command 'frobnicate'/],
      [["runs", "--frob"], /^error: unknown option '--frob'/],
      [["run"], /^error: missing required argument 'workflowId'/],
      [["logs", "--since", "yesterday"], /^error: invalid --since "yesterday"/],
      [["runs", "--status", "DONE"], /^error: unknown status "DONE": use one of QUEUED/],
      [["runs", "--limit", "0"], /^error: --limit: expected a whole number/],
      [["start", "nothing"], /^error: unknown app `nothing`/],
      [["runs", "--principal", "host:notaport"], /^error: --principal: expected a port/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runBin(args, { env });
      assert.equal(r.code, 2, `${args.join(" ")}: exit code (stderr: ${r.stderr})`);
      assertOneLine(r, pattern, args.join(" "));
    }
  });

  test("--help, <cmd> --help and --version exit 0 on stdout", async () => {
    const help = await runBin(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: cdktr/);
    const sub = await runBin(["run", "--help"]);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--wait/);
    const version = await runBin(["--version"]);
    assert.equal(version.code, 0);
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    assert.equal(version.stdout.trim(), pkg.version);
  });

  test("validate: invalid YAML gives file:line:column errors and exit 1; valid files exit 0", async () => {
    const dir = makeTempDir();
    const wf = join(dir, "workflows");
    mkdirSync(join(wf, "etl"), { recursive: true });
    writeFileSync(join(wf, "broken.yml"), "name: [unclosed\ntasks: {}\n");
    writeFileSync(
      join(wf, "etl", "typo.yaml"),
      "name: typo\ntasks:\n  a:\n    name: a\n    dependencies: [b]\n    config: !Subprocess\n      cmd: echo\n",
    );
    writeFileSync(
      join(wf, "ok.yml"),
      "name: ok\ntasks:\n  a:\n    name: a\n    config: !Subprocess\n      cmd: echo\n",
    );
    writeFileSync(join(wf, ".gitkeep"), "");
    const bad = await runBin(["validate", "workflows"], { cwd: dir });
    assert.equal(bad.code, 1, bad.stderr);
    const errLines = lines(bad.stderr);
    assert.ok(
      errLines.some((l) => /^workflows\/broken\.yml:\d+:\d+: /.test(l)),
      bad.stderr,
    );
    assert.ok(
      errLines.some((l) => /^workflows\/etl\/typo\.yaml:5:5: .*did you mean `depends`/.test(l)),
      bad.stderr,
    );
    assert.doesNotMatch(bad.stderr, /ok\.yml|gitkeep/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);

    const good = makeTempDir();
    const init = await runBin(["init", good]);
    assert.equal(init.code, 0, init.stderr);
    const env = readFileSync(join(good, ".env"), "utf8");
    assert.match(env, /^# CDKTR_PRINCIPAL_PORT=5561$/m);
    const ok = await runBin(["validate", join(good, "workflows")]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok: 1 workflow valid/);
    // CDKTR_WORKFLOW_DIR is the default directory
    const viaEnv = await runBin(["validate"], { env: { CDKTR_WORKFLOW_DIR: join(good, "workflows") } });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);

    const missing = await runBin(["validate", join(dir, "nope")]);
    assert.equal(missing.code, 1);
    assertOneLine(missing, /nope: no such directory/, "missing dir");
  });
});

/** A daily workflow in a timezone with DST, for `workflow show`. */
const NY_WORKFLOW = `name: NY open
cron: "0 30 9 * * *"
timezone: America/New_York
tasks:
  a:
    name: A
    config: !Subprocess { cmd: echo, args: [a] }
`;

describe("with a principal", () => {
  let sb: Sandbox;
  let principal: ServiceHandle;
  before(async () => {
    sb = await makeSandbox({ "ny.yml": NY_WORKFLOW });
    principal = await startPrincipal(sb);
  });
  after(async () => {
    await principal.stop();
    await killAllServices();
    removeTempDirs();
  });

  test("unknown workflow or run: one line naming it", async () => {
    const run = await runBin(["run", "nope"], { env: sb.env });
    assert.equal(run.code, 1);
    assertOneLine(run, /^error: .*`nope`.*cdktr workflows/, "run nope");
    const show = await runBin(["workflow", "show", "nope"], { env: sb.env });
    assert.equal(show.code, 1);
    assertOneLine(show, /nope/, "workflow show nope");
    const runShow = await runBin(["runs", "show", "01NOTARUN"], { env: sb.env });
    assert.equal(runShow.code, 1);
    assertOneLine(runShow, /01NOTARUN/, "runs show");
  });

  test("invalid params are refused with the principal's reason", async () => {
    const r = await runBin(["run", "fan-in", "-p", "nosuch=1"], { env: sb.env });
    assert.notEqual(r.code, 0);
    assertOneLine(r, /nosuch/, "unknown param");
  });

  test("listings print ONE JSON array of protocol records with --json", async () => {
    const { WorkflowDefinitionSchema, RunRecordSchema, AgentRecordSchema, LogLineSchema } = await import(
      "@cdktr/protocol"
    );
    const wfs = await runBin(["workflows", "--json"], { env: sb.env });
    assert.equal(wfs.code, 0, wfs.stderr);
    const parsed = JSON.parse(wfs.stdout) as unknown[];
    const ids = parsed.map((w) => WorkflowDefinitionSchema.parse(w).id);
    for (const id of ["every-minute", "fail", "fan-in", "hello"])
      assert.ok(ids.includes(id), `${id} in ${ids.join(",")}`);
    const id = lines((await runBin(["run", "hello", "--key", "k1"], { env: sb.env })).stdout)[0];
    const again = await runBin(["run", "hello", "--key", "k1"], { env: sb.env });
    assert.equal(lines(again.stdout)[0], id, "same key, same run");
    const runs = JSON.parse((await runBin(["runs", "--json"], { env: sb.env })).stdout) as unknown[];
    assert.deepEqual(
      runs.map((r) => RunRecordSchema.parse(r).runId),
      [id],
    );
    assert.equal(RunRecordSchema.parse(runs[0]).source, "cli");
    const agents = JSON.parse((await runBin(["agents", "--json"], { env: sb.env })).stdout) as unknown[];
    assert.ok(Array.isArray(agents));
    for (const a of agents) AgentRecordSchema.parse(a);
    const logs = JSON.parse((await runBin(["logs", "--json"], { env: sb.env })).stdout) as unknown[];
    assert.ok(Array.isArray(logs));
    for (const l of logs) LogLineSchema.parse(l);
    const table = await runBin(["workflows"], { env: sb.env });
    assert.match(table.stdout, /^ID\s+NAME\s+CRON\s+TIMEZONE\s+NEXT RUN$/m);
    assert.match(table.stdout, /^every-minute\s+.*\* \* \* \* \*\s+UTC\s+\d{4}-\d\d-\d\d \d\d:\d\d:00 UTC$/m);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ANSI escapes
    assert.doesNotMatch(table.stdout, /\u001b\[/, "no colour when not a TTY");
  });

  // Last in this group: it adds runs the listing test above does not expect.
  test("workflow show: tasks, the DAG as a tree, the next 5 runs in the workflow's timezone; cancel a queued run", async () => {
    const fan = await runBin(["workflow", "show", "fan-in"], { env: sb.env });
    assert.equal(fan.code, 0, fan.stderr);
    for (const task of ["extract", "left", "right", "join"])
      assert.match(fan.stdout, new RegExp(`^${task}\\s`, "m"), `task ${task} listed`);
    const dag = fan.stdout.split("\nDAG\n")[1]?.split("\n\n")[0] ?? "";
    assert.deepEqual(dag.split("\n"), ["extract", "├── left", "│   └── join", "└── right", "    └── join"]);

    const ny = await runBin(["workflow", "show", "ny"], { env: sb.env });
    assert.equal(ny.code, 0, ny.stderr);
    const next = (ny.stdout.split("\nNext runs (America/New_York)\n")[1] ?? "")
      .split("\n")
      .filter((l) => l.trim() !== "");
    assert.equal(next.length, 5, ny.stdout);
    for (const line of next) {
      // 09:30 New York wall time, whatever the season; the UTC instant follows the offset.
      const m = /^\d{4}-\d\d-\d\d 09:30:00 (EST|EDT) {2}\d{4}-\d\d-\d\dT(\d\d):30:00\.000Z$/.exec(line);
      assert.ok(m !== null, `next run line: ${line}`);
      assert.equal(m[2], m[1] === "EST" ? "14" : "13", line);
    }

    // No agent here: the run stays QUEUED, and cancelling it ends it at once.
    const id = lines((await runBin(["run", "hello"], { env: sb.env })).stdout)[0] ?? "";
    const cancel = await runBin(["cancel", id], { env: sb.env });
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, /CANCELLED/);
    const show = await runBin(["runs", "show", id, "--json"], { env: sb.env });
    assert.equal((JSON.parse(show.stdout) as { run: { status: string } }).run.status, "CANCELLED");
    const listed = JSON.parse((await runBin(["runs", "--status", "CANCELLED", "--json"], { env: sb.env })).stdout) as {
      runId: string;
    }[];
    assert.deepEqual(
      listed.map((r) => r.runId),
      [id],
    );
  });
});

describe("output to a closed pipe", () => {
  test("`cdktr --help | head -1`: the reader going away ends the command quietly (no EPIPE stack trace)", async () => {
    const child = spawn(process.execPath, [BIN, "--help"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // close our end before it writes anything, as `head` does once it has read enough
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.doesNotMatch(stderr, /EPIPE|\n\s+at /, `stderr:\n${stderr}`);
    assert.equal(code, 0);
  });
});

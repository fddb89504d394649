/**
 * The errors users hit most print ONE clear line (no stack trace) and exit non-zero, with the
 * real `cdktr` bin as a process. (The errors that need a running principal are tested in
 * e2e/src/cli/errors.test.ts.)
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { cliBin, freePort, makeTempDir, removeTempDirs, runCli, type CliResult } from "@cdktr/test-utils";
import { lines } from "./helpers.js";

function assertOneLine(r: CliResult, pattern: RegExp, what: string): void {
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
    // Each waits its 3 s for an answer: all at once.
    const commands = [["runs"], ["workflows"], ["ping"], ["agents"], ["run", "hello"], ["logs", "--run", "x"]];
    const results = await Promise.all(commands.map((args) => runCli(args, { env, timeoutMs: 30_000 })));
    for (const [i, r] of results.entries()) {
      const args = commands[i] ?? [];
      assert.equal(r.code, 1, `${args.join(" ")}: exit code`);
      assertOneLine(
        r,
        new RegExp(`^error: no principal at 127\\.0\\.0\\.1:${port}: start one with \`cdktr start principal\``),
        args.join(" "),
      );
    }
    // --principal wins over the environment
    const other = await freePort();
    const r = await runCli(["ping", "--principal", `127.0.0.1:${other}`], { env, timeoutMs: 30_000 });
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
      const version = await runCli(["--version"], { env });
      const startup = Date.now() - t0;
      assert.equal(version.code, 0);
      t0 = Date.now();
      const r = await runCli(["ping", "--principal", `127.0.0.1:${port}`], { env, timeoutMs: 30_000 });
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
      // The workflow id is optional for `--retry-from` only.
      [["run"], /^error: missing workflow id: `cdktr run <workflowId>` \(or `cdktr run --retry-from <runId>`\)/],
      [["run", "hello", "--retry-from", "r1"], /^error: --retry-from takes no workflow id/],
      [["run", "--retry-from", "r1", "-p", "x=1"], /^error: --retry-from takes no --param/],
      [["logs", "--since", "yesterday"], /^error: invalid --since "yesterday"/],
      [["runs", "--status", "DONE"], /^error: unknown status "DONE": use one of QUEUED/],
      [["runs", "--limit", "0"], /^error: --limit: expected a whole number/],
      [["start", "nothing"], /^error: unknown app `nothing`/],
      [["runs", "--principal", "host:notaport"], /^error: --principal: expected a port/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli(args, { env });
      assert.equal(r.code, 2, `${args.join(" ")}: exit code (stderr: ${r.stderr})`);
      assertOneLine(r, pattern, args.join(" "));
    }
  });

  test("--help, <cmd> --help and --version exit 0 on stdout", async () => {
    const help = await runCli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: cdktr/);
    const sub = await runCli(["run", "--help"]);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--wait/);
    const version = await runCli(["--version"]);
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
    const bad = await runCli(["validate", "workflows"], { cwd: dir });
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
    const init = await runCli(["init", good]);
    assert.equal(init.code, 0, init.stderr);
    const env = readFileSync(join(good, ".env"), "utf8");
    assert.match(env, /^# CDKTR_PRINCIPAL_PORT=5561$/m);
    const ok = await runCli(["validate", join(good, "workflows")]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok: 1 workflow valid/);
    // CDKTR_WORKFLOW_DIR is the default directory
    const viaEnv = await runCli(["validate"], { env: { CDKTR_WORKFLOW_DIR: join(good, "workflows") } });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);

    const missing = await runCli(["validate", join(dir, "nope")]);
    assert.equal(missing.code, 1);
    assertOneLine(missing, /nope: no such directory/, "missing dir");
  });
});

describe("output to a closed pipe", () => {
  test("`cdktr --help | head -1`: the reader going away ends the command quietly (no EPIPE stack trace)", async () => {
    const child = spawn(process.execPath, [cliBin(), "--help"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // close our end before it writes anything, as `head` does once it has read enough
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.doesNotMatch(stderr, /EPIPE|\n\s+at /, `stderr:\n${stderr}`);
    assert.equal(code, 0);
  });
});

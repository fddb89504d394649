import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { killAllServices, makeTempDir, removeTempDirs, spawnService, waitFor } from "@cdktr/test-base";

const script = fileURLToPath(new URL("../test/fixtures/run-service-app.js", import.meta.url));

afterEach(async () => {
  await killAllServices();
});
after(() => removeTempDirs());

function messages(lines: string[]): string[] {
  const out: string[] = [];
  for (const l of lines) {
    try {
      const v = JSON.parse(l) as { message?: unknown };
      if (typeof v.message === "string") out.push(v.message);
    } catch {
      // not JSON
    }
  }
  return out;
}

describe("runService", () => {
  it("merges .env without overriding the environment, logs one ready line with the app's info, and stops gracefully with exit 0", async () => {
    const cwd = makeTempDir();
    writeFileSync(join(cwd, ".env"), "CDKTR_FIXTURE_NAME=from-dotenv\nCDKTR_LOG_LEVEL=error\n");
    const svc = await spawnService({ script, cwd, env: { CDKTR_LOG_LEVEL: "info" } });
    assert.deepEqual(svc.ready.endpoints, { api: "tcp://127.0.0.1:1234" });
    assert.equal(svc.ready.name, "from-dotenv");
    assert.equal(svc.ready.component, "fixture");
    assert.equal(svc.ready.pid, svc.pid);
    const exit = await svc.stop("SIGTERM");
    assert.deepEqual(exit, { code: 0, signal: null });
    const seen = messages(svc.lines);
    assert.equal(seen.filter((m) => m === "ready").length, 1);
    assert.ok(seen.includes("fixture stop called"), seen.join(" | "));
  });

  it("invalid configuration: one stderr line per problem, no stack trace, exit 2", async () => {
    const cwd = makeTempDir();
    const svc = await spawnService({
      script,
      cwd,
      waitReady: false,
      env: { CDKTR_FIXTURE_MODE: "sideways", CDKTR_LOG_LEVEL: "loud" },
    });
    const exit = await svc.exited;
    assert.equal(exit.code, 2);
    const text = svc.lines.join("\n");
    assert.match(text, /^cdktr fixture: invalid configuration:/m);
    assert.match(text, /CDKTR_FIXTURE_MODE: .*"sideways"/);
    assert.match(text, /CDKTR_LOG_LEVEL: .*"loud"/);
    assert.ok(!text.includes("    at "), "no stack trace");
    assert.ok(!messages(svc.lines).includes("ready"));
  });

  it("a malformed .env file names file:line and exits 2", async () => {
    const cwd = makeTempDir();
    writeFileSync(join(cwd, ".env"), "# ok\nnot a setting\n");
    const svc = await spawnService({ script, cwd, waitReady: false });
    assert.equal((await svc.exited).code, 2);
    assert.match(svc.lines.join("\n"), /\.env:2: expected KEY=value/);
  });

  it("a start failure is reported, stop() is called, and the exit code comes from startExitCode", async () => {
    const cwd = makeTempDir();
    const svc = await spawnService({ script, cwd, waitReady: false, env: { CDKTR_FIXTURE_MODE: "start-fails" } });
    const exit = await svc.exited;
    assert.equal(exit.code, 3);
    const text = svc.lines.join("\n");
    assert.match(text, /cdktr fixture: failed to start: port 1 is taken/);
    const seen = messages(svc.lines);
    assert.ok(seen.includes("fixture stop called"));
    assert.ok(!seen.includes("ready"));
  });

  it("a second signal while stop() hangs runs onForce and exits 130", async () => {
    const cwd = makeTempDir();
    const svc = await spawnService({ script, cwd, env: { CDKTR_FIXTURE_MODE: "stop-hangs" } });
    process.kill(svc.pid, "SIGTERM");
    await svc.waitForLine((_l, j) => j?.message === "fixture stop called", 10_000);
    process.kill(svc.pid, "SIGINT");
    const exit = await svc.exited;
    assert.deepEqual(exit, { code: 130, signal: null });
    const seen = messages(svc.lines);
    assert.ok(seen.includes("fixture killed"), seen.join(" | "));
  });

  it("a graceful stop that outlasts graceMs exits 1", async () => {
    const cwd = makeTempDir();
    const svc = await spawnService({
      script,
      cwd,
      env: { CDKTR_FIXTURE_MODE: "stop-hangs", CDKTR_FIXTURE_GRACE_MS: "200" },
    });
    process.kill(svc.pid, "SIGTERM");
    const exit = await svc.exited;
    assert.deepEqual(exit, { code: 1, signal: null });
    await waitFor(() => messages(svc.lines).includes("shutdown grace period over: exiting"), { timeoutMs: 5000 });
  });
});

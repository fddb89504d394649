/**
 * The runner as a process: a YAML file with a webhook and a file watcher against a real
 * principal; an invalid file exits 2 naming file, line and field.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PrincipalClient } from "@cdktr/protocol";
import { signWebhookBody } from "@cdktr/events/webhook";
import { freePorts, killAllServices, makeTempDir, removeTempDirs, spawnService, waitFor } from "@cdktr/test-utils";

const MAIN = fileURLToPath(new URL("../main.js", import.meta.url));
const PRINCIPAL_MAIN = fileURLToPath(new URL("../../../principal/dist/main.js", import.meta.url));

const WORKFLOW = `name: Hook\nparams:\n  date: {type: string, required: false}\n  paths: {type: string, required: false}\ntasks:\n  only:\n    name: Only\n    config: !Subprocess\n      cmd: "true"\n      args: []\n`;

describe("listeners runner", () => {
  after(async () => {
    await killAllServices();
    removeTempDirs();
  });

  test("runs the listeners of a YAML file: a webhook triggers, a file watcher triggers, SIGTERM exits 0", async () => {
    const home = makeTempDir("cdktr-runner-");
    mkdirSync(join(home, "workflows"));
    writeFileSync(join(home, "workflows", "hook.yml"), WORKFLOW);
    const inbox = join(home, "inbox");
    mkdirSync(inbox);
    const [api, logs, pub] = await freePorts(3);
    await spawnService({
      script: PRINCIPAL_MAIN,
      name: "principal",
      cwd: home,
      env: {
        HOME: home,
        CDKTR_PRINCIPAL_PORT: String(api),
        CDKTR_LOGS_LISTENING_PORT: String(logs),
        CDKTR_LOGS_PUBLISHING_PORT: String(pub),
        CDKTR_WORKFLOW_DIR: join(home, "workflows"),
        CDKTR_DB_PATH: join(home, "cdktr.db"),
      },
    });
    writeFileSync(
      join(home, "my-listeners.yml"),
      `# listeners for the test\nlisteners:\n  - type: webhook\n    name: hooks\n    port: 0\n    secret_env: TEST_HOOK_SECRET\n  - type: file_watcher\n    name: inbox\n    path: ${JSON.stringify(inbox)}\n    workflow: hook\n    glob: "*.csv"\n    debounce_ms: 300\n`,
    );
    const runner = await spawnService({
      script: MAIN,
      name: "listeners",
      cwd: home,
      env: {
        HOME: home,
        CDKTR_LISTENERS_CONFIG: "my-listeners.yml",
        CDKTR_PRINCIPAL_PORT: String(api),
        TEST_HOOK_SECRET: "",
      },
      waitReady: false,
    });
    // An empty secret variable is a configuration error: exit 2 before anything starts.
    assert.deepEqual(await runner.exited, { code: 2, signal: null });
    assert.match(
      runner.lines.join("\n"),
      /my-listeners\.yml:6:17: listeners\[0\]\.secret_env: environment variable TEST_HOOK_SECRET is not set/,
    );

    const good = await spawnService({
      script: MAIN,
      name: "listeners",
      cwd: home,
      env: {
        HOME: home,
        CDKTR_LISTENERS_CONFIG: "my-listeners.yml",
        CDKTR_PRINCIPAL_PORT: String(api),
        TEST_HOOK_SECRET: "k",
      },
    });
    const listed = good.ready.listeners as { name: string; type: string; url?: string }[];
    assert.deepEqual(
      listed.map((l) => [l.name, l.type]),
      [
        ["hooks", "webhook"],
        ["inbox", "file_watcher"],
      ],
    );
    const url = listed[0]?.url;
    assert.match(String(url), /^http:\/\/127\.0\.0\.1:\d+$/);

    const unsigned = await fetch(`${url}/trigger/hook`, { method: "POST", body: "{}" });
    assert.equal(unsigned.status, 401);
    const body = JSON.stringify({ date: "2026-11-28" });
    const ts = Math.floor(Date.now() / 1000);
    const res = await fetch(`${url}/trigger/hook`, {
      method: "POST",
      body,
      headers: { "x-cdktr-timestamp": String(ts), "x-cdktr-signature": signWebhookBody("k", ts, body) },
    });
    assert.equal(res.status, 202);
    const reply = (await res.json()) as { runId: string };

    writeFileSync(join(inbox, "orders.csv"), "1,2,3");
    const client = new PrincipalClient({ port: api ?? 0, timeoutMs: 3000 });
    try {
      const runs = await waitFor(
        async () => {
          const r = (await client.listRuns({ workflowId: "hook", order: "asc" })).runs;
          return r.length === 2 ? r : undefined;
        },
        { what: "two runs" },
      );
      assert.equal(runs[0]?.runId, reply.runId);
      assert.deepEqual(runs[0]?.params, { date: "2026-11-28" });
      assert.deepEqual(runs[1]?.params, { paths: '["orders.csv"]' });
      assert.deepEqual([runs[0]?.source, runs[1]?.source], ["webhook", "file-watcher"]);
    } finally {
      client.close();
    }
    assert.deepEqual(await good.stop("SIGTERM"), { code: 0, signal: null });
  });

  test("an invalid config exits 2 and names file, line and field", async () => {
    const home = makeTempDir("cdktr-runner-");
    writeFileSync(join(home, "listeners.yml"), `listeners:\n  - type: webhook\n    prot: 8080\n`);
    const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [MAIN],
        { cwd: home, env: { PATH: process.env.PATH ?? "", HOME: home } },
        (err, _stdout, stderr) => {
          resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stderr });
        },
      );
    });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /listeners\.yml:3:5: listeners\[0\]\.prot: unknown field \(did you mean `port`\?\)/);
  });
});

/**
 * The runner as a process: a YAML file with a webhook and a file watcher against a real
 * principal; a signed request replayed after the process restarted is refused (the replay cache
 * in the default state directory). (Its config errors, which need no principal, are tested in
 * apps/listeners.)
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { signWebhookRequest, webhookTriggerPath } from "@cdktr/events/webhook";
import { cleanup, startListeners, startPrincipal, waitFor } from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, paramWorkflow } from "./helpers.js";

describe("listeners runner", () => {
  after(cleanup);

  test("runs the listeners of a YAML file: a webhook triggers, a file watcher triggers, SIGTERM exits 0, a replay after the restart is refused", async () => {
    const p = await startPrincipal({
      workflows: { "hook.yml": paramWorkflow("Hook", ["date", "paths"]) },
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
    const home = p.home;
    const inbox = join(home, "inbox");
    mkdirSync(inbox);
    writeFileSync(
      join(home, "my-listeners.yml"),
      `# listeners for the test\nlisteners:\n  - type: webhook\n    name: hooks\n    port: 0\n    secret_env: TEST_HOOK_SECRET\n  - type: file_watcher\n    name: inbox\n    path: ${JSON.stringify(inbox)}\n    workflow: hook\n    glob: "*.csv"\n    debounce_ms: 300\n`,
    );
    const runner = await startListeners(p, "my-listeners.yml", { env: { TEST_HOOK_SECRET: "" }, waitReady: false });
    // An empty secret variable is a configuration error: exit 2 before anything starts.
    assert.deepEqual(await runner.exited, { code: 2, signal: null });
    assert.match(
      runner.lines.join("\n"),
      /my-listeners\.yml:6:17: listeners\[0\]\.secret_env: environment variable TEST_HOOK_SECRET is not set/,
    );

    const good = await startListeners(p, "my-listeners.yml", { env: { TEST_HOOK_SECRET: "k" } });
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
    const headers = {
      "x-cdktr-timestamp": String(ts),
      "x-cdktr-signature": signWebhookRequest("k", ts, { method: "POST", path: webhookTriggerPath("hook"), body }),
    };
    const res = await fetch(`${url}/trigger/hook`, { method: "POST", body, headers });
    assert.equal(res.status, 202);
    const reply = (await res.json()) as { runId: string };

    writeFileSync(join(inbox, "orders.csv"), "1,2,3");
    {
      const runs = await waitFor(
        async () => {
          const r = (await p.client.listRuns({ workflowId: "hook", order: "asc" })).runs;
          return r.length === 2 ? r : undefined;
        },
        { what: "two runs" },
      );
      assert.equal(runs[0]?.runId, reply.runId);
      assert.deepEqual(runs[0]?.params, { date: "2026-11-28" });
      assert.deepEqual(runs[1]?.params, { paths: '["orders.csv"]' });
      assert.deepEqual([runs[0]?.source, runs[1]?.source], ["webhook", "file-watcher"]);
    }
    assert.deepEqual(await good.stop("SIGTERM"), { code: 0, signal: null });

    // The replay cache is in the default state directory, under the listeners' HOME.
    const stateDir = join(home, ".cdktr", "listeners");
    assert.ok(existsSync(stateDir), `${stateDir} exists`);
    assert.match(readdirSync(stateDir).join(","), /webhook-replay-[0-9a-f]{16}/);
    // Restarted (same HOME): the request captured above is refused, nothing new runs.
    const again = await startListeners(p, "my-listeners.yml", { env: { TEST_HOOK_SECRET: "k" } });
    const url2 = (again.ready.listeners as { url?: string }[])[0]?.url;
    const replay = await fetch(`${url2}/trigger/hook`, { method: "POST", body, headers });
    assert.equal(replay.status, 401);
    assert.match(((await replay.json()) as { message: string }).message, /already used/);
    assert.equal((await p.client.listRuns({ workflowId: "hook" })).runs.length, 2);
    assert.deepEqual(await again.stop("SIGTERM"), { code: 0, signal: null });
  });
});

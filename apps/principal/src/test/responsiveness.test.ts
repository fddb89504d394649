import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PrincipalClient, clientKeyOf, readKeyFile, type LogLine } from "@cdktr/protocol";
import { cleanup, helloWorkflowYaml, makeTempDir, writeWorkflows } from "@cdktr/test-utils";
import { createPrincipal, type Principal } from "../app.js";
import { loadConfig } from "../config.js";

let principal: Principal | null = null;
afterEach(async () => {
  await principal?.stop();
  principal = null;
  await cleanup();
});

describe("responsiveness", () => {
  it("a ping sent while a large log query scans is answered before that query's reply", async () => {
    const home = makeTempDir();
    writeWorkflows(join(home, "wf"), { "hello.yml": helloWorkflowYaml() });
    const config = loadConfig(
      {
        HOME: home,
        CDKTR_PRINCIPAL_PORT: "0",
        CDKTR_LOGS_LISTENING_PORT: "0",
        CDKTR_LOGS_PUBLISHING_PORT: "0",
        CDKTR_WORKFLOW_DIR: join(home, "wf"),
        CDKTR_DB_PATH: join(home, "db", "cdktr.db"),
      },
      { cwd: home, dotEnv: false },
    );
    principal = createPrincipal(config);
    const ep = await principal.start();
    const store = principal.store;
    assert.ok(store !== null);
    const t0 = Date.parse("2026-01-01T00:00:00Z");
    const total = 500_000;
    for (let start = 0; start < total; start += 20_000) {
      const lines: LogLine[] = [];
      for (let i = start; i < start + 20_000; i++) {
        lines.push({
          time: new Date(t0 + i).toISOString(),
          runId: `run-${i % 50}`,
          workflowId: "hello",
          taskId: `task-${i % 7}`,
          stream: "stdout",
          level: "info",
          seq: i + 1,
          line: `line ${i} ${"x".repeat(60)}`,
        });
      }
      const inserted: { stored: number } = await store.insertLogs(lines, null);
      assert.equal(inserted.stored, 20_000);
    }
    const port = Number(new URL(ep.api.replace("tcp://", "http://")).port);
    const key = clientKeyOf(readKeyFile(join(config.keysDir, "local-operator.json")));
    const api = new PrincipalClient({ port, timeoutMs: 30_000, env: {}, key });
    try {
      await api.ping();
      await Promise.all([api.listRuns({}), api.listRuns({})]); // read workers started
      const order: string[] = [];
      // No task is called `absent`: the query walks all 500k rows in time order.
      const query = api.queryLogs({ taskId: "absent", level: "error", limit: 1000 }).then((r) => {
        order.push("query");
        return r;
      });
      await new Promise((r) => setTimeout(r, 5));
      const pings = [api.ping(), api.ping(), api.ping()].map((p) => p.then(() => order.push("ping")));
      const [result] = await Promise.all([query, ...pings]);
      assert.equal(result.lines.length, 0);
      assert.deepEqual(order, ["ping", "ping", "ping", "query"]);
      const full = await api.queryLogs({ runId: "run-3", limit: 1000 });
      assert.equal(full.lines.length, 1000);
      assert.ok(full.nextCursor !== null);
    } finally {
      api.close();
    }
  });
});

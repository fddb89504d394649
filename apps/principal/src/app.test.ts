import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePorts, makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { createPrincipal } from "./app.js";
import { loadConfig } from "./config.js";

after(() => removeTempDirs());

async function config() {
  const home = makeTempDir();
  const [api, logs, pub] = await freePorts(3);
  return loadConfig(
    {
      HOME: home,
      CDKTR_PRINCIPAL_PORT: String(api),
      CDKTR_LOGS_LISTENING_PORT: String(logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(pub),
      CDKTR_WORKFLOW_DIR: join(home, "missing-dir"),
      CDKTR_DB_PATH: join(home, "db"),
    },
    { cwd: home, dotEnv: false },
  );
}

describe("createPrincipal lifecycle", () => {
  it("stop() during start() leaves nothing open: the same ports bind again", async () => {
    const c = await config();
    for (let i = 0; i < 3; i++) {
      const p = createPrincipal(c);
      const starting = p.start().then(
        () => "started",
        () => "aborted",
      );
      await new Promise((r) => setTimeout(r, i * 15));
      await p.stop();
      await starting;
    }
    const last = createPrincipal(c);
    const ep = await last.start();
    assert.equal(ep.api, `tcp://127.0.0.1:${c.apiPort}`);
    await last.stop();
    await last.stop(); // idempotent
  });

  it("a missing workflow directory is not fatal", async () => {
    const p = createPrincipal(await config());
    await p.start();
    assert.ok(p.endpoints !== null);
    await p.stop();
  });
});

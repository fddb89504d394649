import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HealthServer, noopLogger } from "@cdktr/protocol";
import { runCli } from "../cli.js";
import { bufferIo } from "../io.js";

/** A real health server (the one every process runs) whose readiness the test sets. */
async function serve(problems: string[]): Promise<{ server: HealthServer; port: string }> {
  const server = await HealthServer.start({
    host: "127.0.0.1",
    port: 0,
    metrics: { contentType: "text/plain; version=0.0.4", metrics: async () => "" },
    notReady: () => problems,
    logger: noopLogger,
  });
  return { server, port: new URL(server.url ?? "").port };
}

async function health(args: string[], env: Record<string, string> = {}) {
  const io = bufferIo({ env: { NO_COLOR: "1", ...env } });
  const code = await runCli(["health", ...args], io);
  return { code, out: io.out(), err: io.err() };
}

describe("cdktr health", () => {
  it("asks the process on its metrics port: /healthz, or /readyz with --ready, and prints its problems", async (t) => {
    const problems: string[] = [];
    const { server, port } = await serve(problems);
    t.after(() => server.close());

    // The port from CDKTR_METRICS_PORT, as in a container; a wildcard host is asked on loopback.
    const live = await health([], { CDKTR_METRICS_PORT: port, CDKTR_METRICS_HOST: "0.0.0.0" });
    assert.equal(live.code, 0, live.err);
    assert.equal(live.out, `http://127.0.0.1:${port}/healthz: ok\n`);
    assert.equal((await health(["--ready", "--port", port])).code, 0);

    problems.push("disk full: 0 bytes free in /data");
    const notReady = await health(["--ready", "--port", port]);
    assert.equal(notReady.code, 1);
    assert.equal(notReady.out, `http://127.0.0.1:${port}/readyz: not ready (disk full: 0 bytes free in /data)\n`);
    assert.equal((await health(["--port", port])).code, 0, "alive although not ready");
    const json = await health(["--ready", "--port", port, "--json"]);
    assert.deepEqual(JSON.parse(json.out), {
      url: `http://127.0.0.1:${port}/readyz`,
      ok: false,
      status: 503,
      problems: ["disk full: 0 bytes free in /data"],
    });

    await server.close();
    const dead = await health(["--port", port]);
    assert.equal(dead.code, 1);
    assert.match(dead.out, /\/healthz: unhealthy \(refused: is the process running with this metrics port\?\)/);
  });

  it("without a fixed port it is a usage error naming CDKTR_METRICS_PORT", async () => {
    const unset = await health([]);
    assert.equal(unset.code, 2);
    assert.match(
      unset.err,
      /needs the process's metrics port: set CDKTR_METRICS_PORT as for the process, or pass --port/,
    );
    const any = await health([], { CDKTR_METRICS_PORT: "0" });
    assert.equal(any.code, 2);
    assert.match(any.err, /port '0' is not a fixed port from 1 to 65535/);
    assert.equal((await health(["--port", "http"])).code, 2);
  });
});

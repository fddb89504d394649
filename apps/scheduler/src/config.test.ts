import { it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "@cdktr/protocol";
import { loadConfig } from "./config.js";

it("loadConfig: defaults, the refresh fallback, and readable errors", () => {
  const d = loadConfig({ HOME: "/home/u" });
  assert.deepEqual(d, {
    principalHost: "127.0.0.1",
    principalPort: 5561,
    principalEndpoints: ["tcp://127.0.0.1:5561"],
    publishPort: 5563,
    refreshIntervalMs: 60_000,
    missGraceMs: 60_000,
    triggerTimeoutMs: 5000,
    logLevel: "info",
    metricsPort: null,
    metricsHost: "127.0.0.1",
    stateDir: "/home/u/.cdktr/scheduler",
    chainSweepMs: 10_000,
    chainMarginMs: 300_000,
  });
  assert.equal(loadConfig({ CDKTR_SCHEDULER_STATE_DIR: "/var/lib/cdktr" }).stateDir, "/var/lib/cdktr");
  assert.equal(loadConfig({ CDKTR_METRICS_PORT: "9102" }).metricsPort, 9102);
  assert.equal(loadConfig({ CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: "30" }).refreshIntervalMs, 30_000);
  assert.equal(
    loadConfig({ CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: "30", CDKTR_SCHEDULER_REFRESH_S: "5" }).refreshIntervalMs,
    5000,
  );
  assert.throws(
    () => loadConfig({ CDKTR_PRINCIPAL_PORT: "abc", CDKTR_SCHEDULER_MISS_GRACE_S: "0" }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.problems.length, 2);
      assert.match(e.problems.join("\n"), /CDKTR_PRINCIPAL_PORT: .*"abc"/);
      assert.match(e.problems.join("\n"), /CDKTR_SCHEDULER_MISS_GRACE_S/);
      return true;
    },
  );
});

it("loadConfig: CDKTR_PRINCIPAL_ENDPOINTS lists several principals", () => {
  assert.deepEqual(loadConfig({ CDKTR_PRINCIPAL_ENDPOINTS: "p1:5561,p2:5561" }).principalEndpoints, [
    "tcp://p1:5561",
    "tcp://p2:5561",
  ]);
  assert.throws(() => loadConfig({ CDKTR_PRINCIPAL_ENDPOINTS: "p1:5561,p2" }), /CDKTR_PRINCIPAL_ENDPOINTS/);
});

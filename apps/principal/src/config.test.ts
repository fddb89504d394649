import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "@cdktr/protocol";
import { hostname } from "node:os";
import { defaultAdvertiseHost, loadConfig } from "./config.js";

describe("loadConfig", () => {
  it("applies the documented defaults and expands ~ against HOME", () => {
    const c = loadConfig({ HOME: "/home/u" }, { cwd: "/srv", dotEnv: false });
    assert.deepEqual(c, {
      host: "127.0.0.1",
      apiPort: 5561,
      logsPort: 5562,
      publishPort: 5563,
      workflowDir: "/srv/workflows",
      workflowRefreshMs: 60_000,
      dbPath: "/home/u/.cdktr/cdktr.db",
      workflowIndexPath: "/home/u/.cdktr/cdktr.workflow-index.json",
      databaseUrl: null,
      databaseReadConnections: 4,
      leaderTtlMs: 5000,
      advertiseHost: "127.0.0.1",
      heartbeatTimeoutMs: 30_000,
      heartbeatIntervalMs: 5_000,
      agentGcAfterMs: 3_600_000,
      maxAgentsPerKey: 256,
      leaseMs: 10_000,
      idempotencyRetentionDays: 7,
      runRetentionDays: 30,
      logRetentionDays: 30,
      maxMessageBytes: 1_048_576,
      maxRequestsInFlight: 1000,
      maxRequestsInFlightPerKey: 5000,
      logIngestMaxPendingLines: 20_000,
      logIngestMaxPendingBytes: 16 * 1024 * 1024,
      shutdownGraceMs: 10_000,
      logLevel: "info",
      auth: true,
      keysDir: "/home/u/.cdktr/keys",
      metricsPort: null,
      metricsHost: "127.0.0.1",
    });
  });

  it("accepts port 0 and $HOME in paths; empty values mean default", () => {
    const c = loadConfig(
      {
        HOME: "/h",
        CDKTR_PRINCIPAL_PORT: "0",
        CDKTR_DB_PATH: "$HOME/x/db.sqlite",
        CDKTR_WORKFLOW_DIR: "/abs/wf",
        CDKTR_LOG_LEVEL: "",
      },
      { cwd: "/srv", dotEnv: false },
    );
    assert.equal(c.apiPort, 0);
    assert.equal(c.dbPath, "/h/x/db.sqlite");
    assert.equal(c.workflowIndexPath, "/h/x/cdktr.workflow-index.json", "beside the database by default");
    assert.equal(c.workflowDir, "/abs/wf");
    assert.equal(c.logLevel, "info");
    const index = (v: string) =>
      loadConfig({ HOME: "/h", CDKTR_WORKFLOW_INDEX_PATH: v }, { cwd: "/srv", dotEnv: false }).workflowIndexPath;
    assert.equal(index("off"), null);
    assert.equal(index("~/idx.json"), "/h/idx.json");
    assert.equal(index("state/idx.json"), "/srv/state/idx.json");
  });

  it("CDKTR_DATABASE_URL selects PostgreSQL (empty = SQLite) and must be a postgres:// URL", () => {
    const url = "postgres://cdktr:secret@db.example:5432/cdktr";
    const c = loadConfig({ CDKTR_DATABASE_URL: url, CDKTR_DATABASE_READ_CONNECTIONS: "8" }, { dotEnv: false });
    assert.deepEqual([c.databaseUrl, c.databaseReadConnections], [url, 8]);
    assert.equal(loadConfig({ CDKTR_DATABASE_URL: "" }, { dotEnv: false }).databaseUrl, null);
    assert.throws(
      () => loadConfig({ CDKTR_DATABASE_URL: "mysql://x/y", CDKTR_DATABASE_READ_CONNECTIONS: "0" }, { dotEnv: false }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.some((p) => p.startsWith("CDKTR_DATABASE_URL: expected a postgres://")) &&
        e.problems.some((p) => p.startsWith("CDKTR_DATABASE_READ_CONNECTIONS:")),
    );
  });

  it("CDKTR_LEADER_TTL_MS (1000..300000, default 5000) and CDKTR_ADVERTISE_HOST (default: the bind host, or the host name for a wildcard)", () => {
    const d = loadConfig({}, { dotEnv: false });
    assert.deepEqual([d.leaderTtlMs, d.advertiseHost], [5000, "127.0.0.1"]);
    const c = loadConfig({ CDKTR_LEADER_TTL_MS: "2000", CDKTR_ADVERTISE_HOST: "p1.example" }, { dotEnv: false });
    assert.deepEqual([c.leaderTtlMs, c.advertiseHost], [2000, "p1.example"]);
    for (const wildcard of ["0.0.0.0", "::", "*"])
      assert.equal(defaultAdvertiseHost(wildcard), hostname(), `${wildcard} is advertised as the host name`);
    assert.equal(defaultAdvertiseHost("10.0.0.5"), "10.0.0.5");
    assert.throws(
      () => loadConfig({ CDKTR_LEADER_TTL_MS: "100", CDKTR_ADVERTISE_HOST: "a b" }, { dotEnv: false }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.some((p) => p.startsWith("CDKTR_LEADER_TTL_MS:")) &&
        e.problems.some((p) => p.startsWith("CDKTR_ADVERTISE_HOST: expected a host name")),
    );
  });

  it("CDKTR_METRICS_PORT: unset or empty = not served, 0 = any free port; a bad one is an error naming it", () => {
    const env = { HOME: "/home/u" };
    assert.equal(loadConfig(env, { dotEnv: false }).metricsPort, null);
    assert.equal(loadConfig({ ...env, CDKTR_METRICS_PORT: "" }, { dotEnv: false }).metricsPort, null);
    assert.equal(loadConfig({ ...env, CDKTR_METRICS_PORT: "0" }, { dotEnv: false }).metricsPort, 0);
    const c = loadConfig({ ...env, CDKTR_METRICS_PORT: "9100", CDKTR_METRICS_HOST: "0.0.0.0" }, { dotEnv: false });
    assert.deepEqual([c.metricsPort, c.metricsHost], [9100, "0.0.0.0"]);
    for (const bad of ["x", "70000", "-1"]) {
      assert.throws(
        () => loadConfig({ ...env, CDKTR_METRICS_PORT: bad }, { dotEnv: false }),
        (e: unknown) =>
          e instanceof ConfigError && /CDKTR_METRICS_PORT: expected an integer from 0 to 65535/.test(e.message),
      );
    }
  });

  it("CDKTR_LOG_FORMAT: json or pretty (any case); anything else is an error naming it", () => {
    const env = { HOME: "/home/u" };
    for (const ok of ["json", "pretty", "PRETTY", ""]) {
      assert.doesNotThrow(() => loadConfig({ ...env, CDKTR_LOG_FORMAT: ok }, { dotEnv: false }));
    }
    assert.throws(
      () => loadConfig({ ...env, CDKTR_LOG_FORMAT: "xml" }, { dotEnv: false }),
      (e: unknown) => e instanceof ConfigError && /CDKTR_LOG_FORMAT: expected json or pretty/.test(e.message),
    );
  });

  it("lists every invalid variable, one readable line each", () => {
    assert.throws(
      () =>
        loadConfig(
          { CDKTR_PRINCIPAL_PORT: "70000", CDKTR_RUN_RETENTION_DAYS: "soon", CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS: "1.5" },
          { dotEnv: false },
        ),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.problems.length, 3);
        assert.match(e.problems[0] ?? "", /^CDKTR_PRINCIPAL_PORT: expected an integer from 0 to 65535.*got "70000"$/);
        assert.ok(e.problems.some((p) => p.startsWith("CDKTR_RUN_RETENTION_DAYS:")));
        assert.ok(e.problems.some((p) => p.startsWith("CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS:")));
        return true;
      },
    );
  });

  it("CDKTR_AUTH=off is accepted on a loopback host only, and CDKTR_KEYS_DIR expands like the other paths", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) {
      const c = loadConfig(
        { HOME: "/h", CDKTR_AUTH: "OFF", CDKTR_PRINCIPAL_HOST: host },
        { cwd: "/srv", dotEnv: false },
      );
      assert.equal(c.auth, false, host);
    }
    assert.equal(loadConfig({ HOME: "/h", CDKTR_KEYS_DIR: "$HOME/k" }, { dotEnv: false }).keysDir, "/h/k");
    assert.equal(
      loadConfig({ HOME: "/h", CDKTR_KEYS_DIR: "keys" }, { cwd: "/srv", dotEnv: false }).keysDir,
      "/srv/keys",
    );
    for (const host of ["0.0.0.0", "10.0.0.5", "cdktr.example", "128.0.0.1", "127.0.0.256"]) {
      assert.throws(
        () => loadConfig({ CDKTR_AUTH: "off", CDKTR_PRINCIPAL_HOST: host }, { dotEnv: false }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, host);
          assert.match(e.message, /refusing to start without authentication on a non-loopback address/);
          assert.match(e.problems[0] ?? "", new RegExp(`CDKTR_PRINCIPAL_HOST is "${host.replace(/\./g, "\\.")}"`));
          assert.match(e.problems[0] ?? "", /Remove CDKTR_AUTH=off/);
          return true;
        },
      );
    }
    assert.throws(
      () => loadConfig({ CDKTR_AUTH: "maybe" }, { dotEnv: false }),
      (e: unknown) => e instanceof ConfigError && /^CDKTR_AUTH: /.test(e.problems[0] ?? ""),
    );
  });
});

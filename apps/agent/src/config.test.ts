import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "@cdktr/protocol";
import { loadConfig } from "./config.js";

test("defaults: random id per start, data dir ~/.cdktr/agent/default", () => {
  const a = loadConfig({}, { hostname: "box", homedir: "/home/u" });
  const b = loadConfig({}, { hostname: "box", homedir: "/home/u" });
  assert.match(a.agentId, /^box-[0-9a-f]{8}$/);
  assert.notEqual(a.agentId, b.agentId);
  assert.equal(a.dataDir, "/home/u/.cdktr/agent/default");
  assert.equal(a.principalHost, "127.0.0.1");
  assert.equal(a.principalPort, 5561);
  assert.equal(a.logsPort, 5562);
  assert.deepEqual(a.principalEndpoints, ["tcp://127.0.0.1:5561"]);
  assert.equal(a.maxConcurrency, 5);
  assert.equal(a.heartbeatIntervalMs, 5000);
  assert.equal(a.shutdownGraceMs, 30_000);
  assert.equal(a.taskKillGraceMs, 5000);
  assert.equal(a.logSpoolMaxBytes, 256 * 1024 * 1024);
  assert.deepEqual(a.labels, []);
  assert.deepEqual(a.inheritEnv, []);
});

test("explicit id names the data dir; labels are split and trimmed", () => {
  const c = loadConfig(
    { CDKTR_AGENT_ID: "gpu-1", CDKTR_AGENT_LABELS: " gpu, linux,,gpu ", CDKTR_AGENT_MAX_CONCURRENCY: "2" },
    { homedir: "/h" },
  );
  assert.equal(c.agentId, "gpu-1");
  assert.equal(c.dataDir, "/h/.cdktr/agent/gpu-1");
  assert.deepEqual(c.labels, ["gpu", "linux"]);
  assert.equal(c.maxConcurrency, 2);
});

test("CDKTR_PRINCIPAL_ENDPOINTS lists several principals; a bad item is named", () => {
  const c = loadConfig({ CDKTR_PRINCIPAL_ENDPOINTS: "p1:5561, p2:6000", CDKTR_PRINCIPAL_HOST: "ignored" });
  assert.deepEqual(c.principalEndpoints, ["tcp://p1:5561", "tcp://p2:6000"]);
  assert.throws(
    () => loadConfig({ CDKTR_PRINCIPAL_ENDPOINTS: "p1:5561,p2" }),
    /CDKTR_PRINCIPAL_ENDPOINTS: expected host:port/,
  );
});

test("bad values give one readable line per variable", () => {
  assert.throws(
    () => loadConfig({ CDKTR_PRINCIPAL_PORT: "abc", CDKTR_AGENT_MAX_CONCURRENCY: "0", CDKTR_AGENT_ID: "has space" }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.problems.length, 3);
      assert.match(e.message, /CDKTR_PRINCIPAL_PORT: .*"abc"/);
      assert.match(e.message, /CDKTR_AGENT_MAX_CONCURRENCY/);
      assert.match(e.message, /CDKTR_AGENT_ID/);
      return true;
    },
  );
});

test("CDKTR_AGENT_INHERIT_ENV is a comma-separated allow-list of names and prefixes", () => {
  const c = loadConfig({ CDKTR_AGENT_INHERIT_ENV: " SECRET, AWS_*,,SECRET " }, { homedir: "/h" });
  assert.deepEqual(c.inheritEnv, ["SECRET", "AWS_*"]);
});

test("CDKTR_AGENT_INHERIT_ENV refuses what is not a variable name and the agent's own CDKTR_* settings", () => {
  for (const [value, problem] of [
    ["SECRET,AWS-REGION", /CDKTR_AGENT_INHERIT_ENV: `AWS-REGION` is not a variable name: .*AWS_\*/],
    ["*", /CDKTR_AGENT_INHERIT_ENV: `\*` is not a variable name/],
    [
      "PATH,CDKTR_KEY_FILE",
      /CDKTR_AGENT_INHERIT_ENV: `CDKTR_KEY_FILE`: the agent's own CDKTR_\* settings never reach a task/,
    ],
  ] as const) {
    assert.throws(
      () => loadConfig({ CDKTR_AGENT_INHERIT_ENV: value }),
      (e: unknown) => e instanceof ConfigError && problem.test(e.message),
      value,
    );
  }
});

test("containment: auto and the agent's own cgroup by default; cgroup, proc and a base path when set; bad ones named", () => {
  const d = loadConfig({}, { homedir: "/h" });
  assert.equal(d.containment, "auto");
  assert.equal(d.cgroupBase, null);
  const c = loadConfig(
    { CDKTR_AGENT_CONTAINMENT: "proc", CDKTR_AGENT_CGROUP_BASE: "/sys/fs/cgroup/cdktr" },
    { homedir: "/h" },
  );
  assert.equal(c.containment, "proc");
  assert.equal(c.cgroupBase, "/sys/fs/cgroup/cdktr");
  assert.throws(
    () => loadConfig({ CDKTR_AGENT_CONTAINMENT: "docker", CDKTR_AGENT_CGROUP_BASE: "cdktr" }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.problems.length, 2);
      assert.match(e.message, /CDKTR_AGENT_CONTAINMENT/);
      assert.match(e.message, /CDKTR_AGENT_CGROUP_BASE.*absolute path/);
      return true;
    },
  );
});

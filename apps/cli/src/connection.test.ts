import { test } from "node:test";
import assert from "node:assert/strict";
import { resolvePrincipal } from "./connection.js";
import { CliError } from "./errors.js";

test("defaults, environment, then --principal", () => {
  assert.deepEqual(resolvePrincipal(undefined, {}), {
    host: "127.0.0.1",
    port: 5561,
    publishPort: 5563,
    display: "127.0.0.1:5561",
    publishEndpoint: "tcp://127.0.0.1:5563",
    endpoints: ["tcp://127.0.0.1:5561"],
  });
  const env = { CDKTR_PRINCIPAL_HOST: "principal", CDKTR_PRINCIPAL_PORT: "6000", CDKTR_LOGS_PUBLISHING_PORT: "6002" };
  assert.equal(resolvePrincipal(undefined, env).display, "principal:6000");
  assert.equal(resolvePrincipal(undefined, env).publishEndpoint, "tcp://principal:6002");
  assert.equal(resolvePrincipal("box:7000", env).display, "box:7000");
  assert.equal(resolvePrincipal("box", env).display, "box:6000");
  assert.equal(resolvePrincipal(":7001", env).display, "principal:7001");
  assert.equal(resolvePrincipal("[::1]:7002", {}).publishEndpoint, "tcp://[::1]:5563");
  // A bind-everything address is reached through loopback.
  assert.equal(resolvePrincipal(undefined, { CDKTR_PRINCIPAL_HOST: "0.0.0.0" }).host, "127.0.0.1");
});

test("CDKTR_PRINCIPAL_ENDPOINTS: several principals, unless --principal names one", () => {
  const env = { CDKTR_PRINCIPAL_ENDPOINTS: "p1:5561, p2:6000", CDKTR_PRINCIPAL_HOST: "ignored" };
  const t = resolvePrincipal(undefined, env);
  assert.deepEqual(t.endpoints, ["tcp://p1:5561", "tcp://p2:6000"]);
  assert.equal(t.display, "p1:5561,p2:6000");
  assert.equal(t.host, "p1");
  assert.equal(t.publishEndpoint, "tcp://p1:5563");
  assert.deepEqual(resolvePrincipal("box:7000", env).endpoints, ["tcp://box:7000"]);
  assert.throws(
    () => resolvePrincipal(undefined, { CDKTR_PRINCIPAL_ENDPOINTS: "p1:5561,p2" }),
    (e: unknown) =>
      e instanceof CliError && e.exitCode === 2 && /CDKTR_PRINCIPAL_ENDPOINTS: expected host:port/.test(e.message),
  );
});

test("malformed addresses are usage errors", () => {
  for (const flag of ["box:abc", "box:0", "box:70000", ""]) {
    assert.throws(
      () => resolvePrincipal(flag, {}),
      (e: unknown) => e instanceof CliError && e.exitCode === 2,
      flag,
    );
  }
  assert.throws(
    () => resolvePrincipal(undefined, { CDKTR_PRINCIPAL_PORT: "x" }),
    /CDKTR_PRINCIPAL_PORT: expected a port/,
  );
});

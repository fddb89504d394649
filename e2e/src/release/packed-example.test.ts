/**
 * Proof that a project OUTSIDE this repository can use `@cdktr/events`: pack `@cdktr/protocol`
 * and `@cdktr/events` with `npm pack`, install the tarballs into a temp project holding
 * examples/listeners/http-trigger, compile it with the workspace's tsc, run it against a real
 * principal, and trigger runs over HTTP.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PrincipalClient } from "@cdktr/protocol";
import { freePorts, killAllServices, makeTempDir, removeTempDirs, spawnService } from "@cdktr/test-utils";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PRINCIPAL_MAIN = join(ROOT, "apps/principal/dist/main.js");
const EXAMPLE = join(ROOT, "examples/listeners/http-trigger");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

const HELLO = `name: Hello\ntasks:\n  hello:\n    name: Hello\n    config: !Subprocess\n      cmd: echo\n      args: ["hello"]\n`;

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" },
  });
}

describe("the example listener, installed from packed tarballs", () => {
  let project = "";
  before(() => {
    const tmp = makeTempDir("cdktr-packed-");
    const tarballs = join(tmp, "tarballs");
    mkdirSync(tarballs);
    for (const pkg of ["packages/protocol", "packages/events"])
      run("npm", ["pack", "--pack-destination", tarballs], join(ROOT, pkg));
    const files = readdirSync(tarballs).filter((f) => f.endsWith(".tgz"));
    const protocolTgz = files.find((f) => f.startsWith("cdktr-protocol-"));
    const eventsTgz = files.find((f) => f.startsWith("cdktr-events-"));
    assert.ok(protocolTgz !== undefined && eventsTgz !== undefined, `tarballs: ${files.join(", ")}`);
    // the events tarball carries no test files and pins @cdktr/protocol exactly
    const listing = run("tar", ["-tzf", join(tarballs, eventsTgz)], tmp);
    assert.ok(listing.includes("package/dist/index.js"));
    assert.ok(!/\.test\.js/.test(listing), "no compiled tests in the tarball");
    const eventsPkg = JSON.parse(readFileSync(join(ROOT, "packages/events/package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const protocolPkg = JSON.parse(readFileSync(join(ROOT, "packages/protocol/package.json"), "utf8")) as {
      version: string;
    };
    assert.equal(eventsPkg.dependencies["@cdktr/protocol"], protocolPkg.version);

    project = join(tmp, "project");
    cpSync(EXAMPLE, project, {
      recursive: true,
      filter: (src) => !/node_modules|dist/.test(src.slice(EXAMPLE.length)),
    });
    const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as Record<string, unknown>;
    // the local tarballs stand in for the registry; typescript comes from the workspace
    pkg.dependencies = {
      "@cdktr/events": `file:../tarballs/${eventsTgz}`,
      "@cdktr/protocol": `file:../tarballs/${protocolTgz}`,
    };
    pkg.devDependencies = { "@types/node": (pkg.devDependencies as Record<string, string>)["@types/node"] ?? "^20" };
    writeFileSync(join(project, "package.json"), JSON.stringify(pkg, null, 2));
    run(
      "npm",
      ["install", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
      project,
    );
    run(process.execPath, [TSC, "-p", "tsconfig.json"], project);
  });

  after(async () => {
    await killAllServices();
    removeTempDirs();
  });

  it("triggers a run and gets a run id; an unknown workflow is success: false with a clear error", async () => {
    const home = makeTempDir("cdktr-packed-home-");
    const workflowDir = join(home, "workflows");
    mkdirSync(workflowDir);
    writeFileSync(join(workflowDir, "hello.yml"), HELLO);
    const [api = 0, logs = 0, publish = 0, http = 0] = await freePorts(4);
    const env = {
      HOME: home,
      CDKTR_PRINCIPAL_PORT: String(api),
      CDKTR_LOGS_LISTENING_PORT: String(logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(publish),
      CDKTR_WORKFLOW_DIR: workflowDir,
      CDKTR_DB_PATH: join(home, "cdktr.db"),
    };
    await spawnService({ script: PRINCIPAL_MAIN, name: "principal", cwd: home, env });
    const listener = await spawnService({
      script: join(project, "dist/main.js"),
      name: "http-trigger",
      cwd: project,
      env: { ...env, LISTENER_PORT: String(http) },
    });

    const ok = await fetch(`http://127.0.0.1:${http}/trigger/hello`, { method: "POST" });
    assert.equal(ok.status, 200);
    const result = (await ok.json()) as {
      success: boolean;
      runId: string | null;
      duplicate: boolean;
      skipped: boolean;
    };
    assert.equal(result.success, true);
    assert.equal(typeof result.runId, "string");
    const principal = new PrincipalClient({ port: api });
    try {
      const { run: record } = await principal.getRun(result.runId ?? "");
      assert.equal(record.workflowId, "hello");
      assert.equal(record.source, "http-trigger");
    } finally {
      principal.close();
    }

    const missing = await fetch(`http://127.0.0.1:${http}/trigger/no-such-workflow`, { method: "POST" });
    assert.equal(missing.status, 404);
    const refused = (await missing.json()) as {
      success: boolean;
      runId: string | null;
      error?: { code: string; message: string; retryable: boolean };
    };
    assert.equal(refused.success, false);
    assert.equal(refused.runId, null);
    assert.equal(refused.error?.code, "WORKFLOW_NOT_FOUND");
    assert.equal(refused.error?.retryable, false);
    assert.match(refused.error?.message ?? "", /no-such-workflow/);

    const stopped = await listener.stop("SIGTERM");
    assert.equal(stopped.code, 0, "SIGTERM stops the listener cleanly");
  });
});

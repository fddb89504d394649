/**
 * Proof that the published packages work OUTSIDE this repository: every publishable workspace
 * (not `private`) is packed with `npm pack` (by `npm run release:pack`, or by `.ci/run`'s packing
 * step, which passes its directory as `CDKTR_PACK_DIR`), and ALL the tarballs are installed with
 * one `npm install` into a temp copy of examples/listeners/http-trigger (better-sqlite3 from a
 * local prebuild: {@link localBetterSqlitePrebuild}). Then the installed `cdktr` reports its version, validates examples/workflows,
 * runs a principal and an agent that complete a run, and the example listener, compiled with the
 * workspace's tsc, triggers runs over HTTP against the installed principal.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PrincipalClient, clientKeyOf, readKeyFile } from "@cdktr/protocol";
import { freePorts, killAllServices, makeTempDir, removeTempDirs, spawnService } from "@cdktr/test-utils";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const EXAMPLE = join(ROOT, "examples/listeners/http-trigger");
const TSC = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc");

/** What is published: the libraries and the apps (the CLI, which carries `cdktr`, needs them all). */
const PUBLISHABLE = [
  "@cdktr/agent",
  "@cdktr/cli",
  "@cdktr/dashboard",
  "@cdktr/events",
  "@cdktr/listeners",
  "@cdktr/principal",
  "@cdktr/protocol",
  "@cdktr/scheduler",
  "@cdktr/workflow",
];

const HELLO = `name: Hello\ntasks:\n  hello:\n    name: Hello\n    config: !Subprocess\n      cmd: echo\n      args: ["hello"]\n`;

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  workspaces?: string[];
  scripts?: Record<string, string>;
}

const readJson = (file: string): Manifest => JSON.parse(readFileSync(file, "utf8")) as Manifest;

/** Every workspace of the root package.json: its folder and manifest. */
function workspaces(): { dir: string; pkg: Manifest }[] {
  const dirs = (readJson(join(ROOT, "package.json")).workspaces ?? []).flatMap((w) =>
    w.endsWith("/*")
      ? readdirSync(join(ROOT, w.slice(0, -2))).map((d) => join(ROOT, w.slice(0, -2), d))
      : [join(ROOT, w)],
  );
  return dirs.map((dir) => ({ dir, pkg: readJson(join(dir, "package.json")) }));
}

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): string {
  return execFileSync(cmd, args, {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      npm_config_update_notifier: "false",
      npm_config_fund: "false",
      npm_config_audit: "false",
      ...env,
    },
  });
}

/**
 * A user on linux-x64 gets better-sqlite3's prebuilt binary (its install script runs
 * prebuild-install, which downloads it from the project's GitHub releases). This machine reaches
 * the npm registry only, so without help the script falls back to compiling SQLite (1.5-2 min of
 * the suite). The binary the workspace's own install produced stands in for the download: same
 * version (pinned with `overrides`), same Node ABI, handed to prebuild-install as a local prebuild
 * (`npm_config_better_sqlite3_local_prebuilds`); the install script still runs and unpacks it.
 */
function localBetterSqlitePrebuild(dir: string): { version: string; env: Record<string, string> } {
  const moduleDir = dirname(
    createRequire(join(ROOT, "apps/principal/package.json")).resolve("better-sqlite3/package.json"),
  );
  const { version } = readJson(join(moduleDir, "package.json"));
  const file = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  mkdirSync(dir, { recursive: true });
  run("tar", ["-czf", join(dir, file), "build/Release/better_sqlite3.node"], moduleDir);
  return { version, env: { npm_config_better_sqlite3_local_prebuilds: dir } };
}

describe("the published packages, packed and installed outside the repository", () => {
  let project = "";
  let cdktr = "";
  const version = readJson(join(ROOT, "apps/cli/package.json")).version;

  before(
    () => {
      const publishable = workspaces().filter((w) => w.pkg.private !== true);
      assert.deepEqual(publishable.map((w) => w.pkg.name).sort(), PUBLISHABLE, "the workspaces not marked private");
      const changesets = JSON.parse(readFileSync(join(ROOT, ".changeset/config.json"), "utf8")) as {
        fixed: string[][];
      };
      assert.deepEqual([...(changesets.fixed[0] ?? [])].sort(), PUBLISHABLE, "one fixed changesets group, all of them");
      const packScript = readJson(join(ROOT, "package.json")).scripts?.["release:pack"] ?? "";
      assert.deepEqual(
        [...packScript.matchAll(/-w (\S+)/g)].map((m) => m[1]).sort(),
        PUBLISHABLE,
        "npm run release:pack",
      );

      const tmp = makeTempDir("cdktr-packed-");
      // .ci/run packs in its own step and says where; otherwise pack here
      const packDir = process.env.CDKTR_PACK_DIR ?? "";
      const tarballs = packDir === "" ? join(tmp, "tarballs") : resolve(packDir);
      if (packDir === "") {
        mkdirSync(tarballs);
        run("npm", ["run", "release:pack", "--", "--pack-destination", tarballs], ROOT);
      }
      const files = readdirSync(tarballs).filter((f) => f.endsWith(".tgz"));
      const versions = new Map(workspaces().map((w) => [w.pkg.name, w.pkg.version]));
      const deps: Record<string, string> = {};
      for (const { dir, pkg } of publishable) {
        const tgz = `${pkg.name.replace("@", "").replace("/", "-")}-${pkg.version}.tgz`;
        assert.ok(files.includes(tgz), `${tgz} in ${tarballs}: ${files.join(", ")}`);
        deps[pkg.name] = `file:${join(tarballs, tgz)}`;
        // each tarball carries its build and no compiled tests, and pins @cdktr/* exactly
        const listing = run("tar", ["-tzf", join(tarballs, tgz)], tmp);
        assert.ok(listing.includes("package/dist/index.js"), `${tgz} has dist/index.js`);
        if (dir.includes("/apps/") && pkg.name !== "@cdktr/cli")
          assert.ok(listing.includes("package/dist/main.js"), `${tgz} has dist/main.js`);
        if (pkg.name === "@cdktr/cli") assert.ok(listing.includes("package/bin/cdktr.js"), `${tgz} has the cdktr bin`);
        assert.ok(!/\.test\.js/.test(listing), `no compiled tests in ${tgz}`);
        for (const [dep, range] of Object.entries(pkg.dependencies ?? {}))
          if (dep.startsWith("@cdktr/")) assert.equal(range, versions.get(dep), `${pkg.name} pins ${dep} exactly`);
      }

      project = join(tmp, "project");
      cpSync(EXAMPLE, project, {
        recursive: true,
        filter: (src) => !/node_modules|dist/.test(src.slice(EXAMPLE.length)),
      });
      const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as Record<string, unknown>;
      // the local tarballs stand in for the registry (all of them, one install); typescript comes from the workspace
      pkg.dependencies = deps;
      pkg.devDependencies = { "@types/node": (pkg.devDependencies as Record<string, string>)["@types/node"] ?? "^20" };
      const prebuild = localBetterSqlitePrebuild(join(tmp, "prebuilds"));
      pkg.overrides = { "better-sqlite3": prebuild.version };
      writeFileSync(join(project, "package.json"), JSON.stringify(pkg, null, 2));
      // install scripts run, as for a user (better-sqlite3's unpacks its prebuilt binary)
      run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], project, prebuild.env);
      assert.ok(
        !existsSync(join(project, "node_modules/better-sqlite3/build/Release/obj.target")),
        "better-sqlite3 was unpacked from the local prebuild, not compiled (its install script found no prebuild)",
      );
      run(process.execPath, [TSC, "-p", "tsconfig.json"], project);
      cdktr = join(project, "node_modules/@cdktr/cli/bin/cdktr.js");
    },
    { timeout: 600_000 },
  );

  after(async () => {
    await killAllServices();
    removeTempDirs();
  });

  /** Start an installed app with `cdktr start <app>` in its own temp HOME. */
  async function startInstalled(app: "principal" | "agent", env: Record<string, string>) {
    const home = makeTempDir(`cdktr-packed-${app}-`);
    return spawnService({
      script: cdktr,
      args: ["start", app],
      name: `installed ${app}`,
      cwd: home,
      env: { HOME: home, ...env },
    });
  }

  /**
   * An installed principal in its own temp HOME; its keys directory is shared through
   * `CDKTR_KEYS_DIR` in `env`, so that the installed agent, CLI and listener (each in its own
   * HOME, like processes on other machines of one deployment) find their local keys.
   */
  async function installedPrincipal(): Promise<{ env: Record<string, string>; api: number; keysDir: string }> {
    const home = makeTempDir("cdktr-packed-home-");
    const workflowDir = join(home, "workflows");
    mkdirSync(workflowDir);
    writeFileSync(join(workflowDir, "hello.yml"), HELLO);
    const [api = 0, logs = 0, publish = 0] = await freePorts(3);
    const keysDir = join(home, "keys");
    const env = {
      CDKTR_PRINCIPAL_PORT: String(api),
      CDKTR_LOGS_LISTENING_PORT: String(logs),
      CDKTR_LOGS_PUBLISHING_PORT: String(publish),
      CDKTR_KEYS_DIR: keysDir,
    };
    await startInstalled("principal", {
      ...env,
      CDKTR_WORKFLOW_DIR: workflowDir,
      CDKTR_DB_PATH: join(home, "cdktr.db"),
    });
    return { env, api, keysDir };
  }

  it("the installed cdktr prints the packages' version", () => {
    assert.equal(run(process.execPath, [cdktr, "--version"], project).trim(), version);
  });

  it("the installed cdktr validate accepts examples/workflows and names file:line:column of a broken file", () => {
    const examples = join(ROOT, "examples/workflows");
    const count = readdirSync(examples).filter((f) => f.endsWith(".yml")).length;
    assert.match(
      run(process.execPath, [cdktr, "validate", examples], project),
      new RegExp(`ok: ${count} workflows valid`),
    );
    const broken = makeTempDir("cdktr-packed-broken-");
    writeFileSync(join(broken, "bad.yml"), "name: Bad\ntasks:\n  a:\n    name: A\n    dependencies: []\n");
    const r = spawnSync(process.execPath, [cdktr, "validate", broken], { cwd: project, encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bad\.yml:5:5: .*unknown key `dependencies`/);
  });

  it("the installed principal and agent complete a run: cdktr run hello --wait exits 0", async () => {
    const { env } = await installedPrincipal();
    await startInstalled("agent", { ...env, CDKTR_AGENT_FETCH_WAIT_MS: "1000" });
    const r = spawnSync(process.execPath, [cdktr, "run", "hello", "--wait"], {
      cwd: project,
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      timeout: 60_000,
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /COMPLETED/);
    await killAllServices();
  });

  it("triggers a run and gets a run id; an unknown workflow is success: false with a clear error", async () => {
    const { env, api, keysDir } = await installedPrincipal();
    const [http = 0] = await freePorts(1);
    const home = makeTempDir("cdktr-packed-listener-");
    const listener = await spawnService({
      script: join(project, "dist/main.js"),
      name: "http-trigger",
      cwd: project,
      env: { HOME: home, ...env, LISTENER_PORT: String(http) },
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
    const key = clientKeyOf(readKeyFile(join(keysDir, "local-operator.json")));
    const principal = new PrincipalClient({ port: api, key });
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

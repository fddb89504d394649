/**
 * Every TypeScript block of the documentation compiles with the workspace's tsc against the real
 * `@cdktr/*` packages (fragments inside their templates), and every complete program runs: the
 * listeners against a real principal (they trigger the runs they say), the embedding examples
 * start and stop the real apps.
 */
import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunRecord } from "@cdktr/protocol";
import {
  cleanup,
  freePorts,
  makeTempDir,
  type PrincipalFixture,
  killAllServices,
  spawnService,
  startPrincipal,
  waitFor,
} from "@cdktr/test-utils";
import { allBlocks, type CodeBlock, isProgram, where } from "./markdown.js";
import { basePath, runToEnd } from "./run-process.js";

import { type CompiledProject, compileBlocks } from "./ts-project.js";

const blocks = allBlocks().filter((b) => b.lang === "ts");
const jsBlocks = allBlocks().filter((b) => b.lang === "js");

const task = (cmd: string): string => `tasks:\n  main:\n    name: Main\n    config: !Subprocess { cmd: ${cmd} }\n`;
const REFRESH = `name: Refresh reports\n${task("echo")}`;
const HOURLY = `name: Hourly ETL\nparams:\n  full: { type: boolean, default: true }\n${task("echo")}`;
const HELLO = `name: Hello\n${task("echo")}`;

/** The README tour's own workflow file (`workflows/greet.yml`). */
function greetYaml(): string {
  const b = allBlocks().find((x) => x.file === "README.md" && x.lang === "yaml" && x.code.includes("name: Greet"));
  assert.ok(b !== undefined, "README.md has the greet workflow");
  return b.code;
}

/** Start a listener program, wait for the run it triggers, then stop it with SIGTERM (exit 0). */
async function listenerTriggers(js: string, principal: PrincipalFixture, workflowId: string): Promise<RunRecord> {
  const listener = await spawnService({ script: js, name: workflowId, env: principal.clientEnv, waitReady: false });
  const run = await waitFor(async () => (await principal.client.listRuns({ workflowId })).runs[0], {
    timeoutMs: 20_000,
    what: `a run of ${workflowId}. Output:\n${listener.lines.join("\n")}`,
  });
  const stopped = await listener.stop("SIGTERM");
  assert.equal(stopped.code, 0, `SIGTERM stops it cleanly. Output:\n${listener.lines.join("\n")}`);
  return run;
}

/** Settings of a principal run by an embedding example: free ports, a temp home and workflows. */
async function principalEnv(): Promise<{ home: string; env: Record<string, string> }> {
  const home = makeTempDir("cdktr-doc-embed-");
  mkdirSync(join(home, "workflows"));
  writeFileSync(join(home, "workflows", "hello.yml"), HELLO);
  const [api = 0, logs = 0, publish = 0] = await freePorts(3);
  const env = {
    PATH: basePath(),
    HOME: home,
    CDKTR_PRINCIPAL_PORT: String(api),
    CDKTR_LOGS_LISTENING_PORT: String(logs),
    CDKTR_LOGS_PUBLISHING_PORT: String(publish),
    CDKTR_WORKFLOW_DIR: join(home, "workflows"),
    CDKTR_DB_PATH: join(home, "cdktr.db"),
  };
  return { home, env };
}

/** Run a program to its end in `cwd` with `env`; it must exit 0 within 30 s. */
async function runsToExit0(js: string, cwd: string, env: Record<string, string>): Promise<string> {
  const r = await runToEnd(process.execPath, [js], { env, cwd, timeoutMs: 30_000 });
  assert.equal(r.timedOut, false, `still running after 30 s:\n${r.stdout}${r.stderr}`);
  assert.equal(r.code, 0, `exit code ${String(r.code)}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

interface Scenario {
  file: string;
  /** Text that identifies the block in its file. */
  contains: string;
  title: string;
  run(js: string): Promise<void>;
}

const SCENARIOS: Scenario[] = [
  {
    file: "README.md",
    contains: "class Every10s",
    title: "README.md: the tour's listener triggers the tour's greet workflow with who=timer",
    async run(js) {
      const principal = await startPrincipal({ workflows: { "greet.yml": greetYaml() } });
      const run = await listenerTriggers(js, principal, "greet");
      assert.deepEqual(run.params, { who: "timer" });
      assert.equal(run.source, "Every10s");
      assert.equal((await principal.stop()).code, 0);
    },
  },
  {
    file: "docs/event-listeners.md",
    contains: "class Every10Minutes",
    title: "docs/event-listeners.md: the smallest listener logs a refused trigger, then triggers reports.refresh",
    async run(js) {
      const principal = await startPrincipal({ workflows: { "hello.yml": HELLO } });
      const refused = await spawnService({ script: js, name: "refused", env: principal.clientEnv, waitReady: false });
      const warning = await refused.waitForLine((_l, j) => String(j?.message).startsWith("trigger failed"));
      assert.match(warning, /"component":"every-10-min"/);
      assert.match(warning, /"code":"WORKFLOW_NOT_FOUND"/);
      assert.equal((await refused.stop("SIGTERM")).code, 0);

      mkdirSync(join(principal.workflowDir, "reports"));
      writeFileSync(join(principal.workflowDir, "reports", "refresh.yml"), REFRESH);
      await waitFor(() => principal.client.getWorkflow("reports.refresh"), { what: "reports.refresh loaded" });
      const run = await listenerTriggers(js, principal, "reports.refresh");
      assert.equal(run.source, "Every10Minutes");
      assert.equal((await principal.stop()).code, 0);
    },
  },
  {
    file: "packages/events/README.md",
    contains: "class Hourly",
    title: "packages/events/README.md: the Hourly listener triggers etl.hourly with full=false",
    async run(js) {
      const principal = await startPrincipal({ workflows: { "etl/hourly.yml": HOURLY } });
      const run = await listenerTriggers(js, principal, "etl.hourly");
      assert.deepEqual(run.params, { full: false });
      assert.equal(run.source, "Hourly");
      assert.equal((await principal.stop()).code, 0);
    },
  },
  {
    file: "apps/principal/README.md",
    contains: "createPrincipal(loadConfig(process.env)",
    title: "apps/principal/README.md: embedding starts a principal on the configured database and stops it",
    async run(js) {
      const { home, env } = await principalEnv();
      await runsToExit0(js, home, env);
      assert.ok(existsSync(join(home, "cdktr.db")), "the database was created where CDKTR_DB_PATH says");
    },
  },
  {
    file: "apps/scheduler/README.md",
    contains: "createScheduler(loadConfig(process.env)",
    title: "apps/scheduler/README.md: embedding starts a scheduler against a principal and stops it",
    async run(js) {
      const principal = await startPrincipal({ workflows: { "hello.yml": HELLO } });
      await runsToExit0(js, principal.home, { PATH: basePath(), HOME: principal.home, ...principal.clientEnv });
      assert.equal((await principal.stop()).code, 0);
    },
  },
  {
    file: "apps/listeners/README.md",
    contains: "createListeners(loadConfig(process.env)",
    title: "apps/listeners/README.md: embedding starts the listeners of a YAML file and stops them",
    async run(js) {
      const principal = await startPrincipal({ workflows: { "hello.yml": HELLO } });
      const config = join(principal.home, "listeners.yml");
      writeFileSync(config, "listeners:\n  - type: webhook\n    port: 0\n");
      const env = { PATH: basePath(), HOME: principal.home, ...principal.clientEnv, CDKTR_LISTENERS_CONFIG: config };
      await runsToExit0(js, principal.home, env);
      assert.equal((await principal.stop()).code, 0);
    },
  },
  {
    file: "packages/protocol/README.md",
    contains: "const Config = z.object(",
    title: "packages/protocol/README.md: the config example reads its variables, defaults and refuses a bad value",
    async run(js) {
      const home = makeTempDir("cdktr-doc-config-");
      const out = await runsToExit0(js, home, { PATH: basePath(), HOME: home, CDKTR_PRINCIPAL_PORT: "6001" });
      assert.equal(out.trim(), "6001 5");
      const bad = await runToEnd(process.execPath, [js], {
        env: { PATH: basePath(), HOME: home, CDKTR_AGENT_MAX_CONCURRENCY: "0" },
        cwd: home,
      });
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /CDKTR_AGENT_MAX_CONCURRENCY: expected an integer >= 1/);
    },
  },
  {
    file: "packages/protocol/README.md",
    contains: "await runService({",
    title: "packages/protocol/README.md: the runService example is a principal: ready line, SIGTERM exits 0",
    async run(js) {
      const { home, env } = await principalEnv();
      const service = await spawnService({ script: js, name: "runService example", cwd: home, env });
      assert.match(
        String((service.ready.endpoints as { api?: unknown } | undefined)?.api),
        /^tcp:\/\/127\.0\.0\.1:\d+$/,
      );
      const stopped = await service.stop("SIGTERM");
      assert.equal(stopped.code, 0, service.lines.join("\n"));
    },
  },
  {
    file: "packages/test-utils/README.md",
    contains: 'test("a run completes"',
    title: "packages/test-utils/README.md: the fixture example is a node:test file that passes",
    async run(js) {
      const home = makeTempDir("cdktr-doc-fixture-");
      const r = await runToEnd(process.execPath, ["--test", "--test-reporter=tap", js], {
        env: { PATH: basePath(), HOME: home },
        cwd: home,
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^# pass 1$/m);
    },
  },
];

const matches = (s: Scenario, b: CodeBlock): boolean => b.file === s.file && b.code.includes(s.contains);

describe("TypeScript and JavaScript blocks", () => {
  let project: CompiledProject;
  before(() => {
    project = compileBlocks(blocks);
  });
  // Each scenario's processes go after it; temp dirs (the compiled blocks among them) at the end.
  afterEach(() => killAllServices());
  after(() => cleanup());

  it("compile with the workspace's tsc against the real @cdktr packages", () => {
    assert.ok(blocks.length >= 10, `found ${blocks.length} TypeScript blocks`);
    assert.deepEqual(project.errors, []);
  });

  it("JavaScript blocks pass node --check", async () => {
    for (const b of jsBlocks) {
      const file = join(makeTempDir("cdktr-doc-js-"), "block.mjs");
      writeFileSync(file, b.code);
      const r = await runToEnd(process.execPath, ["--check", file], { env: { PATH: basePath() } });
      assert.equal(r.code, 0, `${where(b)}: ${r.stderr}`);
    }
  });

  it("every complete program is run by exactly one scenario below, and every scenario finds its block", () => {
    const programs = [...blocks, ...jsBlocks].filter(isProgram);
    for (const b of programs) {
      const n = SCENARIOS.filter((s) => matches(s, b)).length;
      assert.equal(n, 1, `${where(b)} is a complete program run by ${n} scenarios: add one, or mark it a fragment`);
    }
    for (const s of SCENARIOS) {
      const found = blocks.filter((b) => matches(s, b));
      assert.equal(found.length, 1, `${s.title}: ${found.length} blocks in ${s.file} contain "${s.contains}"`);
      assert.ok(found[0] !== undefined && isProgram(found[0]), `${s.title}: its block is a complete program`);
    }
  });

  for (const s of SCENARIOS) {
    it(s.title, { timeout: 90_000 }, async () => {
      assert.deepEqual(project.errors, [], "the blocks compile");
      const block = blocks.find((b) => matches(s, b));
      const js = block === undefined ? undefined : project.outputs.get(block);
      assert.ok(js !== undefined && existsSync(js), `compiled ${s.file} block`);
      await s.run(js);
    });
  }
});

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, utimesSync, writeFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { WorkflowDefinitionSchema } from "@cdktr/protocol";
import { formatLoadError, loadWorkflowDir, WorkflowDirectory } from "../index.js";

// Fixtures stay in src/: from dist/test/ that is ../../src/test/fixtures.
const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(here, "..", "..", "src", "test", "fixtures");
const EXAMPLES = join(here, "..", "..", "..", "..", "examples", "workflows");

const wf = (name: string, echo = "hi"): string =>
  `name: ${name}\ntasks:\n  a:\n    name: A\n    config: !Subprocess {cmd: echo, args: [${echo}]}\n`;

function write(dir: string, rel: string, text: string, ageSeconds = 0): void {
  const p = join(dir, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  if (ageSeconds > 0) {
    const t = new Date(Date.now() - ageSeconds * 1000);
    utimesSync(p, t, t);
  }
}

after(() => removeTempDirs());

describe("files shaped like the original's examples", () => {
  it("all load, with the original's 6-field crons, start_time, UvPython, fan-out and fan-in", async () => {
    const r = await loadWorkflowDir(join(FIXTURES, "original"));
    assert.deepEqual(r.errors.map(formatLoadError), []);
    assert.deepEqual([...r.workflows.keys()].sort(), [
      "fan-in-no-start",
      "init-example",
      "multi-cmd",
      "no-cron",
      "simple-cmd",
      "simple-uvpy",
    ]);
    for (const w of r.workflows.values()) WorkflowDefinitionSchema.parse(w);

    const simple = r.workflows.get("simple-cmd");
    assert.equal(simple?.schedule, "*/2 * * * * *");
    assert.equal(simple?.startTime, "2025-01-20T12:30:00.000Z");
    assert.deepEqual(simple?.tasks.task1?.config, { type: "subprocess", cmd: "echo", args: ["Hello", "World"] });

    const multi = r.workflows.get("multi-cmd");
    assert.equal(multi?.schedule, "0 1 * * * *");
    assert.deepEqual(multi?.tasks.task3?.depends, ["task2"]);
    assert.deepEqual(multi?.tasks.task4?.depends, ["task2"]);

    const uv = r.workflows.get("simple-uvpy");
    assert.deepEqual(uv?.tasks.pandas?.config, {
      type: "uvPython",
      scriptPath: "./scripts/pandas_example.py",
      packages: ["pandas"],
      isUvProject: false,
      workingDirectory: "/tmp",
      uvPath: "uv",
    });
    assert.deepEqual(uv?.tasks.pandas?.depends, ["pwd"]);

    const fanIn = r.workflows.get("fan-in-no-start");
    assert.equal(fanIn?.startTime, null);
    assert.deepEqual(fanIn?.tasks.extract?.config, { type: "subprocess", cmd: "true", args: [] });
    assert.deepEqual(fanIn?.tasks.join?.depends, ["left", "right"]);

    assert.equal(r.workflows.get("no-cron")?.schedule, null);
  });

  it("the examples/workflows directory loads without errors or warnings", async () => {
    const r = await loadWorkflowDir(EXAMPLES);
    assert.deepEqual(r.errors.map(formatLoadError), []);
    assert.deepEqual(r.warnings.map(formatLoadError), []);
    for (const id of ["hello", "fail", "fan-in", "every-minute"]) assert.ok(r.workflows.has(id), id);
    assert.equal(r.workflows.get("every-minute")?.schedule, "0 * * * * *");
  });
});

describe("WorkflowDirectory", () => {
  it("loads recursively, ids from paths, ignores non-YAML and hidden files", async () => {
    const dir = makeTempDir();
    write(dir, "hello.yml", wf("Hello"));
    write(dir, "etl/daily.yaml", wf("Daily"));
    write(dir, "etl/deep/x.yml", wf("X"));
    write(dir, ".gitkeep", "");
    write(dir, "README", "not yaml");
    write(dir, "notes.txt", "name: [");
    write(dir, "etl/.gitkeep", "");
    write(dir, ".git/config.yml", "garbage: [");
    const r = await loadWorkflowDir(dir);
    assert.deepEqual(r.errors, []);
    assert.deepEqual([...r.workflows.keys()].sort(), ["etl.daily", "etl.deep.x", "hello"]);
    assert.equal(r.workflows.get("etl.daily")?.path, "etl/daily.yaml");
    assert.deepEqual([...r.changed].sort(), ["etl.daily", "etl.deep.x", "hello"]);
    assert.deepEqual(r.stats.files, 3);
  });

  it("one bad file never stops the others, and its error names the file", async () => {
    const dir = makeTempDir();
    write(dir, "good.yml", wf("Good"));
    write(
      dir,
      "bad.yml",
      "name: Bad\ntasks:\n  a:\n    name: A\n    depends: [b]\n    config: !Subprocess {cmd: echo}\n",
    );
    write(dir, "broken.yml", "name: [unclosed\n");
    const r = await loadWorkflowDir(dir);
    assert.deepEqual([...r.workflows.keys()], ["good"]);
    const msgs = r.errors.map(formatLoadError);
    assert.ok(
      msgs.some((m) => m.startsWith("bad.yml:5:15: tasks.a.depends[0]: task `a` depends on unknown task `b`")),
      msgs.join("\n"),
    );
    assert.ok(
      msgs.some((m) => /^broken\.yml:\d+:\d+: YAML syntax error/.test(m)),
      msgs.join("\n"),
    );
  });

  it("two files mapping to one id is an error naming both", async () => {
    const dir = makeTempDir();
    write(dir, "a.b.yml", wf("Dotted"));
    write(dir, "a/b.yml", wf("Nested"));
    write(dir, "c.yml", wf("C"));
    write(dir, "c.yaml", wf("C2"));
    const r = await loadWorkflowDir(dir);
    assert.deepEqual([...r.workflows.keys()], []);
    const msgs = r.errors.map(formatLoadError).sort();
    assert.deepEqual(msgs, [
      "a.b.yml: workflow id `a.b` comes from both a.b.yml and a/b.yml: rename one of them",
      "a/b.yml: workflow id `a.b` comes from both a/b.yml and a.b.yml: rename one of them",
      "c.yaml: workflow id `c` comes from both c.yaml and c.yml: rename one of them",
      "c.yml: workflow id `c` comes from both c.yml and c.yaml: rename one of them",
    ]);
  });

  it("a file name that is not a valid id is an error naming the file", async () => {
    const dir = makeTempDir();
    write(dir, "my flow.yml", wf("Spaces"));
    const r = await loadWorkflowDir(dir);
    assert.equal(r.workflows.size, 0);
    assert.match(formatLoadError(r.errors[0] as never), /^my flow\.yml: workflow id `my flow` .* rename the file/);
  });

  it("logs each problem once, when it appears, through the given logger", async () => {
    const dir = makeTempDir();
    write(dir, "bad.yml", "name: Bad\ntasks: {}\n", 60);
    const logged: Array<[string, string, Record<string, unknown> | undefined]> = [];
    const rec = (level: string) => (message: string, meta?: Record<string, unknown>) =>
      void logged.push([level, message, meta]);
    const wd = new WorkflowDirectory({
      dir,
      logger: { debug: rec("debug"), info: rec("info"), warn: rec("warn"), error: rec("error") },
    });
    await wd.scan();
    await wd.scan();
    const warns = logged.filter(([level]) => level === "warn");
    assert.equal(warns.length, 1);
    assert.equal(warns[0]?.[1], "invalid workflow file");
    assert.deepEqual(warns[0]?.[2]?.file, "bad.yml");
  });

  it("a missing directory gives a clear error and no workflows", async () => {
    const dir = join(makeTempDir(), "does-not-exist");
    const r = await loadWorkflowDir(dir);
    assert.equal(r.workflows.size, 0);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]?.message ?? "", /does not exist: create it or point CDKTR_WORKFLOW_DIR/);
  });

  it("incremental scans report changed and removed ids; an invalid edit keeps the last valid version", async () => {
    const dir = makeTempDir();
    write(dir, "a.yml", wf("A"), 60);
    write(dir, "b.yml", wf("B"), 60);
    const wd = new WorkflowDirectory({ dir });
    const first = await wd.scan();
    assert.deepEqual(first.changed.sort(), ["a", "b"]);
    assert.deepEqual(first.stats, { files: 2, read: 2, parsed: 2 });

    const again = await wd.scan();
    assert.deepEqual([again.changed, again.removed, again.errors], [[], [], []]);
    assert.deepEqual(again.stats, { files: 2, read: 0, parsed: 0 }, "unchanged files are not read again");

    // New mtime, same content: read and hashed, not parsed, not reported.
    write(dir, "a.yml", wf("A"));
    const touched = await wd.scan();
    assert.deepEqual(touched.changed, []);
    assert.equal(touched.stats.parsed, 0);

    // Real edit, plus a new file.
    write(dir, "a.yml", wf("A", "changed"));
    write(dir, "c.yml", wf("C"));
    const edited = await wd.scan();
    assert.deepEqual(edited.changed.sort(), ["a", "c"]);
    assert.deepEqual(edited.workflows.get("a")?.tasks.a?.config, {
      type: "subprocess",
      cmd: "echo",
      args: ["changed"],
    });
    const validHash = edited.workflows.get("a")?.hash;

    // Invalid edit: error reported, last valid definition kept, not "changed".
    write(dir, "a.yml", "name: A\ntasks:\n  a:\n    name: A\n    depnds: []\n    config: !Subprocess {cmd: echo}\n");
    const broken = await wd.scan();
    assert.deepEqual(broken.changed, []);
    assert.equal(broken.workflows.get("a")?.hash, validHash);
    assert.deepEqual(broken.errors.map(formatLoadError), [
      "a.yml:5:5: tasks.a.depnds: unknown key `depnds` (did you mean `depends`?); allowed here: name, description, depends, config, env, inherit_env, working_directory, timeout, retries",
    ]);
    // The error stays reported on later scans while the file is still bad.
    assert.equal((await wd.scan()).errors.length, 1);

    // Fixed again, and b deleted.
    write(dir, "a.yml", wf("A", "fixed"));
    rmSync(join(dir, "b.yml"));
    const fixed = await wd.scan();
    assert.deepEqual(fixed.changed, ["a"]);
    assert.deepEqual(fixed.removed, ["b"]);
    assert.deepEqual(fixed.errors, []);
    assert.deepEqual([...fixed.workflows.keys()].sort(), ["a", "c"]);
    assert.deepEqual([...wd.workflows.keys()].sort(), ["a", "c"]);
  });

  it("a file that was never valid is absent; the directory vanishing removes everything", async () => {
    const root = makeTempDir();
    const dir = join(root, "wf");
    write(dir, "ok.yml", wf("Ok"), 60);
    write(dir, "never.yml", "name: Never\ntasks: {}\n", 60);
    const wd = new WorkflowDirectory({ dir });
    const r = await wd.scan();
    assert.deepEqual([...r.workflows.keys()], ["ok"]);
    assert.equal(r.errors.length, 1);
    rmSync(dir, { recursive: true });
    const gone = await wd.scan();
    assert.deepEqual(gone.removed, ["ok"]);
    assert.equal(gone.workflows.size, 0);
    assert.equal(gone.errors.length, 1);
  });

  it("re-scanning 10,000 unchanged files reads none of them", async () => {
    const dir = makeTempDir();
    for (let i = 0; i < 10_000; i++) write(dir, `group${i % 50}/wf${i}.yml`, wf(`W${i}`), 60);
    const wd = new WorkflowDirectory({ dir });
    const first = await wd.scan();
    assert.equal(first.workflows.size, 10_000);
    assert.equal(first.errors.length, 0);
    write(dir, "group7/wf7.yml", wf("W7", "edited"), 30);
    const second = await wd.scan();
    assert.deepEqual(second.stats, { files: 10_000, read: 1, parsed: 1 });
    assert.deepEqual(second.changed, ["group7.wf7"]);
    assert.equal(readdirSync(join(dir, "group7")).length, 200);
  });
});

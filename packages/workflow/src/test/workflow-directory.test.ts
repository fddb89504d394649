import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
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

describe("WorkflowDirectory index file (restarts) and scans of given paths (watch events)", () => {
  it("a restart with an index reads and parses no unchanged file, and the same workflows come back", async () => {
    const dir = makeTempDir();
    const indexFile = join(makeTempDir(), "state", "index.json");
    for (let i = 0; i < 50; i++) write(dir, `g${i % 5}/w${i}.yml`, wf(`W${i}`), 60);
    write(dir, "bad.yml", "name: Bad\ntasks: {}\n", 60);
    const first = new WorkflowDirectory({ dir, indexFile });
    const a = await first.scan();
    await first.flushIndex();
    assert.equal(a.stats.parsed, 51);

    const restarted = new WorkflowDirectory({ dir, indexFile });
    const b = await restarted.scan();
    assert.deepEqual(b.stats, { files: 51, read: 0, parsed: 0 });
    assert.deepEqual([...b.workflows.entries()], [...a.workflows.entries()]);
    assert.deepEqual(b.errors, a.errors, "a bad file's error comes back from the index too");
    assert.deepEqual(
      b.changed.sort(),
      [...a.workflows.keys()].sort(),
      "the first scan reports every id, as without an index",
    );
  });

  it("a file edited while the principal was down is parsed again, even with its size and mtime put back", async () => {
    const dir = makeTempDir();
    const indexFile = join(makeTempDir(), "index.json");
    write(dir, "a.yml", wf("A", "one"), 60);
    write(dir, "b.yml", wf("B"), 60);
    const first = new WorkflowDirectory({ dir, indexFile });
    await first.scan();
    await first.flushIndex();
    // Same size, mtime restored (`cp -p`, `touch -r`): only the ctime (and the content) differ.
    write(dir, "a.yml", wf("A", "two"), 60);
    const b = await new WorkflowDirectory({ dir, indexFile }).scan();
    assert.deepEqual(b.stats, { files: 2, read: 1, parsed: 1 });
    assert.deepEqual(b.workflows.get("a")?.tasks.a?.config, { type: "subprocess", cmd: "echo", args: ["two"] });
  });

  it("a file read within seconds of its last write is read again, even when its stat did not change", async () => {
    const dir = makeTempDir();
    write(dir, "a.yml", wf("A"));
    const wd = new WorkflowDirectory({ dir });
    await wd.scan();
    // Racy: a same-size edit in the same timestamp tick would leave the stat as it was.
    assert.deepEqual((await wd.scan()).stats, { files: 1, read: 1, parsed: 0 });
  });

  it("an unusable index (torn, another build's, another directory's) means a full load, never an error", async () => {
    const dir = makeTempDir();
    write(dir, "a.yml", wf("A"), 60);
    const indexDir = makeTempDir();
    const good = join(indexDir, "good.json");
    const w = new WorkflowDirectory({ dir, indexFile: good });
    await w.scan();
    await w.flushIndex();
    const text = readFileSync(good, "utf8");
    const cases: Record<string, string> = {
      torn: text.slice(0, text.length / 2),
      otherBuild: text.replace(/"code":"[0-9a-f]+"/, '"code":"0000"'),
      otherDir: text.replace(JSON.stringify(dir), JSON.stringify(`${dir}-elsewhere`)),
      malformed: text.replace(/"size":\d+/, '"size":"big"'),
    };
    for (const [name, body] of Object.entries(cases)) {
      const file = join(indexDir, `${name}.json`);
      writeFileSync(file, body);
      const reasons: unknown[] = [];
      const logger = { debug() {}, info: (_m: string, meta?: object) => reasons.push(meta), warn() {}, error() {} };
      const r = await new WorkflowDirectory({ dir, indexFile: file, logger }).scan();
      assert.deepEqual(r.stats, { files: 1, read: 1, parsed: 1 }, name);
      assert.deepEqual([...r.workflows.keys()], ["a"], name);
      assert.equal(reasons.length > 0, true, `${name}: the reason is logged`);
    }
  });

  it("an index that cannot be written is logged once and the scans go on", async () => {
    const dir = makeTempDir();
    write(dir, "a.yml", wf("A"), 60);
    const blocker = join(makeTempDir(), "not-a-dir");
    writeFileSync(blocker, "x");
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} };
    const wd = new WorkflowDirectory({ dir, indexFile: join(blocker, "index.json"), logger });
    assert.equal((await wd.scan()).workflows.size, 1);
    await wd.flushIndex();
    write(dir, "b.yml", wf("B"), 60);
    assert.equal((await wd.scan()).workflows.size, 2);
    await wd.flushIndex();
    assert.deepEqual(warnings, ["cannot write the workflow index (the next start parses every file)"]);
  });

  it("a scan of given paths reads only those, and adds, edits, removes and checks ids as a full scan would", async () => {
    const dir = makeTempDir();
    for (let i = 0; i < 20; i++) write(dir, `w${i}.yml`, wf(`W${i}`), 60);
    const wd = new WorkflowDirectory({ dir });
    await wd.scan();

    write(dir, "w3.yml", wf("W3", "edited"), 60);
    write(dir, "new/one.yml", wf("One"), 60);
    rmSync(join(dir, "w5.yml"));
    write(dir, "w7.yml", wf("W7", "not-asked-for"), 60);
    const r = await wd.scan(["w3.yml", "new/one.yml", "w5.yml", "notes.txt", ".hidden/x.yml", "../outside.yml"]);
    assert.deepEqual(r.stats, { files: 20, read: 2, parsed: 2 });
    assert.deepEqual(r.changed.sort(), ["new.one", "w3"]);
    assert.deepEqual(r.removed, ["w5"]);
    assert.deepEqual(
      r.workflows.get("w7")?.tasks.a?.config,
      { type: "subprocess", cmd: "echo", args: ["hi"] },
      "a file not named is taken as it was",
    );

    // Two files for one id, seen through a path scan; deleting one of them clears the error.
    write(dir, "new.one.yml", wf("Clash"), 60);
    const clash = await wd.scan(["new.one.yml"]);
    assert.equal(clash.errors.length, 2);
    rmSync(join(dir, "new/one.yml"));
    const cleared = await wd.scan(["new/one.yml"]);
    assert.deepEqual(cleared.errors, []);
    assert.equal(cleared.workflows.get("new.one")?.name, "Clash");

    // A full scan afterwards agrees with what the path scans built.
    const full = await wd.scan();
    assert.deepEqual([...full.workflows.keys()].sort(), [...cleared.workflows.keys()].sort());
    assert.deepEqual(full.changed, ["w7"]);
  });
});

describe("WorkflowDirectory: chaining cycles", () => {
  const chained = (name: string, ...after: string[]): string =>
    `name: ${name}\ntriggers:\n${after.map((a) => `  - after: ${a}\n`).join("")}tasks:\n  a:\n    name: A\n    config: !Subprocess {cmd: echo, args: [hi]}\n`;

  it("a cycle across files is refused with its path; the workflows outside it load", async () => {
    const dir = makeTempDir();
    write(dir, "a.yml", chained("A", "c"));
    write(dir, "b.yml", chained("B", "a"));
    write(dir, "c.yml", chained("C", "b"));
    write(dir, "d.yml", chained("D", "a", "nowhere"));
    const r = await loadWorkflowDir(dir);
    assert.deepEqual([...r.workflows.keys()], ["d"]);
    const msgs = r.errors.map(formatLoadError).sort();
    assert.equal(msgs.length, 3, msgs.join("\n"));
    for (const m of msgs) assert.match(m, /chaining cycle (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c): /);
    assert.match(msgs[0] ?? "", /^a\.yml: triggers\[0\]\.after: /);
    assert.deepEqual(r.warnings.map(formatLoadError), [
      "d.yml: triggers[0].after: no workflow `a` is loaded: this trigger fires once it exists",
      "d.yml: triggers[1].after: no workflow `nowhere` is loaded: this trigger fires once it exists",
    ]);
  });

  it("an edit that closes a cycle is refused and the edited workflow keeps its last valid version", async () => {
    const dir = makeTempDir();
    write(dir, "a.yml", wf("A"));
    write(dir, "b.yml", chained("B", "a"));
    const d = new WorkflowDirectory({ dir });
    const first = await d.scan();
    assert.deepEqual(first.errors, []);
    write(dir, "a.yml", chained("A2", "b"), 0);
    const second = await d.scan();
    assert.deepEqual(second.errors.map(formatLoadError), [
      "a.yml: triggers[0].after: chaining cycle a -> b -> a: a run would start the next one forever; remove one of these triggers",
    ]);
    assert.equal(second.workflows.get("a")?.name, "A", "the last valid version of a");
    assert.deepEqual(second.workflows.get("b")?.triggers, [{ after: "a", status: ["COMPLETED"] }]);
  });
});

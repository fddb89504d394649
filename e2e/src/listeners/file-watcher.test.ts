/**
 * The file-watcher listener on a real temp directory against a real principal process.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FileWatcherListener } from "@cdktr/events/file-watcher";
import { cleanup, makeTempDir, startPrincipal, waitFor, type PrincipalFixture } from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS, expectRunCount, paramWorkflow, paramWorkflows } from "./helpers.js";
import { ListenerPool } from "./listener-pool.js";

describe("file watcher listener", () => {
  let f: PrincipalFixture;
  const listeners = new ListenerPool<FileWatcherListener>();

  const start = async (
    opts: Omit<ConstructorParameters<typeof FileWatcherListener>[0], "principal">,
  ): Promise<FileWatcherListener> => {
    const l = await listeners.start(
      new FileWatcherListener({
        principal: { host: "127.0.0.1", port: f.ports.api },
        key: f.key("local-listeners"),
        debounceMs: 600,
        awaitWriteFinishMs: 100,
        ...opts,
      }),
    );
    await l.whenReady();
    return l;
  };

  before(async () => {
    f = await startPrincipal({
      workflows: { ...paramWorkflows("fs1", "fs2"), "fs3.yml": paramWorkflow("fs3", ["date"]) },
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
    });
  });
  afterEach(() => listeners.stopAll());
  after(cleanup);

  test("a burst of matching files gives one run listing every changed path; other files are ignored", async () => {
    const dir = makeTempDir("cdktr-watch-");
    writeFileSync(join(dir, "existing.csv"), "old");
    // A quiet period long enough that a busy machine (new sub-directory watch, write-finish
    // polling) cannot split the burst; the settle time below is longer still, so a second run
    // would be seen.
    const l = await start({
      path: dir,
      workflow: "fs1",
      glob: "**/*.csv",
      params: { date: "static" },
      debounceMs: 1500,
    });
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "a.csv"), "1");
    writeFileSync(join(dir, "b.csv"), "2");
    writeFileSync(join(dir, "sub", "c.csv"), "3");
    writeFileSync(join(dir, "notes.txt"), "ignored");
    const runs = await expectRunCount(f, "fs1", 1, 2500);
    assert.deepEqual(JSON.parse(String(runs[0]?.params.paths)), ["a.csv", "b.csv", "sub/c.csv"]);
    assert.equal(runs[0]?.params.date, "static");
    assert.equal(runs[0]?.source, "file-watcher");
    assert.equal(l.stats.triggered, 1);

    writeFileSync(join(dir, "notes.txt"), "still ignored");
    writeFileSync(join(dir, "a.csv"), "changed");
    const after = await expectRunCount(f, "fs1", 2, 2500);
    assert.deepEqual(JSON.parse(String(after[1]?.params.paths)), ["a.csv"]);
  });

  test("only the configured event kinds count", async () => {
    const dir = makeTempDir("cdktr-watch-");
    writeFileSync(join(dir, "keep.bin"), "x");
    writeFileSync(join(dir, "gone.bin"), "x");
    await start({ path: dir, workflow: "fs2", events: ["unlink"] });
    writeFileSync(join(dir, "new.bin"), "added: not reported");
    writeFileSync(join(dir, "keep.bin"), "changed: not reported");
    rmSync(join(dir, "gone.bin"));
    const runs = await expectRunCount(f, "fs2", 1, 1000);
    assert.deepEqual(JSON.parse(String(runs[0]?.params.paths)), ["gone.bin"]);
  });

  test("a missing path fails the start with a clear error", async () => {
    const l = new FileWatcherListener({
      principal: { host: "127.0.0.1", port: f.ports.api },
      key: f.key("local-listeners"),
      path: join(makeTempDir("cdktr-watch-"), "nope"),
      workflow: "fs1",
    });
    listeners.track(l);
    const errors: Error[] = [];
    l.on("error", (e) => errors.push(e));
    await l.start();
    await assert.rejects(l.whenReady(), /cannot watch .*nope: it does not exist/);
    assert.match(String((await l.done())?.message), /does not exist/);
    assert.equal(errors.length, 1);
  });

  test("a refused trigger (unknown workflow, undeclared param) is counted and logged; watching goes on", async () => {
    const dir = makeTempDir("cdktr-watch-");
    const unknown = await start({ path: dir, workflow: "no-such-workflow" });
    // fs3 does not declare `paths`: the principal refuses the params.
    const undeclared = await start({ path: dir, workflow: "fs3" });
    const noPaths = await start({ path: dir, workflow: "fs3", pathsParam: null, params: { date: "d" } });
    writeFileSync(join(dir, "one"), "1");
    await waitFor(() => unknown.stats.failed === 1 && undeclared.stats.failed === 1 && noPaths.stats.triggered === 1, {
      what: "each outcome",
    });
    writeFileSync(join(dir, "two"), "2");
    await waitFor(() => unknown.stats.failed === 2 && noPaths.stats.triggered === 2, { what: "second burst" });
    const runs = await expectRunCount(f, "fs3", 2);
    assert.deepEqual(
      runs.map((r) => r.params),
      [{ date: "d" }, { date: "d" }],
    );
  });
});

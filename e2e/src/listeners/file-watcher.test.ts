/**
 * The file-watcher listener on a real temp directory against a real principal process.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger, RejectedEvent } from "@cdktr/events";
import { FileWatcherListener } from "@cdktr/events/file-watcher";
import {
  cleanup,
  makeTempDir,
  startListeners,
  startPrincipal,
  waitFor,
  type PrincipalFixture,
} from "@cdktr/test-utils";
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
      workflows: {
        ...paramWorkflows("fs1", "fs2", "fskey", "fsyaml"),
        "fs3.yml": paramWorkflow("fs3", ["date"]),
        "fsmap.yml": paramWorkflow("fsmap", ["date", "paths", "kind", "n", "region"]),
        "fsun.yml": paramWorkflow("fsun", ["date"]),
      },
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

  test("mapping: a dropped file becomes one run whose params come from its path; `when` turns other bursts away", async () => {
    const dir = makeTempDir("cdktr-watch-");
    const l = await start({
      path: dir,
      workflow: "fsmap",
      params: { date: "fixed", region: "eu" },
      mapping: {
        paramsMap: { date: "split(path, '_')[0]", kind: "events[0].event", n: "to_string(length(paths))" },
        when: "ends_with(path, '.csv')",
      },
    });
    writeFileSync(join(dir, "2024-05-01_sales.csv"), "1");
    const runs = await expectRunCount(f, "fsmap", 1);
    // Mapped params win over the fixed ones; the paths param is still sent.
    assert.deepEqual(runs[0]?.params, {
      date: "2024-05-01",
      kind: "add",
      n: "1",
      region: "eu",
      paths: '["2024-05-01_sales.csv"]',
    });
    assert.match(String(runs[0]?.idempotencyKey), /^fs:[0-9a-f-]{36}$/);

    writeFileSync(join(dir, "2024-05-02_notes.txt"), "not a csv");
    await waitFor(() => l.stats.filtered === 1, { what: "the .txt burst filtered out" });
    writeFileSync(join(dir, "2024-05-03_sales.csv"), "3");
    const after = await expectRunCount(f, "fsmap", 2);
    assert.equal(after[1]?.params.date, "2024-05-03");
    assert.deepEqual([l.stats.triggered, l.stats.filtered, l.stats.unmapped], [2, 1, 0]);
  });

  test("mapping: a burst that does not map triggers nothing, is rejected as unmapped and logged; the next file still runs", async () => {
    const dir = makeTempDir("cdktr-watch-");
    const warnings: string[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (message, meta) => warnings.push(`${message} ${JSON.stringify(meta)}`),
      error: () => undefined,
      child() {
        return this;
      },
    };
    const l = await start({
      path: dir,
      workflow: "fsun",
      pathsParam: null,
      mapping: { paramsMap: { date: "split(path, '_')[1]" } },
      logger,
    });
    const rejected: RejectedEvent[] = [];
    l.on("rejected", (r) => rejected.push(r));
    writeFileSync(join(dir, "sales"), "no date in the name");
    await waitFor(() => l.stats.unmapped === 1, { what: "the unmappable burst" });
    assert.deepEqual(
      rejected.map((r) => r.reason),
      ["unmapped"],
    );
    assert.match(rejected[0]?.message ?? "", /params\.date \(split\(path, '_'\)\[1\]\): found nothing in the event/);
    assert.ok(
      warnings.some((w) => w.startsWith("file changes not mapped into a run") && w.includes("split(path, '_')[1]")),
      warnings.join("\n"),
    );
    assert.equal((await f.runs("fsun")).length, 0);

    writeFileSync(join(dir, "sales_2024-05-04"), "dated");
    const runs = await expectRunCount(f, "fsun", 1);
    assert.deepEqual(runs[0]?.params, { date: "2024-05-04" });
    assert.deepEqual([l.stats.triggered, l.stats.unmapped, l.stats.failed], [1, 1, 0]);
  });

  test("mapping: with `idempotency_key: path` a file re-created under the same name is the same run", async () => {
    const dir = makeTempDir("cdktr-watch-");
    const l = await start({ path: dir, workflow: "fskey", events: ["add"], mapping: { idempotencyKey: "path" } });
    writeFileSync(join(dir, "drop.csv"), "1");
    const runs = await expectRunCount(f, "fskey", 1);
    assert.equal(runs[0]?.idempotencyKey, "fs:drop.csv");
    rmSync(join(dir, "drop.csv"));
    // chokidar reports a file re-added within 100 ms of its removal as a `change` (atomic saves):
    // wait longer, so the new file is an `add` again.
    await new Promise((r) => setTimeout(r, 500));
    writeFileSync(join(dir, "drop.csv"), "again");
    await waitFor(() => l.stats.triggered === 2, { what: "the second burst (a duplicate)" });
    writeFileSync(join(dir, "other.csv"), "new name");
    const after = await expectRunCount(f, "fskey", 2);
    assert.deepEqual(
      after.map((r) => r.idempotencyKey),
      ["fs:drop.csv", "fs:other.csv"],
    );
  });

  test("a mapping expression that does not parse is a UsageError naming the field", () => {
    assert.throws(
      () =>
        new FileWatcherListener({
          path: makeTempDir("cdktr-watch-"),
          workflow: "fs1",
          mapping: { paramsMap: { date: "split(path, '_'" }, when: "ends_with(path, '.csv')" },
        }),
      (e: Error & { code?: string }) =>
        e.code === "INVALID_ARGUMENT" &&
        /mapping\.params_map\.date: "split\(path, '_'" is not a JMESPath expression/.test(e.message),
    );
  });

  test("`type: file_watcher` in a listeners YAML file: params_map, when and idempotency_key reach the run", async () => {
    const dir = makeTempDir("cdktr-watch-");
    writeFileSync(
      join(f.home, "fs-listeners.yml"),
      [
        "listeners:",
        "  - type: file_watcher",
        "    name: drops",
        `    path: ${JSON.stringify(dir)}`,
        "    workflow: fsyaml",
        "    debounce_ms: 300",
        "    params: {n: fixed}",
        "    params_map: {date: \"split(path, '_')[0]\"}",
        "    when: \"ends_with(path, '.csv')\"",
        "    idempotency_key: path",
        "",
      ].join("\n"),
    );
    const runner = await startListeners(f, "fs-listeners.yml");
    // Without `when` this burst would be a run with date "zz".
    writeFileSync(join(dir, "zz_notes.txt"), "filtered out");
    await new Promise((r) => setTimeout(r, 1000));
    // (Should a loaded machine merge both files into one burst, `path` is the csv: sorted first.)
    writeFileSync(join(dir, "2024-06-01_orders.csv"), "1");
    const runs = await expectRunCount(f, "fsyaml", 1, 1000);
    assert.equal(runs[0]?.params.date, "2024-06-01");
    assert.equal(runs[0]?.params.n, "fixed");
    assert.equal(runs[0]?.idempotencyKey, "fs:2024-06-01_orders.csv");
    assert.deepEqual(await runner.stop("SIGTERM"), { code: 0, signal: null });
  });
});

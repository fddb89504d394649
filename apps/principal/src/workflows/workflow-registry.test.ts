import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { systemClock, type WorkflowDefinition, type WorkflowsChangedEvent } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs, waitFor } from "@cdktr/test-utils";
import { ManualClock } from "@cdktr/protocol";
import { WorkflowDirectory } from "@cdktr/workflow";
import { definition } from "../test/workflow-fixture.js";
import { WorkflowRegistry, type WorkflowScan } from "./workflow-registry.js";

after(() => removeTempDirs());

describe("WorkflowRegistry", () => {
  it("versions changes; sinceVersion returns only changes and removals; unknown versions get a full listing", async () => {
    const clock = new ManualClock(1_000_000);
    let scan: WorkflowScan = { workflows: new Map(), errors: [], warnings: [] };
    const events: WorkflowsChangedEvent[] = [];
    const r = new WorkflowRegistry({ scan: async () => scan, clock, onChange: (e) => events.push(e) });
    const set = (...wfs: WorkflowDefinition[]): void => {
      scan = { workflows: new Map(wfs.map((w) => [w.id, w])), errors: [], warnings: [] };
    };
    set(definition("a"), definition("b"));
    await r.start();
    const v1 = r.version;
    assert.equal(v1, 1_000_001);
    assert.deepEqual(
      r.list().workflows.map((w) => w.id),
      ["a", "b"],
    );

    await r.refresh();
    assert.equal(r.version, v1, "an unchanged scan does not bump the version");
    set(definition("a", "description: new"), definition("c"));
    await r.refresh();
    const inc = r.list(v1);
    assert.equal(inc.full, false);
    assert.deepEqual(
      inc.workflows.map((w) => w.id),
      ["a", "c"],
    );
    assert.deepEqual(inc.removed, ["b"]);
    assert.deepEqual(r.list(r.version).workflows, []);
    assert.equal(r.list(5).full, true, "older than this principal's start");
    assert.equal(r.list(r.version + 10).full, true, "from the future (another principal)");
    assert.deepEqual(
      events.map((e) => [e.changed, e.removed]),
      [
        [["a", "b"], []],
        [["a", "c"], ["b"]],
      ],
    );

    scan = {
      workflows: scan.workflows,
      errors: [{ file: "c.yml", line: 3, column: 1, path: "tasks", message: "bad" }],
      warnings: [],
    };
    await r.refresh();
    assert.equal(r.list().errors[0]?.line, 3);
    await r.stop();
  });

  it("the periodic scan picks up changes without any watch event", async () => {
    let wfs = new Map([["a", definition("a")]]);
    const clock = new ManualClock();
    const r = new WorkflowRegistry({
      scan: async () => ({ workflows: wfs, errors: [], warnings: [] }),
      clock,
      refreshMs: 30,
    });
    await r.start();
    const v = r.version;
    wfs = new Map([["b", definition("b")]]);
    await clock.advance(30); // the scan period, on the registry's clock
    await waitFor(() => r.get("b") !== undefined, { timeoutMs: 3000, what: "periodic rescan" });
    assert.equal(r.version, v + 1);
    assert.deepEqual(r.list(v).removed, ["a"]);
    await r.stop();
  });

  it("a failing scan keeps the current workflows", async () => {
    let fail = false;
    const r = new WorkflowRegistry({
      scan: async () => {
        if (fail) throw new Error("disk on fire");
        return { workflows: new Map([["a", definition("a")]]), errors: [], warnings: [] };
      },
      clock: new ManualClock(),
    });
    await r.start();
    fail = true;
    await r.refresh();
    assert.equal(r.get("a")?.id, "a");
    await r.stop();
  });

  it("a watched file's edit is scanned on its own; a new folder means a full scan; stop waits for the index", async () => {
    const dir = makeTempDir("wf-watch-");
    const yaml = (echo: string) =>
      `name: W\ntasks:\n  a:\n    name: A\n    config: !Subprocess {cmd: echo, args: [${echo}]}\n`;
    const put = (rel: string, echo: string): void => {
      const p = join(dir, rel);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, yaml(echo));
      const old = new Date(Date.now() - 60_000);
      utimesSync(p, old, old);
    };
    for (let i = 0; i < 30; i++) put(`w${i}.yml`, "first");
    const indexFile = join(makeTempDir("wf-index-"), "index.json");
    const wd = new WorkflowDirectory({ dir, indexFile });
    const calls: string[] = [];
    let stopped = false;
    const r = new WorkflowRegistry({
      scan: () => {
        calls.push("full");
        return wd.scan();
      },
      scanPaths: (paths) => {
        calls.push(paths.join(","));
        return wd.scan(paths);
      },
      onStop: async () => {
        await wd.flushIndex();
        stopped = true;
      },
      clock: systemClock,
      watchDir: dir,
    });
    await r.start();
    calls.length = 0;
    const argsOf = (id: string) => {
      const c = r.get(id)?.tasks.a?.config;
      return c?.type === "subprocess" ? c.args : undefined;
    };
    put("w3.yml", "second");
    await waitFor(() => argsOf("w3")?.[0] === "second", { timeoutMs: 5000, what: "the edit of w3.yml" });
    // (the write and the mtime change may come as two events, and two scans of that one file)
    assert.ok(
      calls.length > 0 && !calls.some((c) => c !== "w3.yml"),
      `only the edited file is scanned: ${calls.join(" | ")}`,
    );

    calls.length = 0;
    put("team/new.yml", "new");
    await waitFor(() => r.get("team.new") !== undefined, { timeoutMs: 5000, what: "the new folder's file" });
    assert.ok(calls.includes("full"), `a new folder means a full scan (${calls.join(" | ")})`);
    await r.stop();
    assert.equal(stopped, true);
  });
});

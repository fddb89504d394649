/**
 * The `run_status` listener (workflow chaining by ad-hoc rules) as the listeners runner runs it:
 * a real principal and agent, the runner process with the local scheduler key.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, startAgent, startListeners, startPrincipal, waitFor, workflowYaml } from "@cdktr/test-utils";
import { paramWorkflow } from "./helpers.js";

describe("run_status listener", () => {
  after(cleanup);

  test("a rule starts its workflow once per matching upstream run, with fixed params; other end states do not", async () => {
    const p = await startPrincipal({
      workflows: {
        "extract.yml": workflowYaml({ name: "Extract" }),
        "broken.yml": workflowYaml({ name: "Broken", tasks: { fail: { cmd: "false" } } }),
        "load.yml": paramWorkflow("Load", ["team"]),
        "page.yml": paramWorkflow("Page", ["team"]),
      },
    });
    await startAgent(p);
    writeFileSync(
      join(p.home, "chain.yml"),
      [
        "listeners:",
        "  - type: run_status",
        "    name: chain",
        "    sweep_interval_ms: 500",
        "    rules:",
        "      - {after: extract, workflow: load, params: {team: data}}",
        "      - {after: broken, status: FAILED, workflow: page, params: {team: oncall}}",
        "      - {after: extract, status: FAILED, workflow: page}",
        "",
      ].join("\n"),
    );
    const runner = await startListeners(p, "chain.yml");
    const client = p.connect();
    const extract = await client.runWorkflow({ workflowId: "extract" });
    const broken = await client.runWorkflow({ workflowId: "broken" });
    const load = await waitFor(async () => (await p.runs("load"))[0], { what: "the load run", timeoutMs: 20_000 });
    assert.deepEqual(load.upstream, { runId: extract.runId, workflowId: "extract", status: "COMPLETED" });
    assert.deepEqual(load.params, { team: "data" });
    const page = await waitFor(async () => (await p.runs("page"))[0], { what: "the page run", timeoutMs: 20_000 });
    assert.deepEqual(page.upstream, { runId: broken.runId, workflowId: "broken", status: "FAILED" });
    assert.deepEqual(page.params, { team: "oncall" });
    await new Promise((r) => setTimeout(r, 2000)); // several sweeps
    assert.equal((await p.runs("load")).length, 1);
    assert.equal((await p.runs("page")).length, 1, "extract COMPLETED: its FAILED rule does not fire");
    assert.deepEqual(await runner.stop("SIGTERM"), { code: 0, signal: null });
  });

  test("a cycle between rules is a configuration error (exit 2) naming the path", async () => {
    const p = await startPrincipal({ workflows: { "a.yml": workflowYaml({ name: "A" }) } });
    writeFileSync(
      join(p.home, "cycle.yml"),
      "listeners:\n  - type: run_status\n    rules:\n      - {after: a, workflow: b}\n      - {after: b, workflow: a}\n",
    );
    const runner = await startListeners(p, "cycle.yml", { waitReady: false });
    assert.deepEqual(await runner.exited, { code: 2, signal: null });
    assert.match(
      runner.lines.join("\n"),
      /cycle\.yml:4:7: listeners\[0\]\.rules: the rules chain in a cycle \(a -> b -> a\)/,
    );
  });
});

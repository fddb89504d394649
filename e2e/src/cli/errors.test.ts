/**
 * The errors users hit most print ONE clear line (no stack trace) and exit non-zero, with the
 * real `cdktr` bin as a process against a real principal. (The errors without a principal are
 * tested in apps/cli.)
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  cleanup,
  runCli,
  startPrincipal,
  workflowYaml,
  type CliResult,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { EXAMPLES, lines } from "./helpers.js";

function assertOneLine(r: CliResult, pattern: RegExp, what: string): void {
  const errLines = lines(r.stderr);
  assert.equal(errLines.length, 1, `${what}: expected one stderr line, got:\n${r.stderr}`);
  assert.match(errLines[0] ?? "", pattern, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
}

/** A daily workflow in a timezone with DST, for `workflow show`. */
const NY_WORKFLOW = workflowYaml({
  name: "NY open",
  cron: "0 30 9 * * *",
  header: ["timezone: America/New_York"],
  tasks: { a: { name: "A", cmd: "echo", args: ["a"] } },
});

describe("with a principal", () => {
  let p: PrincipalFixture;
  before(async () => {
    p = await startPrincipal({ copyWorkflowsFrom: EXAMPLES, workflows: { "ny.yml": NY_WORKFLOW } });
  });
  after(async () => {
    await p.stop();
    await cleanup();
  });

  test("unknown workflow or run: one line naming it", async () => {
    const run = await runCli(["run", "nope"], { env: p.env });
    assert.equal(run.code, 1);
    assertOneLine(run, /^error: .*`nope`.*cdktr workflows/, "run nope");
    const show = await runCli(["workflow", "show", "nope"], { env: p.env });
    assert.equal(show.code, 1);
    assertOneLine(show, /nope/, "workflow show nope");
    const runShow = await runCli(["runs", "show", "01NOTARUN"], { env: p.env });
    assert.equal(runShow.code, 1);
    assertOneLine(runShow, /01NOTARUN/, "runs show");
  });

  test("invalid params are refused with the principal's reason", async () => {
    const r = await runCli(["run", "fan-in", "-p", "nosuch=1"], { env: p.env });
    assert.notEqual(r.code, 0);
    assertOneLine(r, /nosuch/, "unknown param");
  });

  test("listings print ONE JSON array of protocol records with --json", async () => {
    const { WorkflowDefinitionSchema, RunRecordSchema, AgentRecordSchema, LogLineSchema } = await import(
      "@cdktr/protocol"
    );
    const wfs = await runCli(["workflows", "--json"], { env: p.env });
    assert.equal(wfs.code, 0, wfs.stderr);
    const parsed = JSON.parse(wfs.stdout) as unknown[];
    const ids = parsed.map((w) => WorkflowDefinitionSchema.parse(w).id);
    for (const id of ["every-minute", "fail", "fan-in", "hello"])
      assert.ok(ids.includes(id), `${id} in ${ids.join(",")}`);
    const id = lines((await runCli(["run", "hello", "--key", "k1"], { env: p.env })).stdout)[0];
    const again = await runCli(["run", "hello", "--key", "k1"], { env: p.env });
    assert.equal(lines(again.stdout)[0], id, "same key, same run");
    const runs = JSON.parse((await runCli(["runs", "--json"], { env: p.env })).stdout) as unknown[];
    assert.deepEqual(
      runs.map((r) => RunRecordSchema.parse(r).runId),
      [id],
    );
    assert.equal(RunRecordSchema.parse(runs[0]).source, "cli");
    const agents = JSON.parse((await runCli(["agents", "--json"], { env: p.env })).stdout) as unknown[];
    assert.ok(Array.isArray(agents));
    for (const a of agents) AgentRecordSchema.parse(a);
    const logs = JSON.parse((await runCli(["logs", "--json"], { env: p.env })).stdout) as unknown[];
    assert.ok(Array.isArray(logs));
    for (const l of logs) LogLineSchema.parse(l);
    const table = await runCli(["workflows"], { env: p.env });
    assert.match(table.stdout, /^ID\s+NAME\s+CRON\s+TIMEZONE\s+NEXT RUN$/m);
    assert.match(table.stdout, /^every-minute\s+.*\* \* \* \* \*\s+UTC\s+\d{4}-\d\d-\d\d \d\d:\d\d:00 UTC$/m);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ANSI escapes
    assert.doesNotMatch(table.stdout, /\u001b\[/, "no colour when not a TTY");
  });

  // Last in this group: it adds runs the listing test above does not expect.
  test("workflow show: tasks, the DAG as a tree, the next 5 runs in the workflow's timezone; cancel a queued run", async () => {
    const fan = await runCli(["workflow", "show", "fan-in"], { env: p.env });
    assert.equal(fan.code, 0, fan.stderr);
    for (const task of ["extract", "left", "right", "join"])
      assert.match(fan.stdout, new RegExp(`^${task}\\s`, "m"), `task ${task} listed`);
    const dag = fan.stdout.split("\nDAG\n")[1]?.split("\n\n")[0] ?? "";
    assert.deepEqual(dag.split("\n"), ["extract", "├── left", "│   └── join", "└── right", "    └── join"]);

    const ny = await runCli(["workflow", "show", "ny"], { env: p.env });
    assert.equal(ny.code, 0, ny.stderr);
    const next = (ny.stdout.split("\nNext runs (America/New_York)\n")[1] ?? "")
      .split("\n")
      .filter((l) => l.trim() !== "");
    assert.equal(next.length, 5, ny.stdout);
    for (const line of next) {
      // 09:30 New York wall time, whatever the season; the UTC instant follows the offset.
      const m = /^\d{4}-\d\d-\d\d 09:30:00 (EST|EDT) {2}\d{4}-\d\d-\d\dT(\d\d):30:00\.000Z$/.exec(line);
      assert.ok(m !== null, `next run line: ${line}`);
      assert.equal(m[2], m[1] === "EST" ? "14" : "13", line);
    }

    // No agent here: the run stays QUEUED, and cancelling it ends it at once.
    const id = lines((await runCli(["run", "hello"], { env: p.env })).stdout)[0] ?? "";
    const cancel = await runCli(["cancel", id], { env: p.env });
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, /CANCELLED/);
    const show = await runCli(["runs", "show", id, "--json"], { env: p.env });
    assert.equal((JSON.parse(show.stdout) as { run: { status: string } }).run.status, "CANCELLED");
    const listed = JSON.parse((await runCli(["runs", "--status", "CANCELLED", "--json"], { env: p.env })).stdout) as {
      runId: string;
    }[];
    assert.deepEqual(
      listed.map((r) => r.runId),
      [id],
    );
  });
});

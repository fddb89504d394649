/**
 * Task templates with a real principal and a real agent: `{{ params.who }}` in a task's argv,
 * env and working directory, expanded by the agent right before the spawn. The task is node
 * itself (no shell) printing its argv, cwd and one variable as JSON; a param full of shell syntax
 * arrives as exactly one literal argument and nothing of it is executed.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, workflowYaml } from "@cdktr/test-utils";
import { prepareCluster, startFastAgent } from "./helpers.js";

afterEach(cleanup);

/** Prints one JSON line: the arguments after the script, the cwd and `GREETING`. */
const PRINT =
  "process.stdout.write(JSON.stringify({argv:process.argv.slice(1),cwd:process.cwd(),greeting:process.env.GREETING})+'\\n')";

const TEMPLATES_YML = workflowYaml({
  name: "Templates",
  header: [
    "params:",
    "  who: string",
    "  dir: string",
    "  n: {type: number, default: 3}",
    "  dry: {type: boolean, default: false}",
    "  note: {type: string, required: false}",
  ],
  tasks: {
    show: {
      cmd: process.execPath,
      args: [
        "-e",
        PRINT,
        "--",
        "{{ params.who }}",
        "--run={{run.id}}",
        "{{ run.workflow_id }}/{{ run.source }}/{{ task.id }}",
        "[{{ run.scheduled_for }}][{{ upstream.run_id }}{{ upstream.workflow_id }}{{ upstream.status }}]",
        "{{ params.n }} {{ params.dry }} [{{ params.note }}]",
        '--set=x={{ "{{" }} .Values.y }}',
      ],
      extra: ['working_directory: "{{ params.dir }}"', "env: {GREETING: 'hello {{ params.who }}'}"],
    },
  },
});

test("a param full of shell syntax reaches the task as one literal argument, in argv, env and cwd, and nothing of it runs", async () => {
  const c = await prepareCluster({ "tpl.yml": TEMPLATES_YML });
  await c.start();
  await startFastAgent(c);

  const victim = join(c.home, "should-not-exist");
  mkdirSync(victim);
  writeFileSync(join(victim, "keep"), "x");
  const marker = join(c.home, "pwned");
  const who = `x; rm -rf ${victim} "quoted" 'single' $(id) $(touch ${marker}) \`touch ${marker}\` && touch ${marker} | tee ${marker} {{ run.id }}`;
  const dir = join(c.home, `work dir; $(id) "q" 'q'`);
  mkdirSync(dir);

  const runId = await c.run("tpl", { who, dir, dry: true });
  const r = await c.waitForRun(runId);
  assert.equal(r.run.status, "COMPLETED", JSON.stringify(r));
  const lines = await c.logs(runId, "show");
  const out = lines.filter((l) => l.stream === "stdout").map((l) => l.line);
  assert.equal(out.length, 1, out.join("\n"));
  const seen = JSON.parse(out[0] ?? "{}") as { argv: string[]; cwd: string; greeting: string };
  assert.deepEqual(seen.argv, [who, `--run=${runId}`, "tpl/test/show", "[][]", "3 true []", "--set=x={{ .Values.y }}"]);
  assert.equal(seen.cwd, dir);
  assert.equal(seen.greeting, `hello ${who}`);

  // The agent's own line shows the argv it spawned, one JSON string per argument.
  const start = lines.find((l) => l.stream === "system" && l.line.includes("starting "));
  assert.ok(start?.line.includes(` ${JSON.stringify(who)} ${JSON.stringify(`--run=${runId}`)} `), start?.line);

  assert.ok(existsSync(join(victim, "keep")), "rm -rf did not run");
  assert.equal(existsSync(marker), false, "no $(...), backquote, && or | of the param ran");
});

test("a workflow with an unknown template name does not load: the error names file:line:column, the valid names and the escape", async () => {
  const c = await prepareCluster({
    "bad.yml": workflowYaml({
      header: ["params:", "  day: string"],
      tasks: { t: { cmd: "echo", args: ["--day", "{{ params.date }}", "--set=x={{ .Values.y }}"] } },
    }),
  });
  await c.start();
  const { workflows, errors } = await c.client.listWorkflows();
  assert.deepEqual(
    workflows.map((w) => w.id),
    [],
  );
  assert.deepEqual(
    errors.map((e) => [e.file, e.line, e.column, e.path]),
    [
      ["bad.yml", 9, 23, "tasks.t.config.args[1]"],
      ["bad.yml", 9, 51, "tasks.t.config.args[2]"],
    ],
  );
  assert.match(
    errors[0]?.message ?? "",
    /^unknown name `params\.date` in `\{\{ params\.date \}\}`: this workflow declares no param `date` \(did you mean `params\.day`\?\); valid names: params\.day, run\.id, .*write `\{\{ "\{\{" \}\}`/,
  );
  assert.match(errors[1]?.message ?? "", /write `\{\{ "\{\{" \}\}`.*: `\{\{ "\{\{" \}\} \.Values\.y \}\}`$/);
});

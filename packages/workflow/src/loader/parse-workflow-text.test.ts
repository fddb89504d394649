import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { WorkflowDefinitionSchema } from "@cdktr/protocol";
import { formatLoadError } from "./format-load-error.js";
import { parseWorkflowText, workflowIdFromPath } from "./parse-workflow-text.js";

const lines = (...ls: string[]): string => `${ls.join("\n")}\n`;

function errors(text: string, file = "wf.yml"): string[] {
  const r = parseWorkflowText(text, { file, id: "wf" });
  assert.equal(r.workflow, null, "expected the file to be rejected");
  return r.errors.map(formatLoadError);
}

function load(text: string) {
  const r = parseWorkflowText(text, { file: "wf.yml", id: "wf" });
  assert.deepEqual(r.errors.map(formatLoadError), []);
  assert.ok(r.workflow);
  WorkflowDefinitionSchema.parse(r.workflow);
  return { workflow: r.workflow, warnings: r.warnings.map(formatLoadError) };
}

const TASK = ["tasks:", "  a:", "    name: A", "    config: !Subprocess {cmd: echo, args: [hi]}"];

describe("parseWorkflowText: valid files", () => {
  it("maps every field to the normalised definition", () => {
    const { workflow, warnings } = load(
      lines(
        "name: Full",
        "description: every option",
        'cron: "0 9 * * MON-FRI"',
        "timezone: Europe/London",
        "start_time: 2025-01-20T12:30:00+01:00",
        "params:",
        "  count: {type: number, default: 3}",
        "  env: {type: enum, values: [dev, prod]}",
        "  name: string",
        "max_active_runs: 2",
        "overlap: skip",
        "on_agent_lost: requeue",
        "catch_up: {policy: all, max: 5}",
        "jitter: 5s",
        "agent_labels: [gpu, eu]",
        "tasks:",
        "  a:",
        "    name: A",
        "    env: {PORT: 8080, MODE: fast}",
        "    working_directory: /tmp",
        "    timeout: 5m",
        "    retries: 3",
        "    config: !Subprocess {cmd: echo}",
        "  b:",
        "    name: B",
        "    depends: [a]",
        "    timeout: 30",
        "    retries: {count: 2, backoff: 10s, factor: 3}",
        "    config: !UvPython {script_path: job.py, is_uv_project: true}",
      ),
    );
    assert.deepEqual(warnings, []);
    assert.equal(workflow.schedule, "0 0 9 * * MON-FRI");
    assert.equal(workflow.timezone, "Europe/London");
    assert.equal(workflow.startTime, "2025-01-20T11:30:00.000Z");
    assert.deepEqual(workflow.params, {
      count: { type: "number", required: false, default: 3, description: null },
      env: { type: "enum", values: ["dev", "prod"], required: true, description: null },
      name: { type: "string", required: true, description: null },
    });
    assert.equal(workflow.maxActiveRuns, 2);
    assert.equal(workflow.overlap, "skip");
    assert.equal(workflow.onAgentLost, "requeue");
    assert.deepEqual(workflow.catchUp, { policy: "all", max: 5 });
    assert.equal(workflow.jitterMs, 5000);
    assert.deepEqual(workflow.agentLabels, ["gpu", "eu"]);
    assert.deepEqual(workflow.tasks.a, {
      id: "a",
      name: "A",
      description: null,
      depends: [],
      config: { type: "subprocess", cmd: "echo", args: [] },
      env: { PORT: "8080", MODE: "fast" },
      workingDirectory: "/tmp",
      timeoutMs: 300_000,
      retries: { count: 3, backoffMs: 1000, factor: 2 },
    });
    assert.equal(workflow.tasks.b?.timeoutMs, 30_000);
    assert.deepEqual(workflow.tasks.b?.retries, { count: 2, backoffMs: 10_000, factor: 3 });
    assert.deepEqual(workflow.tasks.b?.config, {
      type: "uvPython",
      scriptPath: "job.py",
      packages: [],
      isUvProject: true,
      workingDirectory: null,
      uvPath: "uv",
    });
  });

  it("uses the defaults for a minimal file", () => {
    const { workflow } = load(lines("name: Min", ...TASK));
    assert.equal(workflow.cron, null);
    assert.equal(workflow.schedule, null);
    assert.equal(workflow.timezone, "UTC");
    assert.equal(workflow.overlap, "queue");
    assert.equal(workflow.onAgentLost, "fail");
    assert.deepEqual(workflow.catchUp, { policy: "skip", max: 10 });
    assert.equal(workflow.jitterMs, 0);
    assert.equal(workflow.maxActiveRuns, null);
    assert.match(workflow.hash, /^[0-9a-f]{64}$/);
  });

  it("accepts catch_up as a name with catch_up_max, and cron_dialect cdktr", () => {
    const { workflow, warnings } = load(
      lines("name: C", 'cron: "0 0 9 * * 2-6"', "cron_dialect: cdktr", "catch_up: once", "catch_up_max: 3", ...TASK),
    );
    assert.deepEqual(workflow.catchUp, { policy: "once", max: 3 });
    assert.equal(workflow.cron, "0 0 9 * * 2-6");
    assert.equal(workflow.schedule, "0 0 9 * * 1-5");
    assert.deepEqual(warnings, []);
  });

  it("keeps YAML anchors and aliases working", () => {
    const { workflow } = load(
      lines(
        "name: Anchors",
        "tasks:",
        "  a:",
        "    name: A",
        "    config: &echo !Subprocess {cmd: echo, args: [x]}",
        "  b:",
        "    name: B",
        "    config: *echo",
      ),
    );
    assert.deepEqual(workflow.tasks.b?.config, { type: "subprocess", cmd: "echo", args: ["x"] });
  });

  it("merges the workflow's env and inherit_env into every task (the task's env wins)", () => {
    const { workflow } = load(
      lines(
        "name: Env",
        "env: {STAGE: prod, REGION: eu, RETRIES: 3}",
        "inherit_env: [AWS_*, GOOGLE_APPLICATION_CREDENTIALS]",
        "tasks:",
        "  a:",
        "    name: A",
        "    env: {REGION: us, DEBUG: true}",
        "    inherit_env: [DATABASE_URL, AWS_*]",
        "    config: !Subprocess {cmd: echo}",
        "  b:",
        "    name: B",
        "    config: !Subprocess {cmd: echo}",
      ),
    );
    assert.deepEqual(workflow.tasks.a?.env, { STAGE: "prod", REGION: "us", RETRIES: "3", DEBUG: "true" });
    assert.deepEqual(workflow.tasks.a?.inheritEnv, ["AWS_*", "GOOGLE_APPLICATION_CREDENTIALS", "DATABASE_URL"]);
    assert.deepEqual(workflow.tasks.b?.env, { STAGE: "prod", REGION: "eu", RETRIES: "3" });
    assert.deepEqual(workflow.tasks.b?.inheritEnv, ["AWS_*", "GOOGLE_APPLICATION_CREDENTIALS"]);
  });

  it("leaves inheritEnv out of tasks that inherit nothing (existing files normalise as before)", () => {
    const { workflow } = load(lines("name: X", "inherit_env: []", ...TASK));
    assert.equal(Object.hasOwn(workflow.tasks.a ?? {}, "inheritEnv"), false);
    assert.deepEqual(workflow.tasks.a?.env, {});
  });

  it("warns (without rejecting) about a numeric day of week in 6 fields", () => {
    const { warnings } = load(lines("name: W", 'cron: "0 0 9 * * 2-6"', ...TASK));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /^wf\.yml:2:7: cron: day of week `2-6` is read as Tue-Sat/);
  });
});

describe("parseWorkflowText: each error names file:line:column and the field", () => {
  it("unknown key with a suggestion (the original silently ignored `dependencies:`)", () => {
    assert.deepEqual(
      errors(
        lines(
          "name: X",
          "tasks:",
          "  a:",
          "    name: A",
          "    config: !Subprocess {cmd: echo}",
          "  b:",
          "    name: B",
          "    dependencies: [a]",
          "    config: !Subprocess {cmd: echo}",
        ),
      ),
      [
        "wf.yml:8:5: tasks.b.dependencies: unknown key `dependencies` (did you mean `depends`?); allowed here: name, description, depends, config, env, inherit_env, working_directory, timeout, retries",
      ],
    );
    assert.deepEqual(errors(lines("name: X", "crom: '* * * * *'", ...TASK)), [
      "wf.yml:2:1: crom: unknown key `crom` (did you mean `cron`?); allowed here: name, description, cron, cron_dialect, timezone, start_time, params, max_active_runs, overlap, on_agent_lost, catch_up, catch_up_max, jitter, agent_labels, env, inherit_env, triggers, tasks",
    ]);
    const inConfig = errors(
      lines("name: X", "tasks:", "  a:", "    name: A", "    config: !Subprocess {command: echo}"),
    );
    assert.deepEqual(inConfig, [
      "wf.yml:5:25: tasks.a.config.cmd: missing required field `cmd`",
      "wf.yml:5:26: tasks.a.config.command: unknown key `command` (did you mean `cmd`?); allowed here: cmd, args",
    ]);
  });

  it("empty task map", () => {
    assert.deepEqual(errors(lines("name: X", "tasks: {}")), [
      "wf.yml:2:8: tasks: the task map is empty: a workflow needs at least one task",
    ]);
    assert.deepEqual(errors(lines("name: X", "tasks:")), [
      "wf.yml:2:1: tasks: the task map is empty: a workflow needs at least one task",
    ]);
  });

  it("missing required fields", () => {
    assert.deepEqual(errors(lines("description: no name", ...TASK)), [
      "wf.yml:1:1: name: missing required field `name`",
    ]);
    assert.deepEqual(errors(lines("name: X")), ["wf.yml:1:1: tasks: missing required field `tasks`"]);
    assert.deepEqual(errors(lines("name: X", "tasks:", "  a:", "    name: A")), [
      "wf.yml:3:3: tasks.a: task `a` has no config: add `config: !Subprocess {cmd: ..., args: [...]}` or `config: !UvPython {script_path: ...}`",
    ]);
  });

  it("unknown dependency, with a suggestion", () => {
    assert.deepEqual(
      errors(
        lines(
          "name: X",
          "tasks:",
          "  extract:",
          "    name: E",
          "    config: !Subprocess {cmd: echo}",
          "  load:",
          "    name: L",
          "    depends: [extrct]",
          "    config: !Subprocess {cmd: echo}",
        ),
      ),
      [
        "wf.yml:8:15: tasks.load.depends[0]: task `load` depends on unknown task `extrct` (did you mean `extract`?); known tasks: extract, load",
      ],
    );
  });

  it("cycle, showing its path", () => {
    const errs = errors(
      lines(
        "name: X",
        "tasks:",
        "  a:",
        "    name: A",
        "    depends: [c]",
        "    config: !Subprocess {cmd: echo}",
        "  b:",
        "    name: B",
        "    depends: [a]",
        "    config: !Subprocess {cmd: echo}",
        "  c:",
        "    name: C",
        "    depends: [b]",
        "    config: !Subprocess {cmd: echo}",
      ),
    );
    assert.deepEqual(errs, ["wf.yml:5:15: tasks.a.depends[0]: dependency cycle: a -> b -> c -> a"]);
    assert.deepEqual(
      errors(
        lines("name: X", "tasks:", "  a:", "    name: A", "    depends: [a]", "    config: !Subprocess {cmd: echo}"),
      ),
      ["wf.yml:5:15: tasks.a.depends[0]: task `a` depends on itself"],
    );
  });

  it("bad cron, bad timezone, bad start_time", () => {
    assert.deepEqual(errors(lines("name: X", 'cron: "0 0 25 * * *"', ...TASK)).length, 1);
    assert.match(
      errors(lines("name: X", 'cron: "0 0 25 * * *"', ...TASK))[0] ?? "",
      /^wf\.yml:2:7: cron: invalid cron `0 0 25 \* \* \*`/,
    );
    assert.match(
      errors(lines("name: X", 'cron: "* * *"', ...TASK))[0] ?? "",
      /^wf\.yml:2:7: cron: cron `\* \* \*` has 3 fields; use 5/,
    );
    assert.match(
      errors(lines("name: X", 'cron: "0 0 0 1 1 * 2030"', ...TASK))[0] ?? "",
      /^wf\.yml:2:7: cron: .*year field/,
    );
    assert.deepEqual(errors(lines("name: X", "timezone: Mars/Olympus", ...TASK)), [
      "wf.yml:2:11: timezone: unknown timezone `Mars/Olympus`: use an IANA name such as UTC, Europe/London or America/New_York",
    ]);
    assert.deepEqual(errors(lines("name: X", "start_time: 2025-01-20", ...TASK)), [
      'wf.yml:2:13: start_time: invalid start_time "2025-01-20": use an RFC 3339 date-time with an offset, e.g. 2025-01-20T12:30:00+00:00',
    ]);
    assert.equal(errors(lines("name: X", "start_time: 2025-02-30T00:00:00Z", ...TASK)).length, 1);
    assert.equal(
      errors(lines("name: X", "start_time: 2025-01-20T12:30:00", ...TASK)).length,
      1,
      "an offset is required",
    );
  });

  it("bad params", () => {
    assert.deepEqual(errors(lines("name: X", "params:", "  n: {type: number, default: lots}", ...TASK)), [
      'wf.yml:3:30: params.n.default: default of param `n`: expected a number, got "lots"',
    ]);
    assert.deepEqual(errors(lines("name: X", "params:", "  e: {type: enum}", ...TASK)), [
      "wf.yml:3:6: params.e: enum param `e` needs `values`: a non-empty list of the accepted values",
    ]);
    assert.deepEqual(errors(lines("name: X", "params:", "  t: {type: date}", ...TASK)), [
      "wf.yml:3:13: params.t.type: param type must be string, number, boolean or enum",
    ]);
    assert.deepEqual(errors(lines("name: X", "params:", "  bad-name: string", ...TASK)), [
      "wf.yml:3:3: params.bad-name: param name `bad-name` is invalid: use letters, digits and '_', starting with a letter or '_'",
    ]);
    assert.equal(
      errors(lines("name: X", "params:", "  r: {type: string, required: true, default: x}", ...TASK)).length,
      1,
    );
  });

  it("bad config tags and values", () => {
    assert.deepEqual(errors(lines("name: X", "tasks:", "  a:", "    name: A", "    config: {cmd: echo}")), [
      "wf.yml:5:13: tasks.a.config: config must be tagged `!Subprocess` (cmd, args) or `!UvPython` (script_path, ...); got an untagged value",
    ]);
    assert.match(
      errors(lines("name: X", "tasks:", "  a:", "    name: A", "    config: !Shell {cmd: echo}"))[0] ?? "",
      /^wf\.yml:5:20: tasks\.a\.config: .*got tag `!Shell`/,
    );
    assert.match(
      errors(lines("name: X", "tasks:", "  a:", "    name: A", "    config: !Subprocess echo"))[0] ?? "",
      /^wf\.yml:5:25: `!Subprocess` must tag a map/,
    );
    assert.deepEqual(
      errors(
        lines("name: X", "tasks:", "  a:", "    name: A", "    timeout: soon", "    config: !Subprocess {cmd: echo}"),
      ),
      [
        'wf.yml:5:14: tasks.a.timeout: invalid duration "soon"; use a number of seconds or a string such as "500ms", "30s", "5m", "1h30m"',
      ],
    );
    assert.deepEqual(errors(lines("name: X", "overlap: sometimes", ...TASK)), [
      "wf.yml:2:10: overlap: overlap must be queue or skip",
    ]);
  });

  it("bad env and inherit_env: not variable names, the agent's CDKTR_* settings, not a list", () => {
    const CDKTR =
      "the agent's own CDKTR_* settings never reach a task; put a value the task needs in its `env` (the run variables CDKTR_RUN_ID, CDKTR_WORKFLOW_ID, CDKTR_TASK_ID, CDKTR_TRIGGER_SOURCE and CDKTR_PARAM_* are always set)";
    const NOT_A_NAME =
      "is not a variable name: use letters, digits and '_' (AWS_REGION), or a prefix ending in '*' (AWS_*)";
    assert.deepEqual(
      errors(
        lines(
          "name: X",
          "inherit_env: [CDKTR_KEY_FILE, 'AWS-REGION', '*']",
          "tasks:",
          "  a:",
          "    name: A",
          "    inherit_env: SECRET",
          "    config: !Subprocess {cmd: echo}",
          "  b:",
          "    name: B",
          "    env: [X]",
          "    inherit_env: [CDKTR_*, 'OK_*']",
          "    config: !Subprocess {cmd: echo}",
        ),
      ),
      [
        `wf.yml:2:15: inherit_env[0]: \`CDKTR_KEY_FILE\`: ${CDKTR}`,
        `wf.yml:2:31: inherit_env[1]: \`AWS-REGION\` ${NOT_A_NAME}`,
        `wf.yml:2:45: inherit_env[2]: \`*\` ${NOT_A_NAME}`,
        "wf.yml:6:18: tasks.a.inherit_env: inherit_env must be a list of variable names or prefixes ending in '*', e.g. [AWS_REGION, AWS_*]",
        "wf.yml:10:10: tasks.b.env: env must be a map of variable name -> value",
        `wf.yml:11:19: tasks.b.inherit_env[0]: \`CDKTR_*\`: ${CDKTR}`,
      ],
    );
  });

  it("malformed YAML syntax", () => {
    const errs = errors(
      lines("name: X", "tasks:", "  a:", "    name: [unclosed", "    config: !Subprocess {cmd: echo}"),
    );
    assert.ok(errs.length >= 1);
    assert.match(errs[0] ?? "", /^wf\.yml:\d+:\d+: YAML syntax error: /);
    assert.match(
      errors(lines("name: X", "name: Y", ...TASK))[0] ?? "",
      /^wf\.yml:2:1: YAML syntax error: Map keys must be unique/,
    );
    assert.deepEqual(errors("", "empty.yml"), [
      "empty.yml:1:1: the file is empty: a workflow needs at least `name` and `tasks`",
    ]);
    assert.match(errors("- a\n- b\n")[0] ?? "", /^wf\.yml:1:1: a workflow file must be a YAML map/);
  });

  it("reports several problems of one file at once", () => {
    const errs = errors(
      lines(
        "name: X",
        "timezone: Nowhere",
        "tasks:",
        "  a:",
        "    name: A",
        "    depends: [ghost]",
        "    config: !Subprocess {cmd: echo}",
      ),
    );
    assert.equal(errs.length, 2);
  });

  it("rejects an invalid workflow id", () => {
    const r = parseWorkflowText(lines("name: X", ...TASK), { file: "-bad.yml", id: "-bad" });
    assert.equal(r.workflow, null);
    assert.match(formatLoadError(r.errors[0] as never), /^-bad\.yml: workflow id `-bad` .* rename the file/);
  });
});

describe("parseWorkflowText: task templates", () => {
  const ESCAPE_HINT =
    "for a literal `{{` (a Go or Jinja template in an argument), write `{{ \"{{\" }}` (or `{{ '{{' }}` inside a double-quoted YAML string)";
  const VALID =
    "valid names: params.date, params.n, run.id, run.workflow_id, run.scheduled_for, run.source, task.id, upstream.run_id, upstream.workflow_id, upstream.status";
  const PARAMS = ["params:", "  date: string", "  n: {type: number, default: 3}"];

  it("loads templates in args, env values and working directories, kept as written for the agent to expand", () => {
    const { workflow, warnings } = load(
      lines(
        "name: T",
        ...PARAMS,
        "env: {DAY: '{{ params.date }}'}",
        "tasks:",
        "  a:",
        "    name: A",
        "    env: {RUN: '{{run.id}}', N: '{{ params.n }}'}",
        "    working_directory: /srv/{{ run.workflow_id }}/{{ task.id }}",
        "    config: !Subprocess",
        "      cmd: extract",
        "      args:",
        "        - --date={{ params.date }}",
        "        - '{{ run.scheduled_for }}{{ run.source }}'",
        "        - '{{ upstream.run_id }}{{ upstream.workflow_id }}{{ upstream.status }}'",
        "        - 'helm --set x={{ \"{{\" }} .Values.y }}'",
        "        - \"--set y={{ '{{' }} .Values.z }}\"",
        "        - a }} b",
        "  b:",
        "    name: B",
        "    config: !UvPython {script_path: b.py, working_directory: '/data/{{ params.date }}'}",
      ),
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(workflow.tasks.a?.config, {
      type: "subprocess",
      cmd: "extract",
      args: [
        "--date={{ params.date }}",
        "{{ run.scheduled_for }}{{ run.source }}",
        "{{ upstream.run_id }}{{ upstream.workflow_id }}{{ upstream.status }}",
        'helm --set x={{ "{{" }} .Values.y }}',
        "--set y={{ '{{' }} .Values.z }}",
        "a }} b",
      ],
    });
    assert.deepEqual(workflow.tasks.a?.env, { DAY: "{{ params.date }}", RUN: "{{run.id}}", N: "{{ params.n }}" });
    assert.equal(workflow.tasks.a?.workingDirectory, "/srv/{{ run.workflow_id }}/{{ task.id }}");
  });

  it("an unknown param, run value or name is an error at the `{{`, listing the valid names and the escape", () => {
    assert.deepEqual(
      errors(
        lines(
          "name: T",
          ...PARAMS,
          "env:",
          "  A: x-{{ foo }}",
          "tasks:",
          "  a:",
          "    name: A",
          "    working_directory: '/srv/{{ run.nope }}'",
          "    config: !Subprocess",
          "      cmd: extract",
          '      args: ["--date", "{{ params.nope }}"]',
        ),
        "etl/daily.yml",
      ),
      [
        `etl/daily.yml:6:8: env.A: unknown name \`foo\` in \`{{ foo }}\`: not a template name; ${VALID}; ${ESCAPE_HINT}`,
        `etl/daily.yml:10:30: tasks.a.working_directory: unknown name \`run.nope\` in \`{{ run.nope }}\`: not a template name; ${VALID}; ${ESCAPE_HINT}`,
        `etl/daily.yml:13:25: tasks.a.config.args[1]: unknown name \`params.nope\` in \`{{ params.nope }}\`: this workflow declares no param \`nope\`; ${VALID}; ${ESCAPE_HINT}`,
      ],
    );
  });

  it("a param of a workflow without params, and the old {{date}} form, say what to write", () => {
    const [noParams] = errors(
      lines("name: T", "tasks:", "  a:", "    name: A", "    config: !Subprocess {cmd: x, args: ['{{ params.day }}']}"),
    );
    assert.match(
      noParams ?? "",
      /^wf\.yml:5:42: tasks\.a\.config\.args\[0\]: unknown name `params\.day` .*: this workflow declares no params \(add `params: \{day: string\}`\)/,
    );
    const [bare] = errors(
      lines(
        "name: T",
        ...PARAMS,
        "tasks:",
        "  a:",
        "    name: A",
        "    config: !Subprocess {cmd: x, args: ['{{date}}']}",
      ),
    );
    assert.match(bare ?? "", /^wf\.yml:8:42: .*unknown name `date` .*\(did you mean `params\.date`\?\)/);
  });

  it("an unclosed `{{` or a Go template is an error suggesting the escape", () => {
    assert.deepEqual(
      errors(
        lines(
          "name: T",
          "tasks:",
          "  a:",
          "    name: A",
          "    config: !Subprocess",
          "      cmd: helm",
          "      args:",
          "        - --set=x={{ .Values.y }}",
          '        - "--date {{ run.id"',
        ),
      ),
      [
        `wf.yml:8:19: tasks.a.config.args[0]: \`{{ .Values.y }}\` is not a template name: write one dotted name between the braces, such as \`{{ params.date }}\`; ${ESCAPE_HINT}: \`{{ "{{" }} .Values.y }}\``,
        `wf.yml:9:19: tasks.a.config.args[1]: \`{{\` is not closed: end the name with \`}}\`; ${ESCAPE_HINT}`,
      ],
    );
  });

  it("a value with YAML escapes or on several lines is located at its start", () => {
    assert.deepEqual(
      errors(
        lines(
          "name: T",
          "tasks:",
          "  a:",
          "    name: A",
          "    config: !Subprocess",
          "      cmd: x",
          "      args:",
          '        - "tab\\there {{ nope }}"',
          "        - >-",
          "          folded",
          "          {{ nope }}",
        ),
      ).map((e) => e.split(": ").slice(0, 2).join(": ")),
      ["wf.yml:8:11: tasks.a.config.args[0]", "wf.yml:9:11: tasks.a.config.args[1]"],
    );
  });

  it("templates in env names, cmd, script_path, packages and uv_path are errors (what runs is never templated)", () => {
    const errs = errors(
      lines(
        "name: T",
        ...PARAMS,
        "tasks:",
        "  a:",
        "    name: A",
        "    env: {'X_{{ params.date }}': y}",
        "    config: !Subprocess {cmd: '/opt/{{ params.date }}/bin/tool'}",
        "  b:",
        "    name: B",
        "    config: !UvPython {script_path: '{{ params.date }}.py', packages: ['pandas=={{ params.n }}'], uv_path: '{{ run.id }}'}",
      ),
    );
    assert.deepEqual(
      errs.map((e) => e.split(": ").slice(0, 2).join(": ")),
      [
        'wf.yml:8:14: tasks.a.env["X_{{ params.date }}"]',
        "wf.yml:9:37: tasks.a.config.cmd",
        "wf.yml:12:38: tasks.b.config.script_path",
        "wf.yml:12:81: tasks.b.config.packages[0]",
        "wf.yml:12:109: tasks.b.config.uv_path",
      ],
    );
    assert.match(errs[0] ?? "", /env variable names are not templated \(only their values are\)/);
    assert.match(
      errs[1] ?? "",
      /templates are not expanded in `cmd`: what a task runs is fixed by its workflow file, never chosen by a run's params; pass values in `args`/,
    );
  });
});

describe("workflowIdFromPath", () => {
  it("drops the extension and replaces / by .", () => {
    assert.equal(workflowIdFromPath("etl/daily.yml"), "etl.daily");
    assert.equal(workflowIdFromPath("a/b/c.yaml"), "a.b.c");
    assert.equal(workflowIdFromPath("hello.yml"), "hello");
  });
});

describe("parseWorkflowText: triggers (chaining)", () => {
  it("takes a status, a list of statuses, or none (COMPLETED); no triggers is no field", () => {
    const { workflow } = load(
      lines(
        "name: B",
        "triggers:",
        "  - after: etl.extract",
        "  - {after: a, status: FAILED}",
        "  - {after: c, status: [COMPLETED, CRASHED, COMPLETED]}",
        ...TASK,
      ),
    );
    assert.deepEqual(workflow.triggers, [
      { after: "etl.extract", status: ["COMPLETED"] },
      { after: "a", status: ["FAILED"] },
      { after: "c", status: ["COMPLETED", "CRASHED"] },
    ]);
    assert.equal(load(lines("name: B", ...TASK)).workflow.triggers, undefined);
  });

  it("refuses itself as upstream, a non-terminal status, a bad id and unknown keys, with file:line", () => {
    assert.deepEqual(errors(lines("name: B", "triggers:", "  - after: wf", ...TASK)), [
      "wf.yml:3:12: triggers[0].after: a workflow cannot follow its own runs (chaining cycle wf -> wf): remove this trigger",
    ]);
    const bad = errors(
      lines(
        "name: B",
        "triggers:",
        "  - {after: a, status: RUNNING}",
        "  - {after: 'not an id'}",
        "  - {after: a, state: FAILED}",
        ...TASK,
      ),
    );
    assert.equal(bad.length, 3, bad.join("\n"));
    assert.match(
      bad[0] ?? "",
      /^wf\.yml:3:.*status must be one or more of COMPLETED, FAILED, CRASHED, CANCELLED, SKIPPED/,
    );
    assert.match(bad[1] ?? "", /^wf\.yml:4:.*triggers\[1\]\.after: .*workflow ids use letters/);
    assert.match(bad[2] ?? "", /^wf\.yml:5:.*unknown key `state` \(did you mean `status`\?\)/);
  });
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  TEMPLATE_ESCAPE,
  checkTaskTemplate,
  expandTaskTemplate,
  parseTaskTemplate,
  taskTemplateValues,
  type TaskTemplateContext,
} from "./task-template.js";

const CTX: TaskTemplateContext = {
  params: { date: "2026-11-27", n: 3, dry: false },
  paramDefs: {
    date: { type: "string", required: true, description: null },
    n: { type: "number", required: false, default: 1, description: null },
    dry: { type: "boolean", required: false, default: true, description: null },
    limit: { type: "number", required: false, default: 500, description: null },
    note: { type: "string", required: false, description: null },
  },
  runId: "r-1",
  workflowId: "etl.daily",
  scheduledFor: null,
  source: "cli",
  taskId: "extract",
};

function expand(text: string, ctx: TaskTemplateContext = CTX): string {
  const r = expandTaskTemplate(text, taskTemplateValues(ctx));
  assert.ok(r.ok, r.ok ? "" : r.error);
  return r.value;
}

describe("expandTaskTemplate", () => {
  it("substitutes params and run values inside the surrounding text, with or without spaces in the braces", () => {
    assert.equal(expand("--date={{ params.date }}"), "--date=2026-11-27");
    assert.equal(expand("{{params.date}}/{{  run.id  }}"), "2026-11-27/r-1");
    assert.equal(
      expand("{{ run.workflow_id }} {{ run.source }} {{ task.id }} [{{ run.scheduled_for }}]"),
      "etl.daily cli extract []",
    );
    assert.equal(
      expand("{{ run.scheduled_for }}", { ...CTX, scheduledFor: "2026-11-28T06:30:00.000Z" }),
      "2026-11-28T06:30:00.000Z",
    );
  });

  it("renders numbers and booleans as JSON text", () => {
    assert.equal(expand("{{ params.n }},{{ params.dry }}"), "3,false");
    assert.equal(expand("{{ params.n }}", { ...CTX, params: { n: 0.5 } }), "0.5");
  });

  it("gives a declared param the run lacks its default, and an optional one without a default the empty string", () => {
    assert.equal(expand("[{{ params.limit }}][{{ params.note }}]"), "[500][]");
    assert.equal(expand("{{ params.limit }}", { ...CTX, params: { limit: 7 } }), "7");
  });

  it("expands upstream.* to the empty string when the run was not started by another run's outcome", () => {
    assert.equal(expand("[{{ upstream.run_id }}|{{ upstream.workflow_id }}|{{ upstream.status }}]"), "[||]");
    assert.equal(
      expand("{{ upstream.run_id }}|{{ upstream.workflow_id }}|{{ upstream.status }}", {
        ...CTX,
        upstream: { runId: "r-0", workflowId: "etl.extract", status: "COMPLETED" },
      }),
      "r-0|etl.extract|COMPLETED",
    );
  });

  it("never expands a substituted value again", () => {
    const ctx = { ...CTX, params: { date: "{{ run.id }}" } };
    assert.equal(expand("{{ params.date }}", ctx), "{{ run.id }}");
    assert.equal(expand("{{ params.date }}", { ...CTX, params: { date: '{{ "{{" }}' } }), '{{ "{{" }}');
  });

  it("writes a literal `{{` as {{ \"{{\" }} or {{ '{{' }}; a lone `}}` is literal", () => {
    assert.equal(TEMPLATE_ESCAPE, '{{ "{{" }}');
    assert.equal(expand('--set x={{ "{{" }} .Values.y }}'), "--set x={{ .Values.y }}");
    assert.equal(expand("--set x={{'{{'}} .Values.y }}"), "--set x={{ .Values.y }}");
    assert.equal(expand("a }} b"), "a }} b");
    assert.equal(expand("no template"), "no template");
  });

  it("keeps shell syntax in a value as plain text", () => {
    const who = `x; rm -rf /tmp/should-not-exist "quoted" $(id) 'q' \`id\``;
    assert.equal(expand("{{ params.date }}", { ...CTX, params: { date: who } }), who);
  });

  it("refuses a template the loader would refuse, naming the problem", () => {
    const values = taskTemplateValues(CTX);
    assert.deepEqual(expandTaskTemplate("{{ params.nope }}", values), {
      ok: false,
      error: `unknown name \`params.nope\` in \`{{ params.nope }}\`; valid names: ${[...values.keys()].join(", ")}`,
    });
    const unclosed = expandTaskTemplate("x {{ run.id", values);
    assert.equal(unclosed.ok, false);
    assert.match(unclosed.ok ? "" : unclosed.error, /^`\{\{` is not closed/);
  });
});

describe("checkTaskTemplate", () => {
  const params = ["date", "n"];

  it("accepts every run name and each declared param", () => {
    for (const name of [
      "params.date",
      "params.n",
      "run.id",
      "run.workflow_id",
      "run.scheduled_for",
      "run.source",
      "task.id",
      "upstream.run_id",
      "upstream.workflow_id",
      "upstream.status",
    ]) {
      assert.deepEqual(checkTaskTemplate(`a {{ ${name} }} b`, params), [], name);
    }
    assert.deepEqual(checkTaskTemplate('{{ "{{" }} .Values.y }}', params), []);
  });

  it("reports an unknown name at its `{{`, with a suggestion, the valid names and the escape", () => {
    const [p, ...rest] = checkTaskTemplate("--date={{ params.dat }}", params);
    assert.deepEqual(rest, []);
    assert.equal(p?.index, 7);
    assert.equal(
      p?.message,
      "unknown name `params.dat` in `{{ params.dat }}`: this workflow declares no param `dat` (did you mean `params.date`?); valid names: params.date, params.n, run.id, run.workflow_id, run.scheduled_for, run.source, task.id, upstream.run_id, upstream.workflow_id, upstream.status; for a literal `{{` (a Go or Jinja template in an argument), write `{{ \"{{\" }}` (or `{{ '{{' }}` inside a double-quoted YAML string)",
    );
    assert.match(checkTaskTemplate("{{ date }}", params)[0]?.message ?? "", /did you mean `params\.date`\?/);
    assert.match(checkTaskTemplate("{{ run.nope }}", params)[0]?.message ?? "", /^unknown name `run\.nope`/);
    assert.match(
      checkTaskTemplate("{{ foo }}", params)[0]?.message ?? "",
      /^unknown name `foo`.*: not a template name/,
    );
    assert.match(
      checkTaskTemplate("{{ params.x }}", [])[0]?.message ?? "",
      /this workflow declares no params \(add `params: \{x: string\}`\)/,
    );
  });

  it("reports an unclosed `{{` and an expression that is not a plain dotted name, suggesting the escape", () => {
    assert.deepEqual(
      checkTaskTemplate("ab{{ params.date", params).map((p) => p.index),
      [2],
    );
    const [go] = checkTaskTemplate("x={{ .Values.y }}", params);
    assert.equal(go?.index, 2);
    assert.equal(
      go?.message,
      '`{{ .Values.y }}` is not a template name: write one dotted name between the braces, such as `{{ params.date }}`; for a literal `{{` (a Go or Jinja template in an argument), write `{{ "{{" }}` (or `{{ \'{{\' }}` inside a double-quoted YAML string): `{{ "{{" }} .Values.y }}`',
    );
    for (const bad of ["{{ params.date | upper }}", "{{ params['date'] }}", "{{ }}", '{{ "}}" }}', "{{{ run.id }}}"]) {
      assert.equal(checkTaskTemplate(bad, params).length, 1, bad);
    }
  });

  it("reports every problem of one value, in order", () => {
    assert.deepEqual(
      checkTaskTemplate("{{ a }} {{ run.id }} {{ b }} {{ c", params).map((p) => p.index),
      [0, 21, 29],
    );
  });
});

describe("parseTaskTemplate", () => {
  it("merges escapes into the text around them", () => {
    assert.deepEqual(parseTaskTemplate('a{{ "{{" }}b{{ run.id }}c'), {
      parts: [
        { kind: "text", text: "a{{b" },
        { kind: "name", name: "run.id", index: 12 },
        { kind: "text", text: "c" },
      ],
      problems: [],
    });
  });
});

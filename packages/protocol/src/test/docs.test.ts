import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { z } from "zod";
import { API_VERBS, LOG_VERBS } from "../messages.js";
import { WireErrorSchema } from "../errors.js";
import { RunEventSchema, TaskEventSchema, WorkflowsChangedEventSchema } from "../topics.js";

/** docs/protocol.md: every `<!-- example: ... -->` JSON block must match its schema. */
const docPath = fileURLToPath(new URL("../../../../docs/protocol.md", import.meta.url));
const doc = readFileSync(docPath, "utf8");
const examples = [...doc.matchAll(/<!-- example: ([^>]+?) -->\s*```json\n([\s\S]*?)```/g)].map((m) => ({
  label: m[1] ?? "",
  json: m[2] ?? "",
}));

function schemaFor(label: string): z.ZodType {
  const [kind, name, side] = label.split(" ");
  if (kind === "error") return WireErrorSchema;
  if (kind === "event") {
    const s = { runs: RunEventSchema, tasks: TaskEventSchema, workflows: WorkflowsChangedEventSchema }[name ?? ""];
    assert.ok(s, `unknown event ${label}`);
    return s;
  }
  const table = kind === "api" ? API_VERBS : kind === "log" ? LOG_VERBS : undefined;
  assert.ok(table, `unknown example kind in "${label}"`);
  const spec = (table as Record<string, { request: z.ZodType; reply: z.ZodType }>)[name ?? ""];
  assert.ok(spec, `unknown verb in "${label}"`);
  assert.ok(side === "request" || side === "reply", `"${label}" must end with request or reply`);
  return spec[side];
}

describe("docs/protocol.md", () => {
  it("has request and reply examples for every verb", () => {
    const labels = new Set(examples.map((e) => e.label));
    for (const verb of Object.keys(API_VERBS)) {
      assert.ok(labels.has(`api ${verb} request`), `missing example: api ${verb} request`);
      assert.ok(labels.has(`api ${verb} reply`), `missing example: api ${verb} reply`);
    }
    assert.ok(labels.has("log logBatch request") && labels.has("log logBatch reply"));
  });

  it("examples are valid JSON matching the schemas", () => {
    assert.ok(examples.length > 30, `found only ${examples.length} examples`);
    for (const { label, json } of examples) {
      let value: unknown;
      assert.doesNotThrow(() => (value = JSON.parse(json)), `example "${label}" is not JSON`);
      const r = schemaFor(label).safeParse(value);
      assert.ok(
        r.success,
        `example "${label}" does not match its schema: ${r.success ? "" : JSON.stringify(r.error.issues)}`,
      );
    }
  });

  it("documents every error code", () => {
    for (const code of WireErrorSchema.shape.code.options) {
      assert.ok(doc.includes(`| \`${code}\` |`), `error code ${code} is not documented`);
    }
  });
});
